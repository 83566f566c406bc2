import { Type, type Static } from '@sinclair/typebox';
import { MASK_KINDS, MASK_STYLES } from '../../shared/pii.js';

/** The config of the transform policy: query parameters, JSON bodies both ways, PII masking, version mappings. */
const Path = Type.String({ minLength: 1, maxLength: 1024, description: 'a field path: user.name, items[*].price, items[0], meta.*, ["a.b"]' });
const Style = Type.Union(
  MASK_STYLES.map((s) => Type.Literal(s)),
  { description: 'full: "[redacted]"; last4: stars and the last 4 letters or digits; hash: "sha256:" and 16 hex digits of the (keyed) SHA-256' },
);
const Kind = Type.Union(
  MASK_KINDS.map((k) => Type.Literal(k)),
  { description: 'card (Luhn-checked), iban (mod-97-checked), email, phone (international "+" form, 8-15 digits)' },
);

const Operation = Type.Union(
  [
    Type.Object(
      { set: Type.Object({ path: Path, value: Type.Unknown({ description: 'any JSON value' }) }, { additionalProperties: false, description: 'create or replace the field (objects on the way are made)' }) },
      { additionalProperties: false },
    ),
    Type.Object(
      { add: Type.Object({ path: Path, value: Type.Unknown({ description: 'any JSON value' }) }, { additionalProperties: false, description: 'set the field only when it is absent' }) },
      { additionalProperties: false },
    ),
    Type.Object({ remove: Type.Array(Path, { minItems: 1, description: 'drop these fields' }) }, { additionalProperties: false }),
    Type.Object(
      {
        rename: Type.Object(
          { from: Path, to: Path },
          { additionalProperties: false, description: 'move a value; with wildcards, both paths start alike up to the last one (items[*].name -> items[*].title)' },
        ),
      },
      { additionalProperties: false },
    ),
    Type.Object({ keep: Type.Array(Path, { minItems: 1, description: 'keep only these fields (and what is below them), drop everything else' }) }, { additionalProperties: false }),
  ],
  { description: 'one of set, add, remove, rename, keep' },
);
const Operations = (description: string) => Type.Array(Operation, { default: [], description });

const Mask = Type.Object(
  {
    detect: Type.Array(
      Type.Union([Kind, Type.Object({ type: Kind, style: Type.Optional(Style) }, { additionalProperties: false })], { description: 'a kind, or { type, style }' }),
      { default: [], description: 'built-in detectors run over every string value (and card numbers written as JSON numbers)' },
    ),
    patterns: Type.Array(
      Type.Object(
        {
          name: Type.String({ minLength: 1, maxLength: 64, description: 'what the pattern finds (for docs and errors), e.g. us-ssn' }),
          regex: Type.String({ minLength: 1, maxLength: 1024, description: 'a JavaScript regular expression, matched anywhere in each string value' }),
          style: Type.Optional(Style),
        },
        { additionalProperties: false },
      ),
      { default: [], description: 'configured detectors (national ids…) run over every string value' },
    ),
    fields: Type.Array(Type.Union([Path, Type.Object({ path: Path, style: Type.Optional(Style) }, { additionalProperties: false })], { description: 'a path, or { path, style }' }), {
      default: [],
      description: 'whole values masked by path, whatever they hold',
    }),
    keys: Type.Array(
      Type.Union([Type.String({ minLength: 1, maxLength: 256, description: 'a key name' }), Type.Object({ name: Type.String({ minLength: 1, maxLength: 256, description: 'a key name' }), style: Type.Optional(Style) }, { additionalProperties: false })], {
        description: 'a key name, or { name, style }',
      }),
      { default: [], secret: false, description: 'whole values masked wherever their key has this name, at any depth (password, ssn…)' },
    ),
    style: Type.Union(MASK_STYLES.map((s) => Type.Literal(s)), { default: 'full', description: 'the style of entries that name none: full, last4 or hash' }),
    hashKey: Type.Optional(Type.String({ minLength: 16, secret: true, description: 'key of the hash style (HMAC-SHA256); without one hashes are plain SHA-256, which a short value (a card number) can be found from by trying them all' })),
  },
  { additionalProperties: false, description: 'PII masking of the body; text/* bodies get the detectors and patterns too' },
);

const BodyLimit = (description: string) => Type.Integer({ minimum: 1, maximum: 1073741824, default: 1048576, description });

const RequestBody = Type.Object(
  {
    maxBytes: BodyLimit('the largest request body held for the transform, in bytes (as received); larger ones get 413 NG_ERR_TRANSFORM_BODY_TOO_LARGE'),
    gzip: Type.Boolean({ default: false, description: 'decode bodies sent with Content-Encoding: gzip before the transform (they go upstream decoded); false: such bodies get 415' }),
    maxDecompressedBytes: Type.Integer({ minimum: 1, maximum: 1073741824, default: 4194304, description: 'the largest decoded size of a gzip body, in bytes; beyond it 413 (a zip bomb stops here)' }),
    operations: Operations('JSON operations on the request body, in order'),
    mask: Type.Optional(Mask),
  },
  { additionalProperties: false, description: 'the request body: JSON bodies get the operations and masking, text/* bodies the masking' },
);

const ResponseBody = Type.Object(
  {
    maxBytes: BodyLimit('the largest upstream body held for the transform, in bytes; larger ones get 502 NG_ERR_TRANSFORM_UPSTREAM_TOO_LARGE'),
    operations: Operations('JSON operations on the response body, in order'),
    scopes: Type.Array(
      Type.Object(
        {
          path: Path,
          anyOf: Type.Array(Type.String({ minLength: 1, maxLength: 128, description: 'a scope' }), { minItems: 1, description: 'the field stays when the consumer holds any of these scopes' }),
        },
        { additionalProperties: false },
      ),
      { default: [], description: "fields visible only with a scope: removed for consumers without one of them (and for requests without a consumer)" },
    ),
    mask: Type.Optional(Mask),
  },
  { additionalProperties: false, description: 'the response body: JSON bodies get the operations, scope filtering and masking, text/* bodies the masking' },
);

const Query = Type.Object(
  {
    add: Type.Optional(Type.Record(Type.String({ minLength: 1, maxLength: 256 }), Type.String({ maxLength: 8192 }), { secret: false, description: 'append these parameters; values may be templates such as "${consumer.id}"' })),
    remove: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { description: 'drop these parameters (every occurrence)' })),
    rename: Type.Optional(Type.Record(Type.String({ minLength: 1, maxLength: 256 }), Type.String({ minLength: 1, maxLength: 256 }), { secret: false, description: 'move parameters to a new name: { old: new }' })),
  },
  { additionalProperties: false, description: 'changes to the query string sent upstream, in the order remove, rename, add' },
);

export const TransformSchema = Type.Object(
  {
    request: Type.Optional(
      Type.Object(
        { query: Type.Optional(Query), body: Type.Optional(RequestBody) },
        { additionalProperties: false, description: 'what changes on the way upstream' },
      ),
    ),
    response: Type.Optional(Type.Object({ body: Type.Optional(ResponseBody) }, { additionalProperties: false, description: 'what changes on the way to the client' })),
    versions: Type.Optional(
      Type.Object(
        {
          header: Type.Optional(Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", maxLength: 256, description: 'the request header that names the version the client speaks' })),
          query: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'the query parameter that names it (when the header is absent)' })),
          mappings: Type.Record(
            Type.String({ minLength: 1, maxLength: 64 }),
            Type.Object(
              {
                request: Operations("operations from this version's request body to the upstream's shape (before the request operations)"),
                response: Operations("operations from the upstream's response body to this version's shape (after everything else)"),
              },
              { additionalProperties: false },
            ),
            { secret: false, description: 'by version value: the operations between that version and the upstream' },
          ),
        },
        { additionalProperties: false, description: "version mappings: a client speaking an older (or newer) shape than the upstream's; unknown or absent versions get none" },
      ),
    ),
    pool: Type.Object(
      {
        thresholdBytes: Type.Integer({ minimum: 0, maximum: 1073741824, default: 262144, description: 'bodies of this many bytes or more are transformed in a worker pool off the event loop (0: never); see docs/transform.md for the measurement' }),
      },
      { additionalProperties: false, default: {}, description: 'where large bodies are transformed' },
    ),
  },
  { additionalProperties: false, description: 'query parameters, JSON bodies (operations, scope filtering, versions) and PII masking' },
);

export type TransformConfig = Static<typeof TransformSchema>;
export type MaskInput = Static<typeof Mask>;

import { Type, type Static } from '@sinclair/typebox';

/** The `graphql` policy's config (route or global level). Every limit is off when absent. */
const Limit = (what: string) => Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: what }));

export const GraphqlSchema = Type.Object(
  {
    maxTokens: Type.Integer({
      minimum: 10,
      maximum: 1_000_000,
      default: 5000,
      secret: false,
      description: 'the parser stops after this many tokens (graphql-js maxTokens): a hostile document cannot make parsing expensive',
    }),
    maxBodyBytes: Type.Integer({ minimum: 64, maximum: 16_777_216, default: 1_048_576, description: 'largest POST body read (held whole, then forwarded)' }),
    limits: Type.Object(
      {
        depth: Limit('deepest field nesting (a root field is depth 1; fragments are followed)'),
        aliases: Limit('aliased fields in the operation (fragments expanded)'),
        rootFields: Limit('fields selected at the root of the operation'),
        cost: Limit('computed cost of the operation (see cost)'),
      },
      { additionalProperties: false, default: {}, description: 'refused before the upstream is called, each with its own 400 code' },
    ),
    cost: Type.Object(
      {
        object: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 1, description: 'cost of a field with a selection set' }),
        scalar: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 0, description: 'cost of a leaf field' }),
        fields: Type.Record(Type.String({ pattern: '^([A-Za-z_][A-Za-z0-9_]*|\\*)\\.[A-Za-z_][A-Za-z0-9_]*$' }), Type.Integer({ minimum: 0, maximum: 1_000_000 }), {
          default: {},
          description: 'cost of particular fields, as Type.field (Query.search) or *.field (any type)',
        }),
        listArguments: Type.Array(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), {
          default: ['first', 'last', 'limit'],
          description: 'arguments whose integer value multiplies a field and its selection (pagination sizes)',
        }),
        defaultListSize: Type.Integer({
          minimum: 1,
          maximum: 100_000,
          default: 10,
          description: 'multiplier of a list field without such an argument (needs schema: to know list fields) or with a variable left unset',
        }),
      },
      { additionalProperties: false, default: {}, description: 'cost = multiplier x (field cost + cost of its selection), summed over the operation' },
    ),
    introspection: Type.Object(
      {
        allowed: Type.Boolean({ default: false, description: 'operations asking for __schema or __type may run' }),
        plans: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { default: [], description: 'when not empty: only consumers on these plans may introspect' }),
      },
      { additionalProperties: false, default: {}, description: 'introspection (__schema, __type); __typename is always allowed' },
    ),
    persisted: Type.Object(
      {
        mode: Type.Union([Type.Literal('off'), Type.Literal('apq'), Type.Literal('allowlist')], {
          default: 'off',
          description: 'off: hashes are passed on untouched; apq: automatic persisted queries answered here; allowlist: only the operations of `allowlist` run',
        }),
        allowlist: Type.Optional(Type.String({ minLength: 1, description: 'allowlist mode: a JSON file, { "<sha256>": "<query>" } or an Apollo persisted query manifest' })),
        maxEntries: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 10000, description: 'apq: queries kept per worker (least recently used go first)' }),
        store: Type.Union([Type.Literal('memory'), Type.Literal('redis')], {
          default: 'memory',
          description: 'apq: memory: each worker keeps its own; redis: also shared through the top-level redis: section, so a hash registered on one node is known to all (Redis down: memory only)',
        }),
        ttlSeconds: Type.Integer({ minimum: 1, maximum: 31_536_000, default: 86400, description: 'store: redis: how long a registered query stays in Redis' }),
      },
      { additionalProperties: false, default: {}, description: 'persisted queries' },
    ),
    schema: Type.Optional(Type.String({ minLength: 1, description: 'an SDL file (.graphql): field rules by Type.field, list fields for cost, full validation' })),
    fieldAuth: Type.Object(
      {
        rules: Type.Record(Type.String({ pattern: '^([A-Za-z_][A-Za-z0-9_]*|\\*)\\.[A-Za-z_][A-Za-z0-9_]*$' }), Type.String({ minLength: 1, maxLength: 256 }), {
          default: {},
          description: 'field (Type.field or *.field) -> scope the caller needs to select it; without schema only Query./Mutation./Subscription. and *. rules',
        }),
        mode: Type.Union([Type.Literal('refuse'), Type.Literal('remove')], {
          default: 'refuse',
          description: 'refuse: the operation is answered 403; remove: the fields are taken out of the query before it goes upstream, and the response gets a GraphQL error per removed field',
        }),
      },
      { additionalProperties: false, default: {}, secret: false, description: 'field-level authorization: an operation touching a field without its scope is refused (403) or loses those fields' },
    ),
    cacheEntries: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1000, description: 'parsed documents kept per worker (least recently used go first)' }),
    cacheBytes: Type.Integer({ minimum: 1024, maximum: 1_073_741_824, default: 16_777_216, description: 'query text kept in that cache per worker, at most' }),
    operationMetrics: Type.Integer({
      minimum: 0,
      maximum: 1000,
      default: 50,
      description: 'operation names with series of their own in the metrics (first come; the rest count as _other); 0: no operation metrics',
    }),
    logFields: Type.Integer({ minimum: 0, maximum: 256, default: 16, description: 'fields (Type.field) named in the access log line, at most' }),
  },
  { additionalProperties: false, description: 'GraphQL: operation limits, persisted queries, field authorization, operation logging and cost' },
);
export type GraphqlConfig = Static<typeof GraphqlSchema>;

import { Type, type Static } from '@sinclair/typebox';
import { PRIORITY, type PolicyContext, type PolicyHooks, type PolicyModule, type ResponseBodyFilter } from '../../pipeline/policy.js';
import { brotliFilter, gzipFilter, type BrotliSettings, type GzipSettings } from './encoder.js';
import { negotiate } from './negotiate.js';

/**
 * Response compression (gzip, brotli) negotiated on the client's Accept-Encoding, as a response body filter.
 *
 * A response is compressed when all of these hold, checked in this order when its head arrives (each a lookup):
 *   - it has a body (not HEAD, 204, 304; 1xx are never forwarded) and is not a 206 (ranges count bytes of the
 *     representation as the upstream sent it);
 *   - it has no Content-Encoding already (anything but "identity") and no Cache-Control: no-transform
 *     (RFC 9110 7.7, RFC 9111 5.2.2.6);
 *   - its media type (parameters dropped) is in `contentTypes`;
 *   - its Content-Length, when it has one, is at least `minBytes`. A body without one (chunked, until close) is
 *     compressed: deciding on its first bytes would hold them back, and such bodies are mostly streams or large;
 *   - the client accepts one of `encodings` (negotiate.ts).
 * An eligible response gets `Vary: Accept-Encoding` (merged into an existing Vary) whether or not this client's
 * Accept-Encoding led to compression, so that a cache keeps the variants apart. A compressed one gets
 * Content-Encoding, a weak ETag (W/"…": the bytes differ from the identity representation's, RFC 9110 8.8.1), no
 * Accept-Ranges, and goes out chunked without Content-Length.
 */
const Coding = Type.Union([Type.Literal('br'), Type.Literal('gzip')]);
const MediaRange = Type.String({
  pattern: "^[A-Za-z0-9!#$&^_.+-]+/([A-Za-z0-9!#$&^_.+-]+|\\*)$",
  maxLength: 128,
  description: 'a media type (application/json) or a type with any subtype (text/*)',
});
export const DEFAULT_CONTENT_TYPES = [
  'text/*',
  'application/json',
  'application/problem+json',
  'application/ld+json',
  'application/manifest+json',
  'application/geo+json',
  'application/javascript',
  'application/ecmascript',
  'application/xml',
  'application/xhtml+xml',
  'application/rss+xml',
  'application/atom+xml',
  'application/wasm',
  'application/x-ndjson',
  'image/svg+xml',
  'image/x-icon',
  'font/ttf',
  'font/otf',
];
const Schema = Type.Object(
  {
    encodings: Type.Array(Coding, {
      default: ['br', 'gzip'],
      uniqueItems: true,
      description: 'codings offered, preferred first when the client weighs them equally; [] switches a global entry off for a route',
    }),
    minBytes: Type.Integer({ minimum: 0, maximum: 1 << 30, default: 1024, description: 'a body whose Content-Length is below this is sent as it is' }),
    contentTypes: Type.Array(MediaRange, { default: DEFAULT_CONTENT_TYPES, description: 'media types compressed (parameters are ignored); text/* covers every text type' }),
    gzip: Type.Object(
      {
        level: Type.Integer({ minimum: 1, maximum: 9, default: 6, description: 'deflate level (6: the usual balance; 9 costs much more CPU for a few %)' }),
        windowBits: Type.Integer({ minimum: 9, maximum: 15, default: 15, description: 'log2 of the window; memory 2^(windowBits+2) bytes per stream' }),
        memLevel: Type.Integer({ minimum: 1, maximum: 9, default: 8, description: 'deflate hash memory, 2^(memLevel+9) bytes per stream' }),
      },
      { additionalProperties: false, default: {}, description: 'gzip settings' },
    ),
    brotli: Type.Object(
      {
        quality: Type.Integer({
          minimum: 0,
          maximum: 11,
          default: 4,
          description: 'brotli quality; 4-5 compress better than gzip 6 at a similar cost, 11 (the library default) is for static files, 10-50x slower',
        }),
        window: Type.Integer({ minimum: 10, maximum: 24, default: 18, description: 'log2 of the window (lgwin); memory grows with 2^window per stream' }),
      },
      { additionalProperties: false, default: {}, description: 'brotli settings' },
    ),
  },
  { additionalProperties: false, description: 'compress responses (gzip, brotli) for clients that accept it' },
);
type Config = Static<typeof Schema>;

interface Data {
  encodings: string[];
  minBytes: number;
  /** exact media types, lower case */
  types: string[];
  /** "text/" for text/* */
  typePrefixes: string[];
  gzip: GzipSettings;
  brotli: BrotliSettings;
}

/** The per-route, per-worker compressor: all decisions are lookups in what compile() prepared. */
class Compression {
  readonly #encodings: readonly string[];
  readonly #minBytes: number;
  readonly #types: ReadonlySet<string>;
  readonly #prefixes: readonly string[];
  readonly #gzip: GzipSettings;
  readonly #brotli: BrotliSettings;
  /** clients send a handful of distinct Accept-Encoding strings: the last one's answer is kept */
  #lastAccept: string | undefined = undefined;
  #lastChoice = -1;

  constructor(d: Data) {
    this.#encodings = d.encodings;
    this.#minBytes = d.minBytes;
    this.#types = new Set(d.types);
    this.#prefixes = d.typePrefixes;
    this.#gzip = d.gzip;
    this.#brotli = d.brotli;
  }

  readonly responseBody = (ctx: PolicyContext): ResponseBodyFilter | null => {
    if (ctx.status === 206) return null;
    const length = ctx.responseLength;
    if (length >= 0 && length < this.#minBytes) return null;
    const encoding = ctx.responseHeader('content-encoding');
    if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') return null;
    if (!this.#typeMatches(ctx.responseHeader('content-type'))) return null;
    const cc = ctx.responseHeader('cache-control');
    if (cc !== undefined && noTransform(ctx.responseHeaderValues('cache-control'))) return null;

    addVary(ctx);
    const accept = ctx.header('accept-encoding');
    let choice: number;
    if (accept === this.#lastAccept && accept !== undefined) choice = this.#lastChoice;
    else {
      choice = negotiate(accept, this.#encodings);
      this.#lastAccept = accept;
      this.#lastChoice = choice;
    }
    if (choice < 0) return null;

    const coding = this.#encodings[choice];
    if (encoding !== undefined) ctx.removeResponseHeader('content-encoding');
    ctx.addResponseHeader('content-encoding', coding);
    const etag = ctx.responseHeader('etag');
    if (etag !== undefined && !etag.startsWith('W/')) {
      ctx.removeResponseHeader('etag');
      ctx.addResponseHeader('etag', 'W/' + etag);
    }
    if (ctx.responseHeader('accept-ranges') !== undefined) ctx.removeResponseHeader('accept-ranges');
    return coding === 'br' ? brotliFilter(this.#brotli, length) : gzipFilter(this.#gzip);
  };

  #typeMatches(contentType: string | undefined): boolean {
    if (contentType === undefined) return false;
    const semi = contentType.indexOf(';');
    const media = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
    if (this.#types.has(media)) return true;
    const prefixes = this.#prefixes;
    for (let i = 0; i < prefixes.length; i++) if (media.startsWith(prefixes[i])) return true;
    return false;
  }
}

/** Cache-Control: no-transform in any of its field lines (directive names are case-insensitive). */
function noTransform(values: readonly string[]): boolean {
  for (const v of values) for (const d of v.split(',')) if (d.trim().toLowerCase() === 'no-transform') return true;
  return false;
}

/** Vary: Accept-Encoding, merged into the upstream's Vary (all its field lines) unless it names it or is "*". */
function addVary(ctx: PolicyContext): void {
  const values = ctx.responseHeaderValues('vary');
  if (values.length === 0) {
    ctx.addResponseHeader('vary', 'Accept-Encoding');
    return;
  }
  for (const v of values) {
    for (const t of v.split(',')) {
      const name = t.trim().toLowerCase();
      if (name === 'accept-encoding' || name === '*') return;
    }
  }
  ctx.removeResponseHeader('vary');
  ctx.addResponseHeader('vary', values.join(', ') + ', Accept-Encoding');
}

const OFF: PolicyHooks = {};

export const compressionPolicy: PolicyModule<Config, Data> = {
  name: 'compression',
  priority: PRIORITY.compression,
  schema: Schema,
  description: 'compress responses (gzip, brotli) for clients that accept it',
  compile(config) {
    const types: string[] = [];
    const typePrefixes: string[] = [];
    // the schema's pattern refuses "*/*" (compressing images and archives again only costs CPU)
    for (const t of config.contentTypes) {
      const lower = t.toLowerCase();
      if (lower.endsWith('/*')) typePrefixes.push(lower.slice(0, -1));
      else types.push(lower);
    }
    return {
      encodings: [...config.encodings],
      minBytes: config.minBytes,
      types,
      typePrefixes,
      gzip: { level: config.gzip.level, windowBits: config.gzip.windowBits, memLevel: config.gzip.memLevel },
      brotli: { quality: config.brotli.quality, window: config.brotli.window },
    };
  },
  create(data) {
    if (data.encodings.length === 0 || (data.types.length === 0 && data.typePrefixes.length === 0)) return OFF;
    const c = new Compression(data);
    return { responseBody: c.responseBody };
  },
};

import { Type, type Static } from '@sinclair/typebox';

/** The `cache` policy's config (policies.cache on a route or at the top level). See docs/caching.md. */
const HeaderName = Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", maxLength: 256 });
const ParamName = Type.String({ minLength: 1, maxLength: 256 });

/**
 * Request headers that proxies and frameworks commonly act on, which the key does not contain by default: a request
 * carrying one of them could make the upstream answer differently for everyone else (cache poisoning). Such a
 * request bypasses the cache unless the header is listed in key.headers.
 */
export const DEFAULT_BYPASS_HEADERS = [
  'x-forwarded-host',
  'x-forwarded-scheme',
  'x-forwarded-prefix',
  'x-forwarded-server',
  'x-host',
  'x-original-url',
  'x-rewrite-url',
  'x-original-host',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
];

export const CacheSchema = Type.Object(
  {
    zone: Type.String({
      pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$',
      default: 'default',
      description: 'the store this route uses; routes naming the same zone share its entries (and its size, which must then be the same)',
    }),
    maxBytes: Type.Integer({
      minimum: 65536,
      maximum: 4_294_967_295,
      default: 67_108_864,
      description: 'memory of the zone in each worker (the L1), in bytes: the least recently used entries leave beyond it',
    }),
    maxObjectBytes: Type.Integer({
      minimum: 1,
      maximum: 1_073_741_824,
      default: 1_048_576,
      description: 'largest body stored; a larger response streams to the client and is not stored (no more than maxBytes)',
    }),
    ttl: Type.Integer({
      minimum: 0,
      maximum: 31_536_000,
      default: 0,
      description: 'seconds of freshness for responses that carry neither Cache-Control nor Expires (an upstream that sends no caching headers); 0: off',
    }),
    heuristic: Type.Object(
      {
        enabled: Type.Boolean({
          default: false,
          description: 'heuristic freshness from Last-Modified where RFC 9111 4.2.2 allows it (off by default: an API response without explicit freshness is not served from the cache unvalidated)',
        }),
        fraction: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.1, description: 'share of the time since Last-Modified used as the lifetime' }),
        maxSeconds: Type.Integer({ minimum: 1, maximum: 31_536_000, default: 86400, description: 'upper bound of a heuristic lifetime' }),
      },
      { additionalProperties: false, default: {}, description: 'heuristic freshness (responses with Last-Modified and no explicit freshness)' },
    ),
    staleIfError: Type.Integer({
      minimum: 0,
      maximum: 31_536_000,
      default: 0,
      description: 'seconds a stale response may answer when the upstream fails (down, circuit open, 500/502/503/504), for responses without their own stale-if-error; 0: only theirs',
    }),
    staleWhileRevalidate: Type.Integer({
      minimum: 0,
      maximum: 31_536_000,
      default: 0,
      description: 'seconds a stale response may answer while it is refreshed, for responses without their own stale-while-revalidate; 0: only theirs',
    }),
    key: Type.Object(
      {
        consumer: Type.Boolean({ default: false, description: 'the consumer id (from authentication) is part of the key' }),
        plan: Type.Boolean({ default: false, description: "the consumer's plan is part of the key" }),
        headers: Type.Array(HeaderName, { default: [], maxItems: 16, secret: false, description: 'request headers whose values are part of the key' }),
        query: Type.Union([Type.Literal('all'), Type.Literal('include'), Type.Literal('exclude'), Type.Literal('none')], {
          default: 'all',
          description: 'query parameters in the key: all, only `params` (include), all but `params` (exclude), none. Parameters left out are also removed from the upstream request',
        }),
        params: Type.Array(ParamName, { default: [], maxItems: 64, description: 'the parameter names for query: include / exclude' }),
        sortQuery: Type.Boolean({ default: false, description: 'the key sorts query parameters (a=1&b=2 and b=2&a=1 share an entry)' }),
      },
      { additionalProperties: false, default: {}, secret: false, description: 'what the cache key contains besides method, host and target' },
    ),
    setCookie: Type.Union([Type.Literal('store'), Type.Literal('pass')], {
      default: 'pass',
      secret: false,
      description:
        'responses with Set-Cookie: pass (never stored: a session cookie is never served to another client, as nginx and Varnish do by default) or store (RFC 9111 3.1: stored with the cookie and served to every client, unless the origin says private or no-cache="set-cookie")',
    }),
    tagHeader: Type.Union([HeaderName, Type.Null()], {
      default: 'surrogate-key',
      description: 'response header whose space- or comma-separated values tag the entry for purge by tag (Surrogate-Key, Cache-Tag); null: none',
    }),
    coalesce: Type.Object(
      {
        enabled: Type.Boolean({ default: true, description: 'concurrent misses for one key send one request upstream' }),
        timeoutMs: Type.Integer({ minimum: 1, maximum: 600_000, default: 5000, description: 'longest wait for the first request; then a waiter goes upstream itself' }),
        passSeconds: Type.Integer({ minimum: 0, maximum: 3600, default: 10, secret: false, description: 'a key whose response was uncacheable does not coalesce for this long (hit-for-pass)' }),
      },
      { additionalProperties: false, default: {}, description: 'request coalescing' },
    ),
    bypassHeaders: Type.Array(HeaderName, {
      default: DEFAULT_BYPASS_HEADERS,
      maxItems: 64,
      secret: false,
      description: 'a request with one of these headers bypasses the cache (they could change the answer without being in the key); a header in key.headers is exempt',
    }),
    name: Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$", default: 'nanogate', description: 'the cache name in Cache-Status' }),
    l2: Type.Optional(
      Type.Object(
        {
          namespace: Type.Optional(
            Type.String({
              pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$',
              description: 'keys live under ng:cache:<namespace>: in Redis, and purges travel on its channel; default: the zone name. Nodes that share entries use the same one',
            }),
          ),
          timeoutMs: Type.Integer({ minimum: 1, maximum: 10_000, default: 50, description: 'the longest a lookup waits for Redis; slower counts as a miss (three in a row: Redis is treated as down, the cache serves from L1 and upstream)' }),
          compression: Type.Union([Type.Literal('deflate'), Type.Literal('brotli'), Type.Literal('off')], {
            default: 'deflate',
            description: 'how values at least compressAboveBytes long are compressed in Redis (a response that already has a Content-Encoding is not)',
          }),
          compressAboveBytes: Type.Integer({
            minimum: 0,
            maximum: 1_073_741_824,
            default: 4096,
            description: 'packed size from which values are compressed (below it, inflating on every hit costs more than the bytes saved: zlib sets up ~30 µs per value)',
          }),
          maxBodyBytes: Type.Integer({ minimum: 0, maximum: 1_073_741_824, default: 1_048_576, description: 'larger bodies stay in L1 only' }),
          purgeAckTimeoutMs: Type.Integer({
            minimum: 1,
            maximum: 60_000,
            default: 1000,
            description: 'how long a purge waits for the other nodes to confirm that they applied it (the admin API says how many did)',
          }),
        },
        {
          additionalProperties: false,
          description: 'shared second level in the top-level redis: section (docs/caching.md#redis-l2): L1 -> L2 -> upstream; an outage of Redis leaves L1 only',
        },
      ),
    ),
  },
  { additionalProperties: false, description: 'RFC 9111 shared response cache (see docs/caching.md)' },
);
export type CacheConfig = Static<typeof CacheSchema>;

/**
 * Request keys for consistent hashing: a 32-bit string hash that allocates nothing, and `compileHashKey`, which
 * turns the configured sources into one function of the request, built when the config loads.
 */

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * FNV-1a over the UTF-16 code units of s[start, end), finished with murmur3's fmix32 avalanche. FNV-1a alone leaves
 * the low bits of short, similar keys ("user-1", "user-2") poorly mixed, and the Maglev lookup takes the hash modulo
 * the table size; the finaliser spreads every input bit over the whole word. Reads char codes in place, so hashing
 * a header value, a cookie or a query parameter inside a longer string makes no substring.
 */
export function hashString(s: string, start = 0, end = s.length, seed = 0): number {
  let h = (FNV_OFFSET ^ seed) | 0;
  for (let i = start; i < end; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, FNV_PRIME);
  }
  return fmix32(h);
}

/** murmur3's 32-bit finaliser: every input bit flips each output bit with probability about 1/2. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * What the hasher needs from a request. The lead's request context implements it; values are read, never kept.
 *
 * @example
 *   const key = compileHashKey(['cookie:session', 'ip']);
 *   balancer.pick(view, -1, key(ctx));
 */
export interface HashKeyRequest {
  /** first value of a header (lower-case name), or undefined / null when absent */
  header(name: string): string | null | undefined;
  /** a cookie's value when the context parses cookies; without it the Cookie header is scanned in place */
  cookie?(name: string): string | null | undefined;
  /** the raw query string without '?' ('' when none); parameters are matched and hashed undecoded */
  readonly query: string;
  /** the client address as the gateway resolved it (behind trusted proxies: the first untrusted hop) */
  readonly clientIp: string;
  /** the authenticated consumer's id, or null */
  readonly consumerId: string | null;
  /** the request path, without the query */
  readonly path: string;
}

/** A source as written in the config: `header:<name>`, `cookie:<name>`, `query:<name>`, `ip`, `consumer`, `path`. */
export type HashSource = string;

export const HASH_SOURCE_PATTERN = "^(ip|consumer|path|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+|cookie:[!#$%&'*+.^_`|~0-9A-Za-z-]+|query:[^&=#\\s]+)$";
const SOURCE_RE = new RegExp(HASH_SOURCE_PATTERN);

const ABSENT = -1;

type Step = (req: HashKeyRequest) => number;

/**
 * Compiles the configured sources into `(request) => 32-bit key`. The first source present in the request gives the
 * key; when none is, the client address does, so key-less requests spread by client instead of all landing on the
 * node that owns one constant key. Control plane: throws on a source it does not know (the schema refuses them
 * first). The returned function allocates nothing.
 */
export function compileHashKey(sources: readonly HashSource[]): (req: HashKeyRequest) => number {
  if (sources.length === 0) throw new RangeError('hash key: at least one source is needed (e.g. "ip")');
  const steps: Step[] = sources.map(compileSource);
  const ip = (req: HashKeyRequest) => hashString(req.clientIp);
  if (steps.length === 1) {
    const only = steps[0];
    return (req) => {
      const h = only(req);
      return h === ABSENT ? ip(req) : h;
    };
  }
  return (req) => {
    for (let i = 0; i < steps.length; i++) {
      const h = steps[i](req);
      if (h !== ABSENT) return h;
    }
    return ip(req);
  };
}

function compileSource(source: HashSource): Step {
  if (!SOURCE_RE.test(source)) throw new RangeError(`hash key: unknown source "${source}" (ip, consumer, path, header:<name>, cookie:<name> or query:<name>)`);
  if (source === 'ip') return (req) => hashString(req.clientIp);
  if (source === 'path') return (req) => hashString(req.path);
  if (source === 'consumer') return (req) => (req.consumerId === null ? ABSENT : hashString(req.consumerId));
  const colon = source.indexOf(':');
  const kind = source.slice(0, colon);
  const name = source.slice(colon + 1);
  if (kind === 'header') {
    const lower = name.toLowerCase();
    return (req) => {
      const v = req.header(lower);
      return v === undefined || v === null ? ABSENT : hashString(v);
    };
  }
  if (kind === 'cookie') {
    return (req) => {
      if (req.cookie !== undefined) {
        const v = req.cookie(name);
        return v === undefined || v === null ? ABSENT : hashString(v);
      }
      const header = req.header('cookie');
      return header ? hashPair(header, name, ';', true) : ABSENT;
    };
  }
  return (req) => (req.query.length === 0 ? ABSENT : hashPair(req.query, name, '&', false));
}

/**
 * Finds `name=value` in a `sep`-separated list (a Cookie header: "a=1; b=2", or a query: "a=1&b=2") and hashes the
 * value in place. A parameter without '=' has the empty value. Cookie pairs may have spaces after the separator.
 */
export function hashPair(list: string, name: string, sep: string, trimSpace: boolean): number {
  const n = list.length;
  const len = name.length;
  let i = 0;
  while (i < n) {
    if (trimSpace) while (i < n && list.charCodeAt(i) === 0x20) i++;
    // indexOf is a native scan, several times faster than a charCodeAt loop over a long Cookie header.
    let end = list.indexOf(sep, i);
    if (end < 0) end = n;
    if (end - i >= len && list.startsWith(name, i)) {
      const after = i + len;
      if (after === end) return hashString(list, end, end);
      if (list.charCodeAt(after) === 0x3d /* = */) {
        let vEnd = end;
        if (trimSpace) while (vEnd > after + 1 && list.charCodeAt(vEnd - 1) === 0x20) vEnd--;
        return hashString(list, after + 1, vEnd);
      }
    }
    i = end + 1;
  }
  return ABSENT;
}

import { CacheControl, parseCacheControl } from './directives.js';
import { META_VERSION, type CacheMeta, type StoredEntry } from './entry.js';

/**
 * The RFC 9111 rules of a shared cache, as three functions the policy calls at three moments:
 *
 *   storable(...)   once per upstream response head: store it or not (and why not), and its freshness, computed once
 *   reuse(...)      once per hit: fresh, usable stale, or needs validation; a plain comparison of precomputed ms
 *                   numbers unless the request carries Cache-Control
 *   conditional(...) a client's If-None-Match / If-Modified-Since against the stored response (RFC 9110 13.2.2)
 *
 * http-cache-semantics implements the same rules with a CachePolicy object built per request and per response (it
 * parses both header sets into objects on every decision); bench/micro/cache.bench.ts measures the two on a hit.
 */

/** Statuses this cache understands (RFC 9111 3: a cache must not store a status it does not understand). */
const UNDERSTOOD = new Set([200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 451, 501]);
/** Heuristically cacheable by default (RFC 9110 15.1); 206 is never stored here (Range: see docs/caching.md). */
const HEURISTIC = new Set([200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]);

/** The compiled settings a decision needs (from the cache policy's config). */
export interface FreshnessSettings {
  /** heuristic freshness from Last-Modified (RFC 9111 4.2.2) */
  readonly heuristic: boolean;
  /** fraction of (Date - Last-Modified) used as the heuristic lifetime (typically 0.1) */
  readonly heuristicFraction: number;
  readonly heuristicMaxMs: number;
  /** lifetime for responses that carry no Cache-Control and no Expires at all (a route's TTL override); 0: off */
  readonly defaultTtlMs: number;
  /** stale-if-error window for responses that do not name one; 0: only the response's directive */
  readonly staleIfErrorMs: number;
  /** stale-while-revalidate window for responses that do not name one; 0: only the response's directive */
  readonly staleWhileRevalidateMs: number;
  /** response header whose values are purge tags (lower-case), or null */
  readonly tagHeader: string | null;
  /** responses with Set-Cookie are stored (with it) as RFC 9111 3.1 allows; false: never stored (setCookie: pass) */
  readonly storeSetCookie: boolean;
}

/** The value of a header in a flat [name, value, ...] list (names compared case-insensitively), repeated ones joined. */
export function field(headers: readonly string[], lowerName: string): string | undefined {
  let out: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    const n = headers[i];
    if (n.length === lowerName.length && (n === lowerName || n.toLowerCase() === lowerName)) out = out === undefined ? headers[i + 1] : out + ', ' + headers[i + 1];
  }
  return out;
}

/** HTTP-date (RFC 9110 5.6.7, the three formats Date.parse reads) to ms epoch; NaN when it does not parse. */
export function httpDate(v: string | undefined): number {
  if (v === undefined) return NaN;
  const t = Date.parse(v);
  return t;
}

/** A request as the decisions see it. */
export interface RequestFacts {
  readonly method: string;
  readonly cc: CacheControl;
  /** the request carries Authorization */
  readonly authorized: boolean;
}

/** Why a response was not stored: short tokens, used in Cache-Status `detail` and in metrics. */
export type NotStored =
  | 'method'
  | 'status'
  | 'request-no-store'
  | 'no-store'
  | 'private'
  | 'authorization'
  | 'vary-star'
  | 'set-cookie'
  | 'no-freshness'
  | 'must-understand';

/**
 * Decides whether a response may be stored by a shared cache (RFC 9111 3, 3.5, 4.2.1, 4.2.2, 5.2) and, when it
 * may, computes everything later hits need (CacheMeta). `headers` are the response's forwarded fields (hop-by-hop
 * and Connection-named fields already removed); `date` the origin's Date (ms) when known, else NaN.
 */
export function storable(
  s: FreshnessSettings,
  req: RequestFacts,
  status: number,
  headers: readonly string[],
  requestTime: number,
  responseTime: number,
  date: number,
  varyValue: (name: string) => string,
): CacheMeta | NotStored {
  if (req.method !== 'GET') return 'method';
  if (req.cc.noStore) return 'request-no-store';
  const cc = parseCacheControl(field(headers, 'cache-control'));
  // must-understand: store only a status we understand; then no-store is ignored (RFC 9111 5.2.2.3)
  if (!UNDERSTOOD.has(status)) return cc.mustUnderstand ? 'must-understand' : 'status';
  if (cc.noStore && !cc.mustUnderstand) return 'no-store';
  // private="field" only keeps those fields out of the store (unstoredFields)
  if (cc.private) return 'private';
  // RFC 9111 3.5: a shared cache stores an answer to an authenticated request only when the response allows it
  if (req.authorized && !cc.public && cc.sMaxAge < 0 && !cc.mustRevalidate) return 'authorization';
  const varyField = field(headers, 'vary');
  let vary: string[] = [];
  if (varyField !== undefined) {
    const names = new Set<string>();
    for (const part of varyField.split(',')) {
      const n = part.trim().toLowerCase();
      if (n === '*') return 'vary-star'; // RFC 9111 4.1: always fails to match
      if (n !== '') names.add(n);
    }
    vary = [...names].sort();
  }
  // RFC 9111 3.1: a cache stores every field, Set-Cookie included; an origin keeps a cookie out of a shared cache with
  // private or no-cache="set-cookie" (RFC 9111 5.2.2.4, 5.2.2.7). setCookie: pass keeps such responses out entirely.
  if (!s.storeSetCookie && field(headers, 'set-cookie') !== undefined) return 'set-cookie';

  if (Number.isNaN(date)) date = responseTime;
  const lastModifiedField = field(headers, 'last-modified');
  const etag = field(headers, 'etag') ?? null;
  let lifetimeMs: number;
  let heuristic = false;
  const expiresField = field(headers, 'expires');
  const ageMs = ageOf(field(headers, 'age'));
  if (cc.invalid) lifetimeMs = 0; // RFC 9111 4.2.1: conflicting or malformed freshness: stale
  else if (cc.sMaxAge >= 0) lifetimeMs = cc.sMaxAge * 1000;
  else if (cc.maxAge >= 0) lifetimeMs = cc.maxAge * 1000;
  else if (expiresField !== undefined) {
    // RFC 9111 5.3: an invalid Expires (e.g. "0") means already expired
    const exp = httpDate(expiresField);
    lifetimeMs = Number.isNaN(exp) ? 0 : Math.max(0, exp - date);
  } else if (cc.noCache) lifetimeMs = 0;
  else if (s.defaultTtlMs > 0 && field(headers, 'cache-control') === undefined) {
    lifetimeMs = s.defaultTtlMs;
    heuristic = true;
  } else if (s.heuristic && (cc.public || HEURISTIC.has(status)) && lastModifiedField !== undefined) {
    const lm = httpDate(lastModifiedField);
    lifetimeMs = Number.isNaN(lm) || lm >= date ? 0 : Math.min(s.heuristicMaxMs, Math.floor((date - lm) * s.heuristicFraction));
    heuristic = true;
  } else if (etag !== null || lastModifiedField !== undefined) {
    // no freshness, but a validator: stored to be revalidated on every use (a 304 is cheaper than the body)
    lifetimeMs = 0;
  } else return 'no-freshness';
  if (cc.noCache) lifetimeMs = 0;
  // s-maxage implies proxy-revalidate for a shared cache (RFC 9111 5.2.2.10)
  const mustRevalidate = cc.mustRevalidate || cc.proxyRevalidate || cc.sMaxAge >= 0;
  const swrMs = mustRevalidate || cc.noCache ? 0 : cc.staleWhileRevalidate >= 0 ? cc.staleWhileRevalidate * 1000 : s.staleWhileRevalidateMs;
  const sieMs = mustRevalidate || cc.noCache ? 0 : cc.staleIfError >= 0 ? cc.staleIfError * 1000 : s.staleIfErrorMs;
  // stale at once, nothing to validate it with, no stale window: storing it would serve nothing
  if (lifetimeMs === 0 && etag === null && lastModifiedField === undefined && swrMs === 0 && sieMs === 0) return 'no-freshness';

  // RFC 9111 4.2.3: corrected initial age
  const ageValue = ageMs;
  const apparentAge = Math.max(0, responseTime - date);
  const correctedAgeValue = ageValue + Math.max(0, responseTime - requestTime);
  const initialAgeMs = Math.max(apparentAge, correctedAgeValue);

  let tags: string[] = [];
  if (s.tagHeader !== null) {
    const t = field(headers, s.tagHeader);
    if (t !== undefined) tags = t.split(/[\s,]+/).filter((x) => x !== '');
  }
  return {
    v: META_VERSION,
    initialAgeMs,
    lifetimeMs,
    swrMs,
    sieMs,
    mustRevalidate,
    noCache: cc.noCache,
    immutable: cc.immutable,
    etag,
    lastModified: lastModifiedField ?? null,
    vary,
    varyValues: vary.map(varyValue),
    tags,
    heuristic,
  };
}

/**
 * The Age field (every line, joined) in ms. RFC 9111 5.1: a list uses its first member ("0, 7200" is 0, two lines
 * "7200" and "0" are 7200); a value that is not a non-negative integer ("-1", "1.5", "abc", "7200;a=1") is ignored
 * (0); one past 2^31 is 2^31 s (stale for any lifetime).
 */
export function ageOf(v: string | undefined): number {
  if (v === undefined) return 0;
  const comma = v.indexOf(',');
  const first = (comma < 0 ? v : v.slice(0, comma)).trim();
  if (!/^[0-9]+$/.test(first)) return 0;
  return (first.length > 10 ? 2147483648 : Math.min(2147483648, Number(first))) * 1000;
}

/**
 * Fields of a response that are not stored, by its Cache-Control: those named by no-cache="..." (they may not be
 * reused without validation, and the rest of the response may: RFC 9111 5.2.2.4) and by private="..." (a shared cache
 * must not store them: 5.2.2.7). null when there are none (the common case).
 */
export function unstoredFields(headers: readonly string[]): string[] | null {
  const text = field(headers, 'cache-control');
  if (text === undefined) return null;
  const cc = parseCacheControl(text);
  if (cc.noCacheFields === null) return cc.privateFields;
  return cc.privateFields === null ? cc.noCacheFields : cc.noCacheFields.concat(cc.privateFields);
}

/** reuse() results */
export const USE_FRESH = 0;
/** stale, within stale-while-revalidate: serve it and refresh it in the background */
export const USE_STALE_REVALIDATE = 1;
/** stale but the request's max-stale allows it */
export const USE_STALE = 2;
/** must be validated with the origin first (stale, no-cache, or the request asks for it) */
export const VALIDATE = 3;
export type Reuse = typeof USE_FRESH | typeof USE_STALE_REVALIDATE | typeof USE_STALE | typeof VALIDATE;

/** Current age of a stored response in ms (RFC 9111 4.2.3: corrected_initial_age + resident_time). */
export function currentAgeMs(entry: StoredEntry, meta: CacheMeta, now: number): number {
  return meta.initialAgeMs + Math.max(0, now - entry.storedAt);
}

/**
 * Whether a stored response may answer a request (RFC 9111 4, 4.2.4, 5.2.1). The common case, a request without
 * Cache-Control and a fresh entry, is the first comparison: `freshUntil` is precomputed when the entry is stored.
 */
export function reuse(entry: StoredEntry, meta: CacheMeta, freshUntil: number, now: number, reqCC: CacheControl | null): Reuse {
  if (reqCC === null) {
    if (now < freshUntil && !meta.noCache) return USE_FRESH;
    if (!meta.noCache && !meta.mustRevalidate && now < freshUntil + meta.swrMs) return USE_STALE_REVALIDATE;
    return VALIDATE;
  }
  const fresh = now < freshUntil && !meta.noCache;
  // an immutable response is not revalidated while fresh, whatever the client's reload directive (RFC 8246)
  if (fresh && meta.immutable && !reqCC.noCache) return USE_FRESH;
  if (reqCC.noCache) return VALIDATE;
  if (reqCC.maxAge >= 0 && currentAgeMs(entry, meta, now) > reqCC.maxAge * 1000) return VALIDATE;
  if (fresh) {
    if (reqCC.minFresh >= 0 && freshUntil - now < reqCC.minFresh * 1000) return VALIDATE;
    return USE_FRESH;
  }
  if (meta.noCache || meta.mustRevalidate) return VALIDATE;
  if (reqCC.maxStale >= 0 && now - freshUntil <= reqCC.maxStale * 1000) return USE_STALE;
  if (now < freshUntil + meta.swrMs) return USE_STALE_REVALIDATE;
  return VALIDATE;
}

/** A stored response within its stale-if-error window may answer in place of an error (RFC 5861 4). */
export function usableOnError(meta: CacheMeta, freshUntil: number, now: number): boolean {
  return !meta.mustRevalidate && now < freshUntil + meta.sieMs;
}

/** Weak comparison of entity tags (RFC 9110 8.8.3.2): W/ prefixes ignored. */
function weakMatch(list: string, etag: string): boolean {
  const e = etag.startsWith('W/') ? etag.slice(2) : etag;
  for (let raw of list.split(',')) {
    raw = raw.trim();
    if (raw === '*') return true;
    if ((raw.startsWith('W/') ? raw.slice(2) : raw) === e) return true;
  }
  return false;
}

/**
 * A client's conditional GET/HEAD against a stored response (RFC 9110 13.2.2): true when a 304 answers it.
 * If-None-Match is evaluated when present, and If-Modified-Since only without it.
 */
export function notModified(meta: CacheMeta, ifNoneMatch: string | undefined, ifModifiedSince: string | undefined, entry: StoredEntry): boolean {
  if (ifNoneMatch !== undefined) return meta.etag !== null && weakMatch(ifNoneMatch, meta.etag);
  if (ifModifiedSince === undefined) return false;
  const since = httpDate(ifModifiedSince);
  if (Number.isNaN(since)) return false;
  const lm = meta.lastModified !== null ? httpDate(meta.lastModified) : entry.storedAt;
  return !Number.isNaN(lm) && lm <= since;
}

/**
 * The stored headers updated by a 304 from the origin (RFC 9111 3.2, 4.3.4): each field of the 304 replaces the
 * stored field of that name, except the ones bound to the stored bytes (Content-Length, Content-Encoding,
 * Content-Range, Content-MD5) and the validator that selected the stored response (ETag). Content-Type is updated:
 * the cache keeps the bytes, not a parse of them.
 */
const KEEP_ON_304 = new Set(['content-length', 'content-encoding', 'content-range', 'content-md5', 'transfer-encoding', 'etag']);
export function updatedHeaders(stored: readonly string[], from304: readonly string[]): string[] {
  const replaced = new Set<string>();
  for (let i = 0; i < from304.length; i += 2) {
    const n = from304[i].toLowerCase();
    if (!KEEP_ON_304.has(n)) replaced.add(n);
  }
  const out: string[] = [];
  for (let i = 0; i < stored.length; i += 2) if (!replaced.has(stored[i])) out.push(stored[i], stored[i + 1]);
  for (let i = 0; i < from304.length; i += 2) {
    const n = from304[i].toLowerCase();
    if (replaced.has(n)) out.push(n, from304[i + 1]);
  }
  return out;
}

/** byteRange() result for a Range no part of which lies within the representation: answer 416 */
export const UNSATISFIABLE = -1;

/**
 * The one byte range of a Range header (RFC 9110 14.1.2) within a representation of `size` bytes, as [first, last]
 * (inclusive), for a 206 from a stored full response; UNSATISFIABLE for a range that starts past the end (or a suffix
 * of 0): 416; null when the header is to be ignored and the whole 200 sent: another unit, a malformed spec, several
 * ranges (RFC 9110 14.2 lets a server ignore Range; one range is what clients resuming a download send).
 */
export function byteRange(header: string, size: number): [number, number] | typeof UNSATISFIABLE | null {
  const m = /^\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*$/i.exec(header);
  if (m === null) return null;
  const [, a, b] = m;
  if (a === '') {
    if (b === '') return null;
    const n = Number(b);
    if (n === 0 || size === 0) return UNSATISFIABLE;
    return [Math.max(0, size - n), size - 1];
  }
  const first = Number(a);
  const last = b === '' ? size - 1 : Number(b);
  if (last < first) return null; // invalid range-spec: the field is ignored
  if (first >= size) return UNSATISFIABLE;
  return [first, Math.min(last, size - 1)];
}

/**
 * If-Range (RFC 9110 13.1.5): the range applies only when the validator names the stored representation: an
 * entity-tag compared strongly (a weak one never matches), or a date equal to a stored Last-Modified.
 */
export function ifRangeMatches(value: string | undefined, meta: CacheMeta): boolean {
  if (value === undefined) return true;
  const v = value.trim();
  if (v.startsWith('"') || v.startsWith('W/')) return meta.etag !== null && !meta.etag.startsWith('W/') && v === meta.etag;
  return meta.lastModified !== null && httpDate(v) === httpDate(meta.lastModified) && !Number.isNaN(httpDate(v));
}

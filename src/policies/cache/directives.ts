/**
 * Cache-Control (RFC 9111 5.2) parsed into one fixed-shape object: every directive the cache acts on is a field, so
 * a decision reads fields, never a map. Numbers are seconds; -1 means absent. A directive that appears twice with
 * different values, or a delta-seconds that does not parse, makes the field `invalid`: RFC 9111 4.2.1 says a cache
 * should then consider the response stale, and the request side ignores it.
 */
export class CacheControl {
  maxAge = -1;
  sMaxAge = -1;
  /** max-stale without a value: any staleness (Infinity) */
  maxStale = -1;
  minFresh = -1;
  staleWhileRevalidate = -1;
  staleIfError = -1;
  noStore = false;
  noCache = false;
  /** no-cache="field,...": only those fields need validation; treated as no-cache (conservative, RFC 9111 5.2.2.4) */
  noCacheFields = false;
  private = false;
  /** private="field,...": a shared cache may store the rest; not stored at all here (conservative) */
  privateFields = false;
  public = false;
  mustRevalidate = false;
  proxyRevalidate = false;
  mustUnderstand = false;
  immutable = false;
  onlyIfCached = false;
  noTransform = false;
  /** a freshness directive was malformed or repeated with another value */
  invalid = false;
}

/** The object for "no Cache-Control at all" (shared, never written). */
export const NO_DIRECTIVES: Readonly<CacheControl> = Object.freeze(new CacheControl());

const DIGITS = /^[0-9]+$/;

/** delta-seconds (RFC 9111 1.2.2): digits; values past 2^31 are 2^31. -2: malformed. */
function deltaSeconds(v: string | null): number {
  if (v === null) return -2;
  if (v.length >= 2 && v.charCodeAt(0) === 34 && v.charCodeAt(v.length - 1) === 34) v = v.slice(1, -1); // quoted (RFC 9111 5.2: senders should not, recipients should accept)
  if (!DIGITS.test(v)) return -2;
  const n = v.length > 10 ? 2147483648 : Number(v);
  return n > 2147483648 ? 2147483648 : n;
}

function setNumber(cc: CacheControl, field: 'maxAge' | 'sMaxAge' | 'minFresh' | 'staleWhileRevalidate' | 'staleIfError', v: string | null): void {
  const n = deltaSeconds(v);
  if (n === -2) {
    cc.invalid = true;
    return;
  }
  if (cc[field] !== -1 && cc[field] !== n) cc.invalid = true;
  cc[field] = cc[field] === -1 ? n : Math.min(cc[field], n);
}

/**
 * Parses one or more Cache-Control field values (joined with commas). Unknown directives are ignored (RFC 9111
 * 5.2.3); names are case-insensitive; quoted values may contain commas.
 */
export function parseCacheControl(value: string | undefined | null): CacheControl {
  if (value === undefined || value === null || value === '') return NO_DIRECTIVES as CacheControl;
  const cc = new CacheControl();
  const n = value.length;
  let i = 0;
  while (i < n) {
    // skip separators and whitespace
    let c = value.charCodeAt(i);
    while (i < n && (c === 44 || c === 32 || c === 9)) c = value.charCodeAt(++i);
    if (i >= n) break;
    let j = i;
    while (j < n && (c = value.charCodeAt(j)) !== 61 /* = */ && c !== 44) j++;
    const name = value.slice(i, j).trim().toLowerCase();
    let arg: string | null = null;
    if (j < n && value.charCodeAt(j) === 61) {
      j++;
      while (j < n && value.charCodeAt(j) === 32) j++;
      if (j < n && value.charCodeAt(j) === 34) {
        // quoted-string, with backslash escapes
        let k = j + 1;
        let s = '';
        while (k < n && value.charCodeAt(k) !== 34) {
          if (value.charCodeAt(k) === 92 && k + 1 < n) k++;
          s += value[k++];
        }
        arg = '"' + s + '"';
        j = k + 1;
        while (j < n && value.charCodeAt(j) !== 44) j++;
      } else {
        const start = j;
        while (j < n && value.charCodeAt(j) !== 44) j++;
        arg = value.slice(start, j).trim();
      }
    }
    i = j + 1;
    switch (name) {
      case 'max-age': setNumber(cc, 'maxAge', arg); break;
      case 's-maxage': setNumber(cc, 'sMaxAge', arg); break;
      case 'min-fresh': setNumber(cc, 'minFresh', arg); break;
      case 'stale-while-revalidate': setNumber(cc, 'staleWhileRevalidate', arg); break;
      case 'stale-if-error': setNumber(cc, 'staleIfError', arg); break;
      case 'max-stale': {
        if (arg === null) cc.maxStale = Infinity;
        else {
          const s = deltaSeconds(arg);
          if (s >= 0) cc.maxStale = s;
        }
        break;
      }
      case 'no-store': cc.noStore = true; break;
      case 'no-cache': cc.noCache = true; if (arg !== null) cc.noCacheFields = true; break;
      case 'private': cc.private = true; if (arg !== null) cc.privateFields = true; break;
      case 'public': cc.public = true; break;
      case 'must-revalidate': cc.mustRevalidate = true; break;
      case 'proxy-revalidate': cc.proxyRevalidate = true; break;
      case 'must-understand': cc.mustUnderstand = true; break;
      case 'immutable': cc.immutable = true; break;
      case 'only-if-cached': cc.onlyIfCached = true; break;
      case 'no-transform': cc.noTransform = true; break;
    }
  }
  return cc;
}

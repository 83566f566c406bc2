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
  /**
   * no-cache="field, ...": only the named fields may not be reused without validation (RFC 9111 5.2.2.4); the cache
   * stores the response without them (lower-case names), and `noCache` stays false. null: no qualified form.
   */
  noCacheFields: string[] | null = null;
  /** unqualified private (with private="field, ..." only `privateFields` is set) */
  private = false;
  /** private="field, ...": a shared cache must not store the named fields, and may store the rest (RFC 9111 5.2.2.7) */
  privateFields: string[] | null = null;
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
 * The field names of a qualified no-cache / private ("a, B" -> ['a', 'b']); null for the unqualified form, and for
 * an argument that names nothing (taken as unqualified: the stricter reading).
 */
function fieldNames(arg: string | null): string[] | null {
  if (arg === null) return null;
  const v = arg.length >= 2 && arg.charCodeAt(0) === 34 && arg.charCodeAt(arg.length - 1) === 34 ? arg.slice(1, -1) : arg;
  const names: string[] = [];
  for (const part of v.split(',')) {
    const n = part.trim().toLowerCase();
    if (n !== '') names.push(n);
  }
  return names.length === 0 ? null : names;
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
      case 'no-cache': {
        const names = fieldNames(arg);
        if (names === null) cc.noCache = true;
        else cc.noCacheFields = cc.noCacheFields === null ? names : cc.noCacheFields.concat(names);
        break;
      }
      case 'private': {
        const names = fieldNames(arg);
        if (names === null) cc.private = true;
        else cc.privateFields = cc.privateFields === null ? names : cc.privateFields.concat(names);
        break;
      }
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

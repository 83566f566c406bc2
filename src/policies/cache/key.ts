/**
 * Cache keys. A key is one string, readable in the admin API and in purges:
 *
 *   GET example.com/items/7?a=1&b=2
 *   GET example.com/items/7?a=1 |consumer=alice|plan=gold|h:accept-language=de
 *
 * method (HEAD looks up GET), host (lower-case, without the default port), the normalised target, then the
 * configured parts. Vary adds the response's chosen request fields after a NUL (see store.ts), so "purge by key"
 * removes every variant, and a prefix purge can name a path prefix ("GET example.com/items/").
 *
 * Normalisation (RFC 3986 6.2.2): percent-escapes of unreserved characters are decoded, other escapes upper-cased;
 * query parameters are filtered (include / exclude lists) and optionally sorted. Parameters left out of the key are
 * also removed from the upstream request by the policy: a parameter the cache ignores cannot change the answer.
 */

export interface KeySpec {
  readonly consumer: boolean;
  readonly plan: boolean;
  /** request header names (lower-case) whose values join the key */
  readonly headers: readonly string[];
  /** 'all': every parameter; 'include': only `params`; 'exclude': all but `params`; 'none': no query at all */
  readonly queryMode: 'all' | 'include' | 'exclude' | 'none';
  readonly params: readonly string[];
  readonly sortQuery: boolean;
}

/** What a key is built from (a PolicyContext has all of it). */
export interface KeyInput {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly hostHeader: string;
  readonly consumerId: string | null;
  readonly consumerPlan: string | null;
  header(name: string): string | undefined;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  c |= 0x20;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

function unreserved(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 95 || c === 126;
}

/** Percent-encoding normalisation; the input is returned as is when it has no '%' (the common case, no copy). */
export function normalizeEscapes(s: string): string {
  if (s.indexOf('%') < 0) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 37 && i + 2 < s.length) {
      const h = hexValue(s.charCodeAt(i + 1));
      const l = hexValue(s.charCodeAt(i + 2));
      if (h >= 0 && l >= 0) {
        const v = h * 16 + l;
        out += unreserved(v) ? String.fromCharCode(v) : '%' + s[i + 1].toUpperCase() + s[i + 2].toUpperCase();
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

/** Host header to its key form: lower-case, default port dropped. */
export function normalizeHost(host: string, tls: boolean): string {
  let h = host;
  for (let i = 0; i < h.length; i++) {
    const c = h.charCodeAt(i);
    if (c >= 65 && c <= 90) {
      h = h.toLowerCase();
      break;
    }
  }
  if (h.endsWith(tls ? ':443' : ':80')) h = h.slice(0, h.lastIndexOf(':'));
  return h;
}

/** The name of a query parameter, decoded for comparison with the configured names. */
function paramName(pair: string): string {
  const eq = pair.indexOf('=');
  const raw = eq < 0 ? pair : pair.slice(0, eq);
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return raw;
  }
}

export function normalizeQuery(query: string, spec: KeySpec): string {
  if (query === '' || spec.queryMode === 'none') return '';
  if (spec.queryMode === 'all' && !spec.sortQuery) return normalizeEscapes(query);
  let pairs = query.split('&').filter((p) => p !== '');
  if (spec.queryMode === 'include') pairs = pairs.filter((p) => spec.params.includes(paramName(p)));
  else if (spec.queryMode === 'exclude') pairs = pairs.filter((p) => !spec.params.includes(paramName(p)));
  pairs = pairs.map(normalizeEscapes);
  if (spec.sortQuery) pairs.sort();
  return pairs.join('&');
}

/** Query parameter names of a request that the key leaves out (to be removed from the upstream request). */
export function unkeyedParams(query: string, spec: KeySpec): string[] | null {
  if (query === '' || spec.queryMode === 'all') return null;
  let out: string[] | null = null;
  for (const p of query.split('&')) {
    if (p === '') continue;
    const name = paramName(p);
    const keyed = spec.queryMode === 'include' ? spec.params.includes(name) : spec.queryMode === 'exclude' ? !spec.params.includes(name) : false;
    if (!keyed && (out === null || !out.includes(name))) (out ??= []).push(name);
  }
  return out;
}

/** The primary key of a request (without Vary). */
export function primaryKey(req: KeyInput, spec: KeySpec, tls: boolean): string {
  const q = normalizeQuery(req.query, spec);
  let key = 'GET ' + normalizeHost(req.hostHeader, tls) + normalizeEscapes(req.path) + (q === '' ? '' : '?' + q);
  if (spec.consumer || spec.plan || spec.headers.length > 0) key += extraParts(req, spec);
  return key;
}

function extraParts(req: KeyInput, spec: KeySpec): string {
  let out = ' ';
  if (spec.consumer) out += '|consumer=' + (req.consumerId ?? '');
  if (spec.plan) out += '|plan=' + (req.consumerPlan ?? '');
  for (const h of spec.headers) out += '|h:' + h + '=' + (req.header(h) ?? '');
  return out;
}

/** The request's value of a Vary-named field, normalised (RFC 9111 4.1: whitespace around commas folded). */
export function varyValue(req: { header(name: string): string | undefined }, name: string): string {
  const v = req.header(name);
  if (v === undefined) return '';
  return v.indexOf(',') < 0 ? v.trim() : v.split(',').map((s) => s.trim()).join(',');
}

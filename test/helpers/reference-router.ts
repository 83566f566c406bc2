/**
 * A slow, obviously correct router: it looks at every route for every request and sorts the ones that match by the
 * documented rules. It reads the config's own route definitions (not the compiled plan), so it shares no code with
 * the radix tree it is compared against.
 *
 * The rules, in order:
 *   1. host: a route listing the exact host beats one listing a matching *.suffix (longer suffix first), which beats
 *      a route with no host condition;
 *   2. path, segment by segment from the left: a static segment beats a :param, which beats the trailing wildcard
 *      (so the longest static match wins);
 *   3. on the same path: higher priority, then more header/query conditions, then a method list over none, then a
 *      path (or path wildcard) route over a prefix route.
 * A route matches when its host, path, methods (HEAD is served by GET routes), header and query conditions all
 * accept the request. Two matching routes equal on every rule are a tie: the config should have been refused.
 */

export type RefPredicate = string | { exact?: string; prefix?: string; regex?: string; present?: boolean };

export interface RefRoute {
  name: string;
  match: {
    path?: string;
    prefix?: string;
    hosts?: string[];
    methods?: string[];
    headers?: Record<string, RefPredicate>;
    query?: Record<string, RefPredicate>;
  };
  priority?: number;
}

export interface RefRequest {
  /** lower case, without port */
  host: string;
  method: string;
  path: string;
  /** lower-case names */
  headers: Record<string, string>;
  /** without the "?" */
  query: string;
}

export type RefResult = { kind: 'none' } | { kind: 'route'; index: number } | { kind: 'tie'; indices: [number, number] };

const STATIC = 3;
const PARAM = 2;
const WILD = 1;

/** Ranks per path segment when `pattern` (a path with :params and an optional trailing *) matches, else null. */
export function pathRanks(pattern: string, path: string): number[] | null {
  const want = pattern.split('/').slice(1);
  const have = path.split('/').slice(1);
  const ranks: number[] = [];
  for (let i = 0; i < want.length; i++) {
    const w = want[i];
    if (w === '*' && i === want.length - 1) {
      // the wildcard takes everything after "base/", which may be empty, but the "/" must be there
      if (have.length <= i) return null;
      ranks.push(WILD);
      return ranks;
    }
    if (i >= have.length) return null;
    if (w.startsWith(':')) {
      if (have[i] === '') return null;
      ranks.push(PARAM);
    } else {
      if (have[i] !== w) return null;
      ranks.push(STATIC);
    }
  }
  return have.length === want.length ? ranks : null;
}

/** A prefix matches itself and everything below it: the same as an exact path plus "prefix/*". */
function prefixRanks(prefix: string, path: string): number[] | null {
  const p = prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  return pathRanks(p, path) ?? pathRanks(p === '/' ? '/*' : `${p}/*`, path);
}

/** [tier, suffix length] or null: tier 0 exact host, 1 wildcard host, 2 no host condition. */
function hostRank(route: RefRoute, host: string): [number, number] | null {
  const hosts = route.match.hosts;
  if (!hosts) return [2, 0];
  let best: [number, number] | null = null;
  for (const raw of hosts) {
    const h = raw.toLowerCase();
    if (h.startsWith('*.')) {
      const suffix = h.slice(1);
      if (host.endsWith(suffix) && host.length > suffix.length && (best === null || (best[0] === 1 && best[1] < suffix.length))) best = [1, suffix.length];
    } else if (h === host) {
      best = [0, 0];
    }
  }
  return best;
}

function predicateHolds(p: RefPredicate, value: string | undefined): boolean {
  if (typeof p === 'string') return value === p;
  if (p.exact !== undefined) return value === p.exact;
  if (p.prefix !== undefined) return value !== undefined && value.startsWith(p.prefix);
  if (p.regex !== undefined) return value !== undefined && new RegExp(p.regex).test(value);
  if (p.present !== undefined) return (value !== undefined) === p.present;
  throw new Error('empty predicate');
}

/** First value of each query parameter, decoded the way a form decoder does ("+" is a space). */
function queryValue(query: string, name: string): string | undefined {
  if (query === '') return undefined;
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    const key = decodeURIComponent((eq < 0 ? pair : pair.slice(0, eq)).replace(/\+/g, ' '));
    if (key === name) return eq < 0 ? '' : decodeURIComponent(pair.slice(eq + 1).replace(/\+/g, ' '));
  }
  return undefined;
}

function accepts(route: RefRoute, req: RefRequest): boolean {
  const m = route.match;
  if (m.methods && !m.methods.includes(req.method) && !(req.method === 'HEAD' && m.methods.includes('GET'))) return false;
  for (const [name, p] of Object.entries(m.headers ?? {})) if (!predicateHolds(p, req.headers[name.toLowerCase()])) return false;
  for (const [name, p] of Object.entries(m.query ?? {})) if (!predicateHolds(p, queryValue(req.query, name))) return false;
  return true;
}

interface Candidate {
  index: number;
  key: number[];
}

/** Larger is better, compared element by element. */
function sortKey(route: RefRoute, host: [number, number], ranks: number[]): number[] {
  const m = route.match;
  const conditions = Object.keys(m.headers ?? {}).length + Object.keys(m.query ?? {}).length;
  // rank lists of matches for one path can differ in length only after they already differ, so padding with 0 is safe
  const padded = [...ranks, ...new Array(Math.max(0, 64 - ranks.length)).fill(0)];
  return [-host[0], host[1], ...padded, route.priority ?? 0, conditions, m.methods ? 1 : 0, m.path !== undefined ? 1 : 0];
}

function compareKeys(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function referenceMatch(routes: readonly RefRoute[], req: RefRequest): RefResult {
  const candidates: Candidate[] = [];
  routes.forEach((route, index) => {
    const host = hostRank(route, req.host);
    if (host === null) return;
    const ranks = route.match.path !== undefined ? pathRanks(route.match.path, req.path) : prefixRanks(route.match.prefix!, req.path);
    if (ranks === null) return;
    if (!accepts(route, req)) return;
    candidates.push({ index, key: sortKey(route, host, ranks) });
  });
  if (candidates.length === 0) return { kind: 'none' };
  candidates.sort((a, b) => compareKeys(b.key, a.key));
  if (candidates.length > 1 && compareKeys(candidates[0].key, candidates[1].key) === 0) {
    return { kind: 'tie', indices: [candidates[0].index, candidates[1].index] };
  }
  return { kind: 'route', index: candidates[0].index };
}

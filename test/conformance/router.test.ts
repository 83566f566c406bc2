import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig } from '../../src/config/load.js';
import { compileConfig } from '../../src/config/compile.js';
import { ConfigError } from '../../src/config/errors.js';
import { Runtime } from '../../src/worker/runtime.js';
import { referenceMatch, type RefPredicate, type RefRequest, type RefRoute } from '../helpers/reference-router.js';

/**
 * The compiled router (radix tree + candidate checks in Runtime.match) against the reference router, on many random
 * route tables and requests. Tables the compiler refuses as ambiguous are skipped; any other refusal, any
 * disagreement, and any tie the compiler let through fail the test with a reproduction.
 *
 * The generator is seeded, so a failure names a seed that reproduces it: NANOGATE_ROUTER_SEED=<seed>.
 */

/** mulberry32: a small deterministic PRNG */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEGMENTS = ['a', 'b', 'ab', 'c'];
const HOSTS = ['api.example.com', '*.example.com', '*.b.example.com', 'other.test'];
const METHODS = ['GET', 'POST', 'DELETE', 'HEAD'];
const PREDICATES: RefPredicate[] = ['1', { exact: '2' }, { prefix: '1' }, { regex: '^[12]$' }, { present: true }, { present: false }];

const REQUEST_HOSTS = ['api.example.com', 'x.example.com', 'x.b.example.com', 'b.example.com', 'example.com', 'other.test', 'none.test'];
const REQUEST_SEGMENTS = ['a', 'b', 'ab', 'c', 'd', ''];
const REQUEST_METHODS = ['GET', 'POST', 'DELETE', 'HEAD', 'PUT'];
const HEADER_VALUES = [undefined, '1', '2', '12'];
const QUERIES = ['', 'v=1', 'v=2', 'v=12', 'w=1', 'v=1&v=2', 'v'];

function generateRoutes(rand: () => number, withHosts: boolean, withMethods: boolean): RefRoute[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const count = 2 + Math.floor(rand() * 5);
  const routes: RefRoute[] = [];
  for (let i = 0; i < count; i++) {
    const depth = Math.floor(rand() * 3);
    const segs: string[] = [];
    for (let d = 0; d < depth; d++) segs.push(rand() < 0.3 ? `:p${d}` : pick(SEGMENTS));
    const match: RefRoute['match'] = {};
    const shape = rand();
    if (shape < 0.45) match.path = '/' + (segs.length ? segs : [pick(SEGMENTS)]).join('/');
    else if (shape < 0.75) match.path = '/' + [...segs, '*'].join('/');
    else match.prefix = '/' + segs.filter((s) => !s.startsWith(':')).join('/');
    if (withHosts && rand() < 0.4) match.hosts = rand() < 0.8 ? [pick(HOSTS)] : [pick(HOSTS), pick(HOSTS)].filter((h, j, a) => a.indexOf(h) === j);
    if (withMethods && rand() < 0.5) match.methods = [pick(METHODS), ...(rand() < 0.3 ? [pick(METHODS)] : [])].filter((m, j, a) => a.indexOf(m) === j);
    if (rand() < 0.25) match.headers = { 'x-v': pick(PREDICATES) };
    if (rand() < 0.2) match.query = { v: pick(PREDICATES) };
    const route: RefRoute = { name: `r${i}`, match };
    if (rand() < 0.3) route.priority = 1 + Math.floor(rand() * 2);
    routes.push(route);
  }
  return routes;
}

function generateRequest(rand: () => number): RefRequest {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const depth = 1 + Math.floor(rand() * 3);
  const segs: string[] = [];
  for (let d = 0; d < depth; d++) segs.push(d < depth - 1 && rand() < 0.9 ? pick(SEGMENTS) : pick(REQUEST_SEGMENTS));
  const header = pick(HEADER_VALUES);
  return {
    host: pick(REQUEST_HOSTS),
    method: pick(REQUEST_METHODS),
    path: '/' + segs.join('/'),
    headers: header === undefined ? {} : { 'x-v': header },
    query: pick(QUERIES),
  };
}

interface Outcome {
  configs: number;
  compiled: number;
  requests: number;
  matched: number;
  failures: string[];
}

function runSeed(seed: number, withHosts: boolean, withMethods: boolean, out: Outcome): void {
  const rand = prng(seed);
  const routes = generateRoutes(rand, withHosts, withMethods);
  out.configs++;
  const config = validateConfig(
    JSON.parse(JSON.stringify({ upstreams: { u: { nodes: [{ url: 'http://127.0.0.1:9' }] } }, routes: routes.map((r) => ({ ...r, upstream: 'u' })) })),
    'generated.json',
  );
  let runtime: Runtime;
  try {
    runtime = new Runtime(compileConfig(config, 'generated.json').plan, null);
  } catch (err) {
    if (err instanceof ConfigError && err.issues.every((i) => /with no rule to choose/.test(i.message))) return;
    out.failures.push(`seed ${seed}: compile refused a table for another reason: ${(err as Error).message}\n${JSON.stringify(routes)}`);
    return;
  }
  out.compiled++;
  for (let i = 0; i < 40; i++) {
    const req = generateRequest(rand);
    out.requests++;
    const names = Object.keys(req.headers);
    const got = runtime.match(runtime.hostRouting ? req.host : '', req.path, {
      method: req.method,
      headerNames: names,
      headerValues: names.map((n) => req.headers[n]),
      headerCount: names.length,
      query: req.query,
    });
    const want = referenceMatch(routes, req);
    const gotName = got === null ? 'no route' : got.plan.name;
    if (want.kind === 'tie') {
      out.failures.push(
        `seed ${seed}: compile accepted routes ${routes[want.indices[0]].name} and ${routes[want.indices[1]].name}, which tie on ${JSON.stringify(req)} (compiled router chose ${gotName})\n${JSON.stringify(routes)}`,
      );
      return;
    }
    const wantName = want.kind === 'none' ? 'no route' : routes[want.index].name;
    if (want.kind === 'route') out.matched++;
    if (gotName !== wantName) {
      out.failures.push(`seed ${seed}: ${JSON.stringify(req)}: compiled router chose ${gotName}, reference chose ${wantName}\n${JSON.stringify(routes)}`);
      return;
    }
  }
}

function runMany(first: number, count: number, withHosts: boolean, withMethods: boolean): Outcome {
  const out: Outcome = { configs: 0, compiled: 0, requests: 0, matched: 0, failures: [] };
  const only = process.env.NANOGATE_ROUTER_SEED;
  if (only) runSeed(Number(only), withHosts, withMethods, out);
  else for (let seed = first; seed < first + count; seed++) runSeed(seed, withHosts, withMethods, out);
  return out;
}

function report(t: { diagnostic(msg: string): void }, out: Outcome): void {
  t.diagnostic(`${out.compiled} of ${out.configs} tables compiled; ${out.matched} of ${out.requests} requests matched a route`);
  // The run must have exercised the router: enough tables compiled and enough requests routed somewhere.
  if (!process.env.NANOGATE_ROUTER_SEED) {
    assert.ok(out.compiled >= out.configs / 4, `only ${out.compiled} of ${out.configs} generated tables compiled`);
    assert.ok(out.matched >= out.requests / 10, `only ${out.matched} of ${out.requests} requests matched a route`);
  }
  assert.equal(out.failures.length, 0, `${out.failures.length} disagreement(s); first ones:\n${out.failures.slice(0, 3).join('\n\n')}`);
}

test('paths, params, wildcards, prefixes, priority and predicates: compiled router agrees with the reference', (t) => {
  report(t, runMany(1, 2000, false, false));
});

test('with host conditions (exact and *.suffix): compiled router agrees with the reference', (t) => {
  report(t, runMany(100_001, 2000, true, false));
});

test('with method lists (HEAD served by GET routes): compiled router agrees with the reference', (t) => {
  report(t, runMany(200_001, 3000, true, true));
});

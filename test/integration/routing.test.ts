import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { assertProblem, closeAll, send } from '../helpers/http.js';

/**
 * Routing through a real gateway: the Host header (with port, any case), methods with 405 + Allow, header and query
 * predicates, and priority. Each route rewrites to its own name, so the echo upstream's `url` says which one won.
 */

/** Every test and hook here has a bound, so a gateway that stops answering fails the file instead of hanging it. */
const T = { timeout: 30_000 };

let up: TestUpstream;
let gw: TestGateway;

before(async () => {
  up = await startUpstream();
  gw = await startGateway(`
upstreams:
  u: { nodes: [{ url: ${up.url} }] }
routes:
  - { name: any, match: { prefix: /h }, upstream: u, rewrite: /any }
  - { name: star-host, match: { prefix: /h, hosts: ["*.example.com"] }, upstream: u, rewrite: /star-host }
  - { name: api-host, match: { prefix: /h, hosts: [api.example.com] }, upstream: u, rewrite: /api-host }
  - { name: user-me, match: { path: /users/me }, upstream: u, rewrite: /user-me }
  - { name: user-id, match: { path: /users/:id }, upstream: u, rewrite: /user-id/:id }
  - { name: user-wild, match: { path: /users/* }, upstream: u, rewrite: /user-wild/* }
  - { name: read, match: { path: /items, methods: [GET] }, upstream: u, rewrite: /read }
  - { name: write, match: { path: /items, methods: [POST, PUT] }, upstream: u, rewrite: /write }
  - { name: v2, match: { path: /versioned, headers: { x-api-version: "2" } }, upstream: u, rewrite: /v2 }
  - { name: beta, match: { path: /versioned, query: { beta: { present: true } } }, upstream: u, rewrite: /beta, priority: 1 }
  - { name: only-v1, match: { path: /gated, methods: [GET], headers: { x-api-version: "1" } }, upstream: u, rewrite: /only-v1 }
  - { name: low, match: { path: /ranked }, upstream: u, rewrite: /low }
  - { name: high, match: { path: /ranked, methods: [GET] }, upstream: u, rewrite: /high, priority: 5 }
`);
}, T);

after(() => closeAll(() => gw?.stop(), () => up?.close()), T);

async function routed(path: string, opts: { method?: string; host?: string; headers?: Record<string, string> } = {}): Promise<string> {
  const res = await send(gw.port, { method: opts.method, path, headers: { host: opts.host ?? 'localhost', ...opts.headers } });
  assert.equal(res.status, 200, res.text);
  // the query string goes through after the rewrite: compare the path alone
  return (JSON.parse(res.text) as { url: string }).url.split('?')[0];
}

test('exact over param over wildcard, with params substituted in the rewrite', T, async () => {
  assert.equal(await routed('/users/me'), '/user-me');
  assert.equal(await routed('/users/42'), '/user-id/42');
  assert.equal(await routed('/users/42/posts'), '/user-wild/42/posts');
});

test('hosts: exact over *.suffix over none, ignoring case and port', T, async () => {
  assert.equal(await routed('/h/x', { host: 'api.example.com' }), '/api-host');
  assert.equal(await routed('/h/x', { host: 'API.Example.COM:8443' }), '/api-host');
  assert.equal(await routed('/h/x', { host: 'shop.example.com' }), '/star-host');
  assert.equal(await routed('/h/x', { host: 'a.b.example.com' }), '/star-host');
  assert.equal(await routed('/h/x', { host: 'example.com' }), '/any');
  assert.equal(await routed('/h/x', { host: '127.0.0.1:8080' }), '/any');
});

test('method filters: the matching method wins; HEAD goes to the GET route', T, async () => {
  assert.equal(await routed('/items'), '/read');
  assert.equal(await routed('/items', { method: 'POST' }), '/write');
  const head = await send(gw.port, { method: 'HEAD', path: '/items' });
  assert.equal(head.status, 200);
  assert.equal(up.received.at(-1)!.url, '/read');
  assert.equal(up.received.at(-1)!.method, 'HEAD');
});

test('a path served only for other methods gets 405 with Allow listing them', T, async () => {
  const res = await send(gw.port, { method: 'DELETE', path: '/items' });
  assertProblem(res, 405, 'NG_ERR_ROUTE_METHOD_NOT_ALLOWED');
  assert.equal(res.headers.allow, 'GET, POST, PUT');
});

test('header and query predicates pick the route; priority settles a request both accept', T, async () => {
  assert.equal(await routed('/versioned', { headers: { 'x-api-version': '2' } }), '/v2');
  assert.equal(await routed('/versioned?beta'), '/beta');
  assert.equal(await routed('/versioned?beta=1', { headers: { 'x-api-version': '2' } }), '/beta');
  // neither predicate holds: no route
  const res = await send(gw.port, { path: '/versioned', headers: { 'x-api-version': '3' } });
  assertProblem(res, 404, 'NG_ERR_ROUTE_NOT_FOUND');
});

test('priority decides between routes on the same path', T, async () => {
  assert.equal(await routed('/ranked'), '/high');
  assert.equal(await routed('/ranked', { method: 'POST' }), '/low');
});

test('a request that fails only a header condition is not told its method is wrong', T, async () => {
  // GET is allowed on /gated; the request lacks the header. A 405 with "Allow: GET" for a GET would be false.
  const gated = await startGateway(`
upstreams:
  u: { nodes: [{ url: ${up.url} }] }
routes:
  - { name: only-v1, match: { path: /gated, methods: [GET], headers: { x-api-version: "1" } }, upstream: u }
`);
  try {
    assert.equal((await send(gated.port, { path: '/gated', headers: { 'x-api-version': '1' } })).status, 200);
    const res = await send(gated.port, { path: '/gated' });
    assertProblem(res, 404, 'NG_ERR_ROUTE_NOT_FOUND');
  } finally {
    await gated.stop();
  }
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { assertProblem, send } from '../helpers/http.js';

/**
 * A preflight to a route with `methods: [GET]` was answered `Access-Control-Allow-Methods: GET, HEAD, POST, PUT,
 * PATCH, DELETE`, and a preflight asking for DELETE got 204 although the route answers DELETE with 405. Without
 * `cors.methods` the allowed methods are now the route's own (HEAD comes with GET, as the router serves it); a route
 * without `methods` keeps the old default, and an explicit `cors.methods` still wins.
 */

let up: TestUpstream;
let gw: TestGateway;
const ORIGIN = 'https://app.example.com';

before(async () => {
  up = await startUpstream();
  gw = await startGateway(`
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
policies:
  cors: { origins: ["${ORIGIN}"] }
routes:
  - { name: get-only, match: { prefix: /get, methods: [GET] }, upstream: app, policies: { cors: { origins: ["${ORIGIN}"] } } }
  - { name: writes, match: { prefix: /writes, methods: [POST, PUT] }, upstream: app }
  - { name: any, match: { prefix: /any }, upstream: app }
  - { name: explicit, match: { prefix: /explicit, methods: [GET] }, upstream: app, policies: { cors: { origins: ["${ORIGIN}"], methods: [GET, DELETE] } } }
`);
});
after(async () => {
  await gw.stop();
  await up.close();
});

const preflight = (path: string, method: string) =>
  send(gw.port, { method: 'OPTIONS', path, headers: { origin: ORIGIN, 'access-control-request-method': method } });

test('a preflight to a GET route advertises GET and HEAD only, and refuses DELETE', async () => {
  const ok = await preflight('/get/x', 'GET');
  assert.equal(ok.status, 204);
  assert.equal(ok.headers['access-control-allow-methods'], 'GET, HEAD');
  const refused = await preflight('/get/x', 'DELETE');
  assertProblem(refused, 403, 'NG_ERR_ACCESS_CORS_REJECTED');
  assert.equal(refused.headers['access-control-allow-methods'], undefined);
});

test("the top-level cors policy answers each route with that route's methods", async () => {
  const ok = await preflight('/writes/x', 'PUT');
  assert.equal(ok.status, 204);
  assert.equal(ok.headers['access-control-allow-methods'], 'POST, PUT');
  assertProblem(await preflight('/writes/x', 'GET'), 403, 'NG_ERR_ACCESS_CORS_REJECTED');
});

test('a route without methods keeps the default list; an explicit cors.methods wins over the route', async () => {
  const any = await preflight('/any/x', 'PATCH');
  assert.equal(any.status, 204);
  assert.equal(any.headers['access-control-allow-methods'], 'GET, HEAD, POST, PUT, PATCH, DELETE');
  const explicit = await preflight('/explicit/x', 'DELETE');
  assert.equal(explicit.status, 204);
  assert.equal(explicit.headers['access-control-allow-methods'], 'GET, DELETE');
});

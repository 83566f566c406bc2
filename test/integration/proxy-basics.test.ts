import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

let up: TestUpstream;
let gw: TestGateway;

before(async () => {
  up = await startUpstream();
  gw = await startGateway(`
upstreams:
  users: { nodes: [{ url: ${up.url} }] }
routes:
  - { name: user, match: { path: /users/:id, methods: [GET] }, upstream: users, rewrite: /v2/users/:id }
  - { name: api, match: { prefix: /api }, upstream: users, stripPrefix: true }
  - { name: root, match: { path: /exact }, upstream: users }
`);
});
after(async () => {
  await gw.stop();
  await up.close();
});

test('forwards a GET with its query string untouched and returns the upstream body', async () => {
  const res = await fetch(`${gw.url}/exact?a=%20b&c=d%2Fe`);
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.url, '/exact?a=%20b&c=d%2Fe');
  assert.equal(res.headers.get('via'), '1.1 nanogate');
  assert.ok(res.headers.get('x-request-id'));
});

test('rewrites params and strips prefixes', async () => {
  assert.equal((await (await fetch(`${gw.url}/users/42`)).json()).url, '/v2/users/42');
  assert.equal((await (await fetch(`${gw.url}/api/things/1?x=1`)).json()).url, '/things/1?x=1');
  assert.equal((await (await fetch(`${gw.url}/api`)).json()).url, '/');
});

test('unknown paths get a problem+json 404 with a stable code', async () => {
  const res = await fetch(`${gw.url}/nothing-here`);
  assert.equal(res.status, 404);
  assert.equal(res.headers.get('content-type'), 'application/problem+json');
  const body = await res.json();
  assert.equal(body.code, 'NG_ERR_ROUTE_NOT_FOUND');
  assert.equal(body.requestId, res.headers.get('x-request-id'));
});

test('a path that matches with another method gets 405 and Allow', async () => {
  const res = await fetch(`${gw.url}/users/1`, { method: 'DELETE' });
  assert.equal(res.status, 405);
  assert.equal(res.headers.get('allow'), 'GET');
  assert.equal((await res.json()).code, 'NG_ERR_ROUTE_METHOD_NOT_ALLOWED');
});

test('streams a POST body through', async () => {
  const payload = 'x'.repeat(200_000);
  const res = await fetch(`${gw.url}/api/upload`, { method: 'POST', body: payload });
  const body = await res.json();
  assert.equal(body.bodyLength, payload.length);
  assert.equal(body.headers['content-length'], String(payload.length));
});

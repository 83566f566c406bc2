import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { closedPort, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { assertProblem, send } from '../helpers/http.js';

let up: TestUpstream;
let gw: TestGateway;

before(async () => {
  up = await startUpstream((_req, res) => {
    res.writeHead(200, { 'x-powered-by': 'legacy', 'x-keep': 'yes', 'content-type': 'text/plain' });
    res.end('ok');
  });
  gw = await startGateway(`
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
  gone: { nodes: [{ url: "http://127.0.0.1:${await closedPort()}" }] }
policies:
  headers: { response: { set: { x-frame-options: DENY } } }
routes:
  - name: transformed
    match: { prefix: /t }
    upstream: app
    policies:
      headers:
        request: { set: { x-env: prod }, remove: [x-debug] }
        response: { remove: [x-powered-by], set: { cache-control: no-store } }
  - { name: plain, match: { prefix: /p }, upstream: app }
  - name: unicode
    match: { prefix: /u }
    upstream: app
    policies:
      headers: { response: { set: { x-note: "caf\u00e9 \u2713", x-after: ok } } }
  - name: dead
    match: { prefix: /d }
    upstream: gone
    policies:
      headers: { response: { remove: [x-powered-by], set: { cache-control: no-store } } }
`);
});
after(async () => {
  await gw.stop();
  await up.close();
});

test('request headers are set and removed before the upstream sees them', async () => {
  await fetch(`${gw.url}/t/1`, { headers: { 'x-debug': '1', 'x-env': 'dev' } });
  const seen = up.received.at(-1)!;
  assert.equal(seen.headers['x-env'], 'prod');
  assert.equal(seen.headers['x-debug'], undefined);
});

test('response headers are set and removed; a route-level entry replaces the global one', async () => {
  const res = await fetch(`${gw.url}/t/2`);
  assert.equal(res.headers.get('x-powered-by'), null);
  assert.equal(res.headers.get('cache-control'), 'no-store');
  assert.equal(res.headers.get('x-keep'), 'yes');
  assert.equal(res.headers.get('x-frame-options'), null);
});

test('a global policy applies to routes without their own entry', async () => {
  const res = await fetch(`${gw.url}/p/1`);
  assert.equal(res.headers.get('x-frame-options'), 'DENY');
  assert.equal(res.headers.get('x-powered-by'), 'legacy');
});

test('a header value set by a policy reaches the client as UTF-8, and the fields after it intact', async () => {
  const res = await send(gw.port, { path: '/u/1' });
  assert.equal(res.status, 200);
  // Node's client reads field values as latin1: the UTF-8 bytes come back one character per byte
  assert.equal(Buffer.from(String(res.headers['x-note']), 'latin1').toString('utf8'), 'caf\u00e9 \u2713');
  assert.equal(res.headers['x-after'], 'ok');
  assert.equal(res.headers['x-keep'], 'yes');
  assert.equal(res.text, 'ok');
});

test('a gateway error on a policy route still carries the response headers', async () => {
  // nothing listens at the node: the gateway answers 502 itself, and the route's headers policy still applies
  const res = await send(gw.port, { path: '/d/1' });
  assertProblem(res, 502, 'NG_ERR_UPSTREAM_CONNECT');
  assert.equal(res.headers['cache-control'], 'no-store');
  // the route-level entry replaces the global one here too
  assert.equal(res.headers['x-frame-options'], undefined);
});

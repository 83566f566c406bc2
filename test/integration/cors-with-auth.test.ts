import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

/**
 * Phase order on a route with authentication: browsers send preflights without credentials, so cors (priority
 * 2900) must answer them before auth (2500) asks for a token; auth's 401 then still carries the CORS headers so
 * that the page can read it.
 */

let up: TestUpstream;
let gw: TestGateway;

before(async () => {
  up = await startUpstream();
  gw = await startGateway(`
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
routes:
  - name: private
    match: { prefix: /private, methods: [GET, POST] }
    upstream: app
    policies:
      auth: { methods: { jwt: { keys: [{ alg: HS256, secret: "a-test-secret-that-is-long-enough-for-hs256" }] } } }
      cors: { origins: ["https://app.example.com"], credentials: true, allowHeaders: [Authorization, Content-Type] }
`);
});
after(async () => {
  await gw.stop();
  await up.close();
});

function call(method: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: gw.port, method, path: '/private/x', headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('a preflight on an authenticated route is answered before authentication', async () => {
  const before = up.received.length;
  const r = await call('OPTIONS', { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' });
  assert.equal(r.status, 204, r.body);
  assert.equal(r.headers['access-control-allow-origin'], 'https://app.example.com');
  assert.equal(r.headers['access-control-allow-headers'], 'authorization, content-type');
  assert.equal(up.received.length, before);
});

test("authentication's 401 carries the CORS headers", async () => {
  const r = await call('GET', { origin: 'https://app.example.com' });
  assert.equal(r.status, 401);
  assert.equal(JSON.parse(r.body).code, 'NG_ERR_AUTH_MISSING');
  assert.equal(r.headers['access-control-allow-origin'], 'https://app.example.com');
  assert.equal(r.headers['access-control-allow-credentials'], 'true');
});

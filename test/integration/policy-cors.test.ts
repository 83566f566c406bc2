import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { closedPort, startUpstream, type TestUpstream } from '../helpers/upstream.js';

/**
 * The cors policy against a real gateway and upstream: preflights answered at the gateway (never forwarded),
 * origins exact and wildcard, credentials, Vary, max-age, headers on actual responses and on gateway errors.
 */

let up: TestUpstream;
let gw: TestGateway;

before(async () => {
  // The upstream sends CORS headers of its own, which the route's policy replaces.
  up = await startUpstream((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'access-control-allow-origin': '*', 'x-total': '5', vary: 'Accept-Encoding' });
    res.end(`${req.method} ${req.url}`);
  });
  const down = await closedPort();
  gw = await startGateway(`
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
  down: { nodes: [{ url: "http://127.0.0.1:${down}" }] }
policies:
  cors: { origins: ["https://global.example.com"] }
routes:
  - name: api
    match: { prefix: /api, methods: [GET] }
    upstream: app
    policies:
      cors:
        origins: ["https://app.example.com", "https://*.example.org", "http://localhost:*"]
        exposeHeaders: [X-Total]
        maxAge: 300
  - name: cred
    match: { prefix: /cred }
    upstream: app
    policies:
      cors:
        origins: ["https://app.example.com"]
        credentials: true
        methods: [GET, POST, DELETE]
        allowHeaders: [Content-Type, X-Api-Version]
  - { name: star, match: { prefix: /star }, upstream: app, policies: { cors: { origins: ["*"], methods: ["*"] } } }
  - { name: star-cred, match: { prefix: /star-cred }, upstream: app, priority: 1, policies: { cors: { origins: ["*"], credentials: true } } }
  - { name: down, match: { prefix: /down }, upstream: down }
  - name: ip-denied
    match: { prefix: /ip-denied }
    upstream: app
    policies: { ipRestriction: { deny: [127.0.0.0/8] }, cors: { origins: ["https://app.example.com"] } }
  - { name: plain-get, match: { prefix: /plain, methods: [GET] }, upstream: app, policies: { cors: { origins: [] } } }
  - { name: options-ok, match: { prefix: /opt, methods: [GET, OPTIONS] }, upstream: app, policies: { headers: {} } }
`);
});
after(async () => {
  await gw.stop();
  await up.close();
});

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  raw: string[];
  body: string;
}

function call(method: string, path: string, headers: Record<string, string> = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: gw.port, method, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, raw: res.rawHeaders, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** every value of a response field, repeated fields kept apart */
function values(r: Res, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < r.raw.length; i += 2) if (r.raw[i].toLowerCase() === name) out.push(r.raw[i + 1]);
  return out;
}

function varyTokens(r: Res): string[] {
  return values(r, 'vary').flatMap((v) => v.split(',').map((t) => t.trim().toLowerCase()));
}

const preflight = (path: string, origin: string, method = 'GET', extra: Record<string, string> = {}) =>
  call('OPTIONS', path, { origin, 'access-control-request-method': method, ...extra });

test('an allowed preflight is answered 204 at the gateway with the route settings, and never forwarded', async () => {
  const before = up.received.length;
  const r = await preflight('/api/items', 'https://app.example.com', 'GET', { 'access-control-request-headers': 'x-trace, content-type' });
  assert.equal(r.status, 204);
  assert.equal(r.headers['access-control-allow-origin'], 'https://app.example.com');
  assert.equal(r.headers['access-control-allow-methods'], 'GET, HEAD', "without cors.methods, the route's own methods");
  assert.equal(r.headers['access-control-allow-headers'], 'x-trace, content-type', 'allowHeaders "*" echoes the requested list');
  assert.equal(r.headers['access-control-max-age'], '300');
  assert.equal(r.headers['access-control-allow-credentials'], undefined);
  assert.deepEqual(varyTokens(r), ['origin', 'access-control-request-headers']);
  assert.equal(r.body, '');
  assert.ok(r.headers['x-request-id']);
  assert.equal(up.received.length, before, 'the upstream saw no preflight');
});

test('the router lets a preflight reach a GET-only route with cors; with cors off (origins: []) it stays 405', async () => {
  const r = await preflight('/api/x', 'https://app.example.com', 'GET', { 'access-control-request-headers': 'x-trace' });
  assert.equal(r.status, 204, 'the route accepts only GET, but its cors policy answers preflights');
  const plain = await preflight('/plain/x', 'https://global.example.com');
  assert.equal(plain.status, 405);
  const off = await call('GET', '/plain/x', { origin: 'https://global.example.com' });
  assert.equal(off.headers['access-control-allow-origin'], '*', "with cors off the upstream's own headers pass untouched");
  assert.deepEqual(varyTokens(off), ['accept-encoding']);
  assert.equal(JSON.parse(plain.body).code, 'NG_ERR_ROUTE_METHOD_NOT_ALLOWED');
  // an OPTIONS that is not a preflight (no Access-Control-Request-Method) is an ordinary request
  const bare = await call('OPTIONS', '/api/x', { origin: 'https://app.example.com' });
  assert.equal(bare.status, 405);
  const before = up.received.length;
  const opt = await call('OPTIONS', '/opt/x', { origin: 'https://app.example.com' });
  assert.equal(opt.status, 200);
  assert.equal(up.received.length, before + 1);
});

test('wildcard origins: one or more host labels, or any port; nothing else', async () => {
  for (const origin of ['https://a.example.org', 'https://a.b-c.example.org', 'http://localhost:3000', 'http://localhost:8']) {
    const r = await preflight('/api/x', origin);
    assert.equal(r.status, 204, origin);
    assert.equal(r.headers['access-control-allow-origin'], origin);
  }
  for (const origin of [
    'https://example.org',
    'https://.example.org',
    'http://a.example.org',
    'https://evil.com/.example.org',
    'https://a.example.org.evil.com',
    'https://evil.com?.example.org',
    'http://localhost',
    'http://localhost:',
    'http://localhost:80a',
    'http://localhost:123456',
    'https://app.example.com.evil.com',
    'null',
  ]) {
    const r = await preflight('/api/x', origin);
    assert.equal(r.status, 403, origin);
    assert.equal(JSON.parse(r.body).code, 'NG_ERR_ACCESS_CORS_REJECTED', origin);
    assert.equal(r.headers['access-control-allow-origin'], undefined, origin);
  }
});

test('a preflight for a method or header the route does not allow gets 403 NG_ERR_ACCESS_CORS_REJECTED', async () => {
  const before = up.received.length;
  const m = await preflight('/cred/x', 'https://app.example.com', 'PATCH');
  assert.equal(m.status, 403);
  assert.equal(JSON.parse(m.body).code, 'NG_ERR_ACCESS_CORS_REJECTED');
  const h = await preflight('/cred/x', 'https://app.example.com', 'POST', { 'access-control-request-headers': 'content-type,x-secret' });
  assert.equal(h.status, 403);
  assert.match(JSON.parse(h.body).detail, /x-secret/);
  const ok = await preflight('/cred/x', 'https://app.example.com', 'POST', { 'access-control-request-headers': 'Content-Type, x-api-version' });
  assert.equal(ok.status, 204);
  assert.equal(ok.headers['access-control-allow-headers'], 'content-type, x-api-version');
  assert.equal(ok.headers['access-control-allow-methods'], 'GET, POST, DELETE');
  assert.equal(up.received.length, before);
});

test('with credentials the origin is echoed, never "*", and Access-Control-Allow-Credentials is sent', async () => {
  const p = await preflight('/cred/x', 'https://app.example.com', 'DELETE');
  assert.equal(p.headers['access-control-allow-origin'], 'https://app.example.com');
  assert.equal(p.headers['access-control-allow-credentials'], 'true');
  const a = await call('GET', '/cred/x', { origin: 'https://app.example.com' });
  assert.equal(a.headers['access-control-allow-origin'], 'https://app.example.com');
  assert.equal(a.headers['access-control-allow-credentials'], 'true');
  // origins: ["*"] with credentials: any origin is echoed
  const s = await call('GET', '/star-cred/x', { origin: 'https://anyone.test' });
  assert.equal(s.headers['access-control-allow-origin'], 'https://anyone.test');
  assert.equal(s.headers['access-control-allow-credentials'], 'true');
  assert.deepEqual(varyTokens(s), ['accept-encoding', 'origin']);
  const sp = await preflight('/star-cred/x', 'https://anyone.test');
  assert.equal(sp.headers['access-control-allow-origin'], 'https://anyone.test');
  const nul = await preflight('/star-cred/x', 'null');
  assert.equal(nul.status, 403, '"null" is allowed only when listed');
});

test('"*" without credentials: the same answer for everyone, so no Vary: Origin', async () => {
  const a = await call('GET', '/star/x', { origin: 'https://anyone.test' });
  assert.equal(a.status, 200);
  assert.deepEqual(values(a, 'access-control-allow-origin'), ['*'], "the upstream's own copy is replaced, not doubled");
  assert.deepEqual(varyTokens(a), ['accept-encoding']);
  const noOrigin = await call('GET', '/star/x');
  assert.equal(noOrigin.headers['access-control-allow-origin'], '*');
  const p = await preflight('/star/x', 'https://anyone.test', 'PROPFIND', { 'access-control-request-headers': 'x-a' });
  assert.equal(p.status, 204);
  assert.equal(p.headers['access-control-allow-origin'], '*');
  assert.equal(p.headers['access-control-allow-methods'], 'PROPFIND', 'methods "*" echoes the requested method');
  assert.deepEqual(varyTokens(p), ['access-control-request-method', 'access-control-request-headers']);
});

test('actual requests: allowed origins get the headers, others pass without them, Vary: Origin always', async () => {
  const ok = await call('GET', '/api/x', { origin: 'https://app.example.com' });
  assert.equal(ok.status, 200);
  assert.equal(ok.body, 'GET /api/x');
  assert.deepEqual(values(ok, 'access-control-allow-origin'), ['https://app.example.com']);
  assert.equal(ok.headers['access-control-expose-headers'], 'x-total');
  assert.equal(ok.headers['access-control-max-age'], undefined, 'max-age is for preflights only');
  assert.deepEqual(varyTokens(ok), ['accept-encoding', 'origin']);

  const other = await call('GET', '/api/x', { origin: 'https://evil.test' });
  assert.equal(other.status, 200, 'the browser enforces; the gateway passes the request');
  assert.deepEqual(values(other, 'access-control-allow-origin'), [], "the upstream's '*' is dropped too");
  assert.deepEqual(varyTokens(other), ['accept-encoding', 'origin']);

  const none = await call('GET', '/api/x');
  assert.equal(none.headers['access-control-allow-origin'], undefined);
  assert.deepEqual(varyTokens(none), ['accept-encoding', 'origin'], 'a cache must not reuse a no-Origin answer for an Origin request');
});

test('a global cors entry applies to routes without their own', async () => {
  const r = await call('GET', '/down/x', { origin: 'https://global.example.com' });
  assert.equal(r.headers['access-control-allow-origin'], 'https://global.example.com');
});

test('gateway error responses carry the CORS headers too', async () => {
  const r = await call('GET', '/down/x', { origin: 'https://global.example.com' });
  assert.equal(r.status, 502);
  assert.equal(JSON.parse(r.body).code, 'NG_ERR_UPSTREAM_CONNECT');
  assert.equal(r.headers['access-control-allow-origin'], 'https://global.example.com');
  assert.deepEqual(varyTokens(r), ['origin']);

  const denied = await call('GET', '/ip-denied/x', { origin: 'https://app.example.com' });
  assert.equal(denied.status, 403);
  assert.equal(JSON.parse(denied.body).code, 'NG_ERR_ACCESS_IP_DENIED');
  assert.equal(denied.headers['access-control-allow-origin'], 'https://app.example.com', 'so the page can read the error');
});

test('a rejected preflight carries no Access-Control-Allow-* headers', async () => {
  const r = await preflight('/cred/x', 'https://evil.test');
  assert.equal(r.status, 403);
  assert.equal(r.headers['content-type'], 'application/problem+json');
  for (const name of Object.keys(r.headers)) assert.ok(!name.startsWith('access-control-'), name);
});

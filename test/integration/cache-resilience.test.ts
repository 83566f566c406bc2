/**
 * The cache under upstream faults, with real servers that answer 5xx, die, or trip the circuit breaker:
 * stale-if-error (RFC 5861 4) serves a stored response in their place; must-revalidate forbids it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { answer, startCacheOrigin, type CacheOrigin } from '../helpers/cache-origin.js';
import { closedPort } from '../helpers/upstream.js';
import { send } from '../helpers/http.js';

let origin: CacheOrigin;
let dying: CacheOrigin;
let gw: TestGateway;
let failing = false;

before(async () => {
  origin = await startCacheOrigin();
  dying = await startCacheOrigin();
  gw = await startGateway(`
upstreams:
  origin: { nodes: [{ url: ${origin.url} }] }
  dying: { nodes: [{ url: ${dying.url} }] }
  tripping:
    nodes: [{ url: ${origin.url} }]
    circuitBreaker: { errorPercent: 50, minRequests: 3, windowMs: 10000, openMs: 60000 }
routes:
  - name: sie
    match: { prefix: /s }
    upstream: origin
    policies: { cache: {} }
  - name: sie-default
    match: { prefix: /d }
    upstream: origin
    policies: { cache: { staleIfError: 60 } }
  - name: down
    match: { prefix: /x }
    upstream: dying
    policies: { cache: {} }
  - name: breaker
    match: { prefix: /b }
    upstream: tripping
    policies: { cache: {} }
`);
});
after(async () => {
  await gw.stop();
  await origin.close();
  await dying.close().catch(() => {});
});

const get = (path: string, headers: Record<string, string> = {}) => send(gw.port, { path, headers });

test('stale-if-error: a 500/502/503/504 from the origin is answered with the stale response (RFC 5861 4)', async () => {
  for (const status of [500, 502, 503, 504]) {
    const path = `/s/err${status}`;
    origin.on(path, (_req, res, n) => {
      if (n === 1) return void res.writeHead(200, { 'cache-control': 'max-age=0, stale-if-error=60', 'content-type': 'text/plain' }).end('good');
      res.writeHead(status, { 'content-type': 'text/plain' }).end('bad');
    });
    await get(path);
    const r = await get(path);
    assert.equal(r.status, 200, `for ${status}`);
    assert.equal(r.text, 'good');
    assert.match(String(r.headers['cache-status']), new RegExp(`fwd=stale; fwd-status=${status};.*detail=stale-if-error`));
  }
});

test('stale-if-error: without the directive (and no configured default) the error goes through', async () => {
  origin.on('/s/nosie', (_req, res, n) => {
    if (n === 1) return void res.writeHead(200, { 'cache-control': 'max-age=0', etag: '"e"', 'content-type': 'text/plain' }).end('good');
    res.writeHead(503, { 'content-type': 'text/plain' }).end('bad');
  });
  await get('/s/nosie');
  assert.equal((await get('/s/nosie')).status, 503);
});

test('stale-if-error: the configured window applies to responses without their own', async () => {
  origin.on('/d/dflt', (_req, res, n) => {
    if (n === 1) return void res.writeHead(200, { 'cache-control': 'max-age=0', etag: '"e"', 'content-type': 'text/plain' }).end('good');
    res.writeHead(502, { 'content-type': 'text/plain' }).end('bad');
  });
  await get('/d/dflt');
  assert.equal((await get('/d/dflt')).text, 'good');
});

test('must-revalidate: an error is never hidden behind a stale response (RFC 9111 5.2.2.2)', async () => {
  origin.on('/s/mr', (_req, res, n) => {
    if (n === 1) return void res.writeHead(200, { 'cache-control': 'max-age=0, must-revalidate, stale-if-error=60', 'content-type': 'text/plain' }).end('good');
    res.writeHead(503, { 'content-type': 'text/plain' }).end('bad');
  });
  await get('/s/mr');
  assert.equal((await get('/s/mr')).status, 503);
});

test('stale-if-error covers an upstream that is down (connection refused)', async () => {
  dying.on('/x/down', answer({ 'cache-control': 'max-age=0, stale-if-error=60' }, 'alive'));
  await get('/x/down');
  await dying.close();
  const r = await get('/x/down');
  assert.equal(r.status, 200);
  assert.equal(r.text, 'alive 1');
  assert.match(String(r.headers['cache-status']), /detail=stale-if-error/);
  // nothing stored for another path: the client gets the gateway's error
  const miss = await get('/x/never');
  assert.equal(miss.status, 502);
});

test('stale-if-error covers an open circuit breaker', async () => {
  origin.on('/b/page', (_req, res) => {
    if (!failing) return void res.writeHead(200, { 'cache-control': 'max-age=0, stale-if-error=600', 'content-type': 'text/plain' }).end('cached page');
    res.writeHead(500).end('broken');
  });
  origin.on('/b/other', (_req, res) => void res.writeHead(500).end('broken'));
  await get('/b/page');
  failing = true;
  // trip the breaker with failures on another path
  for (let i = 0; i < 5; i++) await get('/b/other');
  const tripped = await get('/b/other');
  assert.equal(tripped.status, 503);
  assert.equal(JSON.parse(tripped.text).code, 'NG_ERR_UPSTREAM_CIRCUIT_OPEN');
  const before = origin.count('/b/page');
  const r = await get('/b/page');
  assert.equal(r.status, 200);
  assert.equal(r.text, 'cached page');
  assert.match(String(r.headers['cache-status']), /fwd-status=503; detail=stale-if-error/);
  assert.equal(origin.count('/b/page'), before, 'the open circuit kept the request from the origin');
  void closedPort;
});

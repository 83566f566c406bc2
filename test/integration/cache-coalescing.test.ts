/**
 * Request coalescing with a slow real origin: concurrent misses for one key send one request; an uncacheable answer
 * releases every waiter at once, in parallel; a waiter that waits too long goes upstream itself.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startCacheOrigin, type CacheOrigin } from '../helpers/cache-origin.js';
import { send } from '../helpers/http.js';

let origin: CacheOrigin;
let gw: TestGateway;
let inFlight = 0;
let maxInFlight = 0;

function slow(ms: number, headers: Record<string, string>) {
  return (_req: unknown, res: import('node:http').ServerResponse, n: number) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    setTimeout(() => {
      inFlight--;
      res.writeHead(200, { 'content-type': 'text/plain', ...headers }).end(`answer ${n}`);
    }, ms);
  };
}

before(async () => {
  origin = await startCacheOrigin();
  gw = await startGateway(`
upstreams:
  origin: { nodes: [{ url: ${origin.url} }] }
routes:
  - name: co
    match: { prefix: /co }
    upstream: origin
    policies: { cache: { coalesce: { timeoutMs: 10000 } } }
  - name: short
    match: { prefix: /short }
    upstream: origin
    policies: { cache: { coalesce: { timeoutMs: 100 } } }
  - name: off
    match: { prefix: /off }
    upstream: origin
    policies: { cache: { coalesce: { enabled: false } } }
`);
});
after(async () => {
  await gw.stop();
  await origin.close();
});

const burst = (path: string, n: number) => Promise.all(Array.from({ length: n }, () => send(gw.port, { path })));

test('concurrent misses for one key send one request upstream; every client gets its answer', async () => {
  origin.on('/co/a', slow(300, { 'cache-control': 'max-age=60' }));
  const all = await burst('/co/a', 10);
  assert.equal(origin.count('/co/a'), 1);
  for (const r of all) {
    assert.equal(r.status, 200);
    assert.equal(r.text, 'answer 1');
  }
  assert.ok(all.some((r) => /collapsed/.test(String(r.headers['cache-status']))));
});

test('an uncacheable answer releases all waiters at once, to the upstream in parallel (no one-at-a-time)', async () => {
  inFlight = 0;
  maxInFlight = 0;
  origin.on('/co/private', slow(300, { 'cache-control': 'private' }));
  const all = await burst('/co/private', 6);
  assert.equal(origin.count('/co/private'), 6);
  for (const r of all) assert.equal(r.status, 200);
  // the 5 waiters reached the origin together after the first answer (serialised, at most 1 would be in flight)
  assert.ok(maxInFlight >= 3, `at most ${maxInFlight} requests were at the origin at once`);
  // and the key is now a pass: the next burst does not wait in line either
  inFlight = 0;
  maxInFlight = 0;
  await burst('/co/private', 4);
  assert.equal(maxInFlight, 4);
});

test('a waiter that waits longer than coalesce.timeoutMs goes upstream itself', async () => {
  origin.on('/short/slow', slow(1500, { 'cache-control': 'max-age=60' }));
  const all = await burst('/short/slow', 3);
  for (const r of all) assert.equal(r.status, 200);
  assert.equal(origin.count('/short/slow'), 3);
});

test('coalescing off: every concurrent miss goes upstream', async () => {
  origin.on('/off/a', slow(200, { 'cache-control': 'max-age=60' }));
  await burst('/off/a', 4);
  assert.equal(origin.count('/off/a'), 4);
});

test('a leader whose client goes away still releases its waiters', async () => {
  origin.on('/co/abort', slow(300, { 'cache-control': 'no-store' }));
  const { request } = await import('node:http');
  const leader = request({ host: '127.0.0.1', port: gw.port, path: '/co/abort', agent: false });
  leader.on('error', () => {});
  leader.end();
  await new Promise((r) => setTimeout(r, 50));
  const waiter = send(gw.port, { path: '/co/abort' });
  leader.destroy();
  const r = await waiter;
  assert.equal(r.status, 200);
});

/**
 * Purge through the admin API and invalidation by unsafe methods, across every worker of the node: with two
 * workers, each worker's answer is told apart by its request-id prefix (random per worker), so the tests know that
 * both held an entry before a purge and that both lost it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { answer, startCacheOrigin, type CacheOrigin } from '../helpers/cache-origin.js';
import { send, type HttpResult } from '../helpers/http.js';
import { admin } from '../helpers/admin.js';

let origin: CacheOrigin;
let gw: TestGateway;

before(async () => {
  origin = await startCacheOrigin();
  gw = await startGateway(
    `
upstreams:
  origin: { nodes: [{ url: ${origin.url} }] }
routes:
  - name: cached
    match: { prefix: /p }
    upstream: origin
    policies: { cache: {} }
`,
    { workers: 2 },
  );
});
after(async () => {
  await gw.stop();
  await origin.close();
});

const worker = (r: HttpResult) => String(r.headers['x-request-id']).split('-')[0];
const hit = (r: HttpResult) => /; hit/.test(String(r.headers['cache-status']));

/** Requests (fresh connections) until both workers answered `path` from their cache. */
async function warmBoth(path: string, headers: Record<string, string> = {}): Promise<void> {
  const hitBy = new Set<string>();
  for (let i = 0; i < 200 && hitBy.size < 2; i++) {
    const r = await send(gw.port, { path, headers });
    if (hit(r)) hitBy.add(worker(r));
  }
  assert.equal(hitBy.size, 2, 'both workers hold the entry');
}

/** After a purge: the first answer of each worker is a miss. */
async function missedByBoth(path: string): Promise<void> {
  const first = new Map<string, boolean>();
  for (let i = 0; i < 200 && first.size < 2; i++) {
    const r = await send(gw.port, { path });
    if (!first.has(worker(r))) first.set(worker(r), hit(r));
  }
  assert.equal(first.size, 2);
  for (const [w, wasHit] of first) assert.equal(wasHit, false, `worker ${w} still had the entry`);
}

test('purge by key removes the entry from every worker (and every variant)', async () => {
  origin.on('/p/key', answer({ 'cache-control': 'max-age=600', vary: 'accept-language' }));
  await warmBoth('/p/key');
  const r = await admin(gw.adminUrl, 'POST', '/cache/purge', { body: JSON.stringify({ key: `GET 127.0.0.1:${gw.port}/p/key` }) });
  assert.equal(r.status, 200);
  assert.equal(r.body.removed, 2);
  assert.equal(r.body.workers, 2);
  await missedByBoth('/p/key');
});

test('purge by prefix removes every key under it, and only those', async () => {
  origin.on('/p/pre/a', answer({ 'cache-control': 'max-age=600' }));
  origin.on('/p/pre/b', answer({ 'cache-control': 'max-age=600' }));
  origin.on('/p/keep', answer({ 'cache-control': 'max-age=600' }));
  for (const p of ['/p/pre/a', '/p/pre/b', '/p/keep']) await warmBoth(p);
  const r = await admin(gw.adminUrl, 'POST', '/cache/purge', { body: JSON.stringify({ prefix: `GET 127.0.0.1:${gw.port}/p/pre/` }) });
  assert.equal(r.body.removed, 4);
  await missedByBoth('/p/pre/a');
  const kept = await send(gw.port, { path: '/p/keep' });
  assert.ok(hit(kept));
});

test('purge by tag (Surrogate-Key) removes every tagged entry', async () => {
  origin.on('/p/t1', answer({ 'cache-control': 'max-age=600', 'surrogate-key': 'product-42 list' }));
  origin.on('/p/t2', answer({ 'cache-control': 'max-age=600', 'surrogate-key': 'product-7 list' }));
  await warmBoth('/p/t1');
  await warmBoth('/p/t2');
  const r = await admin(gw.adminUrl, 'POST', '/cache/purge', { body: JSON.stringify({ tag: 'product-42' }) });
  assert.equal(r.body.removed, 2);
  await missedByBoth('/p/t1');
  assert.ok(hit(await send(gw.port, { path: '/p/t2' })));
  const all = await admin(gw.adminUrl, 'POST', '/cache/purge', { body: JSON.stringify({ tag: 'list' }) });
  assert.ok(all.body.removed >= 2);
});

test('purge refuses a malformed body with a precise 400', async () => {
  for (const body of ['{}', '{"key":"a","tag":"b"}', '{"tag":""}', '{"tag":5}', 'not json', '{"prefix":"/no-method"}']) {
    const r = await admin(gw.adminUrl, 'POST', '/cache/purge', { body });
    assert.equal(r.status, 400, body);
    assert.equal(r.body.code, 'NG_ERR_ADMIN_BAD_REQUEST');
  }
});

test('an unsafe request through one worker invalidates the URI in every worker (RFC 9111 4.4)', async () => {
  origin.on('/p/inv', (req, res, n) => {
    if (req.method === 'PUT') return void res.writeHead(204).end();
    res.writeHead(200, { 'cache-control': 'max-age=600', 'content-type': 'text/plain' }).end(`v${n}`);
  });
  await warmBoth('/p/inv');
  // The other worker hears of it through the control plane, after the PUT was answered: wait until the control plane
  // has had every worker apply it (watched, not changed), not for a fixed time.
  const g = gw.gateway;
  const purges: Promise<unknown>[] = [];
  const purge = g.purgeCacheEverywhere;
  g.purgeCacheEverywhere = (...args) => {
    const p = purge.apply(g, args);
    purges.push(p);
    return p;
  };
  try {
    const put = await send(gw.port, { path: '/p/inv', method: 'PUT', body: 'x', headers: { 'content-length': '1' } });
    assert.equal(put.status, 204);
    for (let i = 0; i < 500 && purges.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(purges.length, 1, 'the invalidation reached the control plane');
    await purges[0];
  } finally {
    g.purgeCacheEverywhere = purge;
  }
  await missedByBoth('/p/inv');
});

test('metrics: lookups by result, stores and stored bytes per zone', async () => {
  const m = await admin(gw.adminUrl, 'GET', '/metrics');
  const text = String(m.body);
  const value = (re: RegExp) => Number(text.match(re)?.[1] ?? NaN);
  assert.ok(value(/nanogate_cache_lookups_total\{zone="default",result="hit"\} (\d+)/) > 0);
  assert.ok(value(/nanogate_cache_lookups_total\{zone="default",result="miss"\} (\d+)/) > 0);
  assert.ok(value(/nanogate_cache_lookups_total\{zone="default",result="bypass"\} (\d+)/) > 0);
  assert.ok(value(/nanogate_cache_stores_total\{zone="default"\} (\d+)/) > 0);
  assert.ok(value(/nanogate_cache_stored_bytes\{zone="default"\} (\d+)/) > 0);
  assert.match(text, /nanogate_cache_entries\{zone="default"\} \d+/);
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { answer, startCacheOrigin, type CacheOrigin } from '../helpers/cache-origin.js';
import { send, waitFor } from '../helpers/http.js';
import { parsePrometheus } from '../helpers/prometheus.js';

// Two gateway nodes (processes) with one origin and one redis-server: what one node fetched, the other answers
// from the L2 with a cold L1; a purge on one node is applied everywhere before its call returns; and when Redis
// stops mid-run both keep serving (L1, then upstream) and say so, then use the L2 again once it is back.

const T = { timeout: 60_000 };
const HOST = 'api.test';

let redis: TestRedis;
let raw: Redis;
let origin: CacheOrigin;
let a: GatewayProcess;
let b: GatewayProcess;

before(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  raw.on('error', () => {});
  origin = await startCacheOrigin();
  const yaml = `
redis: { url: ${redis.url}, commandTimeoutMs: 250 }
upstreams:
  origin: { nodes: [{ url: ${origin.url} }] }
routes:
  - name: cached
    match: { prefix: /c }
    upstream: origin
    policies:
      cache: { l2: { timeoutMs: 100, purgeAckTimeoutMs: 2000 } }
`;
  [a, b] = await Promise.all([startGatewayProcess(yaml, { workers: 1 }), startGatewayProcess(yaml, { workers: 2 })]);
  for (const n of [a, b]) assert.ok(await waitFor(() => n.logs.some((l) => l.includes('cache purge bus: subscribed')), 10_000), 'each node subscribes');
});

after(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await origin?.close();
  raw?.disconnect();
  await redis?.stop();
});

const get = (node: GatewayProcess, path: string, headers: Record<string, string> = {}) => send(node.port, { path, headers: { host: HOST, ...headers } });

/** the L2 write is fire and forget: wait until Redis has the entry */
async function inL2(key: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if ((await raw.exists(`ng:cache:default:e:${key}`)) === 1) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`${JSON.stringify(key)} never reached the L2`);
}

async function purge(node: GatewayProcess, body: Record<string, string>): Promise<Record<string, unknown>> {
  const res = await fetch(`http://127.0.0.1:${node.adminPort}/cache/purge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(res.status, 200);
  return (await res.json()) as Record<string, unknown>;
}

async function metric(node: GatewayProcess, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${node.adminPort}/metrics`)).text();
  return parsePrometheus(text).sum(name);
}

/** Polls a metric until it is `value` (gauges are written once a second, each worker reconnects on its own). */
async function metricBecomes(node: GatewayProcess, name: string, value: number): Promise<number> {
  let v = await metric(node, name);
  for (const deadline = Date.now() + 10_000; v !== value && Date.now() < deadline; v = await metric(node, name)) await new Promise((r) => setTimeout(r, 50));
  return v;
}

test('Age on a hit from the L2: the origin\'s Age, plus the time the entry spent stored (RFC 9111 4.2.3)', T, async () => {
  origin.on('/c/aged', answer({ 'cache-control': 'public, max-age=600', age: '100' }));
  await get(a, '/c/aged');
  await inL2(`GET ${HOST}/c/aged`);
  // a second passes in the L2, so that the Age counts time spent there, not only the origin's value
  await new Promise((r) => setTimeout(r, 1100));
  const fromL2 = await get(b, '/c/aged');
  assert.match(String(fromL2.headers['cache-status']), /detail=l2/);
  const age = Number(fromL2.headers.age);
  assert.ok(age >= 101 && age < 160, `age ${fromL2.headers.age}`);
  assert.match(String(fromL2.headers['cache-status']), new RegExp(`ttl=${600 - age}|ttl=${599 - age}`), 'ttl = max-age - age');
  assert.equal(origin.count('/c/aged'), 1);
});

test('what one node fetched, the other answers from the L2 with a cold L1', T, async () => {
  origin.on('/c/shared', answer({ 'cache-control': 'public, max-age=60' }));
  const first = await get(a, '/c/shared');
  assert.match(String(first.headers['cache-status']), /fwd=uri-miss; fwd-status=200; stored/);
  await inL2(`GET ${HOST}/c/shared`);
  const fromL2 = await get(b, '/c/shared');
  assert.equal(fromL2.text, 'ok 1');
  assert.match(String(fromL2.headers['cache-status']), /^nanogate; hit; ttl=\d+; detail=l2$/);
  assert.equal(fromL2.headers['content-type'], 'text/plain');
  assert.ok(Number(fromL2.headers.age) >= 0);
  assert.equal(origin.count('/c/shared'), 1, 'the origin saw one request for two nodes');
  // later requests to that worker come from its L1; B's other worker may still ask the L2 once
  for (let i = 0; i < 4; i++) assert.equal((await get(b, '/c/shared')).text, 'ok 1');
  assert.equal(origin.count('/c/shared'), 1);
  assert.ok((await metric(b, 'nanogate_cache_l2_hits_total')) >= 1);
  assert.equal(await metricBecomes(a, 'nanogate_cache_l2_connected_workers', 1), 1);
  assert.equal(await metricBecomes(b, 'nanogate_cache_l2_connected_workers', 2), 2);
});

test('Vary: a cold node finds the newest variant at the primary key and the others under their own', T, async () => {
  origin.on('/c/vary', (req, res, n) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60', vary: 'accept-language' });
    res.end(`${req.headers['accept-language']} ${n}`);
  });
  assert.equal((await get(a, '/c/vary', { 'accept-language': 'en' })).text, 'en 1');
  await inL2(`GET ${HOST}/c/vary\0en`);
  assert.equal((await get(a, '/c/vary', { 'accept-language': 'de' })).text, 'de 2');
  await inL2(`GET ${HOST}/c/vary\0de`);
  const de = await get(b, '/c/vary', { 'accept-language': 'de' });
  const en = await get(b, '/c/vary', { 'accept-language': 'en' });
  assert.equal(de.text, 'de 2');
  assert.equal(en.text, 'en 1');
  assert.match(String(en.headers['cache-status']), /hit.*detail=l2/);
  assert.equal(origin.count('/c/vary'), 2);
});

test('a purge on one node is applied in the L2 and in every node before the call returns', T, async () => {
  origin.on('/c/tagged', answer({ 'cache-control': 'max-age=60', 'surrogate-key': 'product-7 list' }));
  origin.on('/c/other', answer({ 'cache-control': 'max-age=60', 'surrogate-key': 'list' }));
  await get(a, '/c/tagged');
  await get(a, '/c/other');
  await inL2(`GET ${HOST}/c/tagged`);
  await inL2(`GET ${HOST}/c/other`);
  // both of B's workers get the entries into their L1s (connections spread between workers: ask a few times)
  for (let i = 0; i < 6; i++) {
    await get(b, '/c/tagged');
    await get(b, '/c/other');
  }
  assert.equal(origin.count('/c/tagged'), 1);

  const r = await purge(b, { tag: 'product-7' });
  assert.equal(r.removed as number >= 1, true, 'B had it in its workers');
  assert.deepEqual((r.l2 as { namespace: string; nodes: number; confirmed: number; queued: boolean }[]).map(({ namespace, nodes, confirmed, queued }) => ({ namespace, nodes, confirmed, queued })), [
    { namespace: 'default', nodes: 2, confirmed: 2, queued: false },
  ]);
  assert.equal(await raw.exists(`ng:cache:default:e:GET ${HOST}/c/tagged`), 0, 'gone from the L2');
  // no waiting: the call returned after both nodes confirmed
  const onA = await get(a, '/c/tagged');
  assert.match(String(onA.headers['cache-status']), /fwd=uri-miss/);
  assert.equal(onA.text, 'ok 2');
  assert.match(String((await get(a, '/c/other')).headers['cache-status']), /hit/, 'an entry with another tag stays');

  // by key and by prefix, from the other node
  await inL2(`GET ${HOST}/c/tagged`);
  const byKey = await purge(a, { key: `GET ${HOST}/c/tagged` });
  assert.equal((byKey.l2 as { confirmed: number }[])[0].confirmed, 2);
  assert.match(String((await get(b, '/c/tagged')).headers['cache-status']), /fwd=uri-miss/);
  await inL2(`GET ${HOST}/c/tagged`);
  const byPrefix = await purge(a, { prefix: `GET ${HOST}/c/` });
  assert.ok((byPrefix.l2 as { l2Removed: number }[])[0].l2Removed >= 2);
  for (const p of ['/c/tagged', '/c/other', '/c/shared']) assert.match(String((await get(b, p)).headers['cache-status']), /fwd=uri-miss/, p);
});

test('an unsafe request through one node invalidates the URI on every node and in the L2', T, async () => {
  origin.on('/c/item', (req, res, n) => {
    res.writeHead(req.method === 'GET' ? 200 : 204, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' });
    res.end(req.method === 'GET' ? `item ${n}` : undefined);
  });
  await get(a, '/c/item');
  await inL2(`GET ${HOST}/c/item`);
  assert.match(String((await get(b, '/c/item')).headers['cache-status']), /hit/);
  const put = await send(a.port, { method: 'PUT', path: '/c/item', headers: { host: HOST, 'content-length': '2' }, body: '{}' });
  assert.equal(put.status, 204);
  // the invalidation travels worker -> control plane -> L2 and the other node, after the PUT's response
  for (const deadline = Date.now() + 10_000; (await raw.exists(`ng:cache:default:e:GET ${HOST}/c/item`)) === 1 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 20));
  assert.equal(await raw.exists(`ng:cache:default:e:GET ${HOST}/c/item`), 0, 'gone from the L2');
  let seen = '';
  for (const deadline = Date.now() + 10_000; (seen === '' || seen === 'item 1') && Date.now() < deadline; ) {
    seen = (await get(b, '/c/item')).text;
    if (seen === 'item 1') await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(seen, 'item 3', 'B serves the new content (the PUT was request 2 at the origin)');
});

test('outage mid-run: Redis stops, both nodes keep serving (L1, then upstream) and say so; the L2 comes back with it', T, async () => {
  origin.on('/c/before', answer({ 'cache-control': 'max-age=60' }));
  origin.on('/c/during', answer({ 'cache-control': 'max-age=60' }));
  origin.on('/c/after', answer({ 'cache-control': 'max-age=60' }));
  await get(a, '/c/before');
  await get(a, '/c/before'); // in A's L1
  await redis.stop();
  for (const n of [a, b]) assert.ok(await waitFor(() => n.logs.some((l) => l.includes('cache l2: redis unreachable')), 10_000), 'a log line says the L2 is down');
  assert.ok(await waitFor(() => a.logs.some((l) => l.includes('cache purge bus: lost its subscription')), 10_000));
  assert.equal(await metricBecomes(a, 'nanogate_cache_l2_connected_workers', 0), 0);
  assert.equal(await metricBecomes(b, 'nanogate_cache_l2_connected_workers', 0), 0);
  const hit = await get(a, '/c/before');
  assert.equal(hit.status, 200);
  assert.match(String(hit.headers['cache-status']), /hit/, 'L1 still answers');
  const fetched = await get(b, '/c/during');
  assert.equal(fetched.status, 200);
  assert.equal(fetched.text, 'ok 1', 'upstream answers what neither level has');
  assert.ok((await metric(b, 'nanogate_cache_l2_skipped_total')) >= 1, 'the lookup did not wait on Redis');
  // a purge during the outage: applied here, queued for the L2 and the other node
  const r = await purge(a, { key: `GET ${HOST}/c/before` });
  assert.equal((r.l2 as { queued: boolean }[])[0].queued, true);
  assert.match(String((await get(a, '/c/before')).headers['cache-status']), /fwd=uri-miss/);

  await redis.start();
  for (const n of [a, b]) assert.ok(await waitFor(() => n.logs.some((l) => l.includes('cache l2: redis reachable again')), 15_000), 'a log line says the L2 is back');
  assert.ok(await waitFor(() => b.logs.some((l) => l.includes('its L1 is dropped')), 15_000), 'B may have missed purges: it drops its L1\n' + b.logs.filter((l) => /purge bus|cache l2/.test(l)).join('\n'));
  assert.ok(await waitFor(() => a.logs.some((l) => l.includes('purges made during the outage were replayed')), 15_000));
  assert.equal(await metricBecomes(b, 'nanogate_cache_l2_connected_workers', 2), 2);
  await get(a, '/c/after');
  await inL2(`GET ${HOST}/c/after`);
  assert.match(String((await get(b, '/c/after')).headers['cache-status']), /detail=l2/);
  assert.equal(origin.count('/c/after'), 1);
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/http.js';
import { createCacheL2, type CacheL2, type L2Logger } from '../../src/policies/cache/l2-redis.js';
import { PurgeBus, type PurgeKind } from '../../src/policies/cache/purge-bus.js';
import type { RedisConfig } from '../../src/shared/redis-config.js';

// Purges across nodes through a real redis-server: three buses stand for three gateway nodes. A purge on one
// reaches the others' workers (their `deliver`) and the L2, and the call returns once they confirmed; a node that
// could not hear purges drops its L1 when it is back; purges made during an outage are replayed.

let redis: TestRedis;
let raw: Redis;

const quiet: L2Logger = { info() {}, warn() {}, error() {} };

function redisConfig(): RedisConfig {
  return { mode: 'standalone', url: redis.url, db: 0, tls: false, keyPrefix: 'nanogate:', connectTimeoutMs: 1000, commandTimeoutMs: 250 };
}

interface Node {
  bus: PurgeBus;
  l2: CacheL2;
  got: Array<[PurgeKind, string]>;
  /** how long this node's workers take to apply a purge */
  delayMs: number;
}

async function node(namespace: string, ackTimeoutMs = 1000): Promise<Node> {
  const l2 = createCacheL2({ redis: redisConfig(), namespace, timeoutMs: 200, compressAboveBytes: 1024, compression: 'deflate', maxBodyBytes: 1 << 20 }, quiet);
  const n: Node = { l2, got: [], delayMs: 0, bus: null as unknown as PurgeBus };
  n.bus = new PurgeBus({ redis: redisConfig(), namespace, ackTimeoutMs, commandTimeoutMs: 250 }, quiet, async (kind, value) => {
    if (n.delayMs > 0) await sleep(n.delayMs);
    n.got.push([kind, value]);
  }, l2);
  assert.ok(await waitFor(() => n.bus.subscribed && l2.available, 3000), 'the node subscribes');
  return n;
}

async function closeNodes(nodes: Node[]): Promise<void> {
  await Promise.all(nodes.map(async (n) => {
    await n.bus.close();
    await n.l2.close();
  }));
}

before(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url, { maxRetriesPerRequest: 1 });
});

after(async () => {
  raw.disconnect();
  await redis.stop();
});

const entry = { status: 200, headers: ['content-type', 'text/plain'], body: new TextEncoder().encode('x'), storedAt: Date.now(), meta: {} };

test('a purge on one node reaches the L2 and every other node, and returns once they confirmed', async () => {
  const nodes = await Promise.all([node('bus'), node('bus'), node('bus')]);
  const other = await node('other-namespace');
  try {
    const [a, b, c] = nodes;
    a.l2.set('GET x/1', entry, 60_000, ['t1']);
    for (let i = 0; i < 300 && !(await raw.exists('ng:cache:bus:e:GET x/1')); i++) await sleep(10);
    const r = await a.bus.purge('tag', 't1');
    assert.deepEqual(r, { l2Removed: 1, nodes: 3, confirmed: 3, queued: false });
    // confirmed means applied: no waiting needed
    assert.deepEqual(b.got, [['tag', 't1']]);
    assert.deepEqual(c.got, [['tag', 't1']]);
    assert.deepEqual(a.got, [], 'the sender purged its own workers already');
    assert.deepEqual(other.got, [], 'another namespace does not hear it');
    const r2 = await b.bus.purge('prefix', 'GET x/');
    assert.equal(r2.confirmed, 3);
    assert.deepEqual(a.got, [['prefix', 'GET x/']]);
  } finally {
    await closeNodes([...nodes, other]);
  }
});

test('a node that does not confirm within ackTimeoutMs is counted out; it still applies the purge when it can', async () => {
  const nodes = await Promise.all([node('slow', 200), node('slow', 200)]);
  try {
    const [a, b] = nodes;
    b.delayMs = 600;
    const r = await a.bus.purge('key', 'GET x/2');
    assert.equal(r.nodes, 2);
    assert.equal(r.confirmed, 1, 'only the sender itself within 200 ms');
    assert.deepEqual(b.got, []);
    assert.ok(await waitFor(() => b.got.length === 1, 3000));
  } finally {
    await closeNodes(nodes);
  }
});

test('junk on the channel is ignored', async () => {
  const nodes = await Promise.all([node('junk'), node('junk')]);
  try {
    for (const m of ['not json', '{}', '{"n":"x","s":1,"e":"x","k":"all","v":""}', '{"n":"x","s":"1","e":"x","k":"key","v":"a"}', '{"n":"x","s":1,"k":"key","v":"a"}', JSON.stringify({ n: 'x', s: 1, e: 'x', k: 'key', v: 'a'.repeat(9000) })]) {
      await raw.publish('ng:cache:junk:purge', m);
    }
    await raw.publish('ng:cache:junk:purge', JSON.stringify({ n: 'x', s: 1, e: 'x', k: 'key', v: 'ok' }));
    assert.ok(await waitFor(() => nodes[0].got.length > 0 && nodes[1].got.length > 0, 3000));
    assert.deepEqual(nodes[0].got, [['key', 'ok']]);
    assert.deepEqual(nodes[1].got, [['key', 'ok']]);
  } finally {
    await closeNodes(nodes);
  }
});

test('a node that lost its subscription while purges were made drops its L1 when it is back; one that missed none keeps it', async () => {
  const nodes = await Promise.all([node('gap'), node('gap')]);
  try {
    const [a, b] = nodes;
    await a.bus.purge('key', 'k0');
    assert.deepEqual(b.got, [['key', 'k0']]);
    // Cut the subscriptions; nothing happens meanwhile: no drop.
    const subs = () => nodes.map((n) => n.bus.status().subscriptions as number);
    const [sa, sb] = subs();
    await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    assert.ok(await waitFor(() => subs()[0] > sa && subs()[1] > sb, 5000), 'both subscribed again');
    await sleep(100);
    assert.deepEqual(b.got, [['key', 'k0']], 'nothing missed, the L1 stays');
    // Now a purge is counted that b cannot hear (made while it was cut off): on its return b drops its L1.
    await raw.hincrby('ng:cache:gap:purge-seq', 'n', 1);
    await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    assert.ok(await waitFor(() => b.got.some(([k, v]) => k === 'prefix' && v === ''), 5000), 'b dropped its whole L1');
  } finally {
    await closeNodes(nodes);
  }
});

test('outage mid-run: a purge made while Redis is away is queued, then replayed on the L2 and the other nodes', async () => {
  const nodes = await Promise.all([node('outage'), node('outage')]);
  try {
    const [a, b] = nodes;
    await a.bus.purge('key', 'before');
    await redis.stop();
    assert.ok(await waitFor(() => !a.bus.subscribed && !b.bus.subscribed, 3000));
    const r = await a.bus.purge('tag', 'during');
    assert.deepEqual(r, { l2Removed: null, nodes: 0, confirmed: 0, queued: true });
    assert.equal(a.bus.status().queued, 1);
    await redis.start();
    // b comes back to an empty Redis (its count went back): it cannot know what it missed, so it drops its L1;
    // then a's queued purge arrives.
    assert.ok(await waitFor(() => b.got.some(([k, v]) => k === 'tag' && v === 'during'), 10_000), 'the queued purge reached b');
    assert.ok(b.got.some(([k, v]) => k === 'prefix' && v === ''), 'b dropped its L1 on its return');
    // a's replay ends once b confirmed, a moment after b applied it
    assert.ok(await waitFor(() => a.bus.status().queued === 0 && a.bus.status().replayed === 1, 5000), 'the queue is empty and one purge was replayed');
  } finally {
    await closeNodes(nodes);
  }
});

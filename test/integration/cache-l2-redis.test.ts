import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitFor } from '../helpers/http.js';
import {
  createCacheL2,
  L2_CELLS,
  L2_ERRORS,
  L2_HITS,
  L2_MISSES,
  L2_OUTAGES,
  L2_PURGED,
  L2_SKIPPED,
  L2_STORE_SKIPPED,
  L2_STORES,
  L2_UP,
  type CacheL2,
  type L2Config,
  type L2Logger,
  type StoredEntry,
} from '../../src/policies/cache/l2-redis.js';

// The cache's Redis L2 against a real redis-server: what is stored comes back whole, Redis drops it when its TTL
// ends, tags and prefixes purge exactly what they name (without KEYS), and an outage or a hung server turns the L2
// into quick misses (never a wait beyond timeoutMs) until Redis answers again.

let redis: TestRedis;
let raw: Redis;

interface Line {
  level: string;
  msg: string;
  obj: object;
}

function recorder(): L2Logger & { lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: string) => (obj: object, msg: string) => void lines.push({ level, msg, obj });
  return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

function config(over: Partial<L2Config> = {}): L2Config {
  return {
    redis: { mode: 'standalone', url: redis.url, db: 0, tls: false, keyPrefix: 'nanogate:', connectTimeoutMs: 1000, commandTimeoutMs: 250 },
    namespace: 'test',
    timeoutMs: 100,
    compressAboveBytes: 1024,
    compression: 'deflate',
    maxBodyBytes: 1 << 20,
    ...over,
  };
}

function entry(body: string | Uint8Array, headers: string[] = ['content-type', 'text/plain']): StoredEntry {
  return {
    status: 200,
    headers,
    body: typeof body === 'string' ? new TextEncoder().encode(body) : body,
    storedAt: 1_767_000_000_000,
    meta: { policy: { v: 1, rescc: { 'max-age': '60' } }, vary: ['accept-encoding'] },
  };
}

async function stored(l2: CacheL2, key: string): Promise<StoredEntry> {
  // set() is fire and forget: poll until the write has landed
  let got: StoredEntry | null = null;
  for (let i = 0; i < 300 && got === null; i++) {
    got = await l2.get(key);
    if (got === null) await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(got, `entry ${key} was stored`);
  return got;
}

async function open(over: Partial<L2Config> = {}): Promise<{ l2: CacheL2; cells: Int32Array; log: ReturnType<typeof recorder> }> {
  const cells = new Int32Array(L2_CELLS);
  const log = recorder();
  const l2 = createCacheL2(config(over), log, cells);
  assert.ok(await waitFor(() => l2.available, 3000), 'the L2 connects');
  return { l2, cells, log };
}

before(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url, { lazyConnect: false, maxRetriesPerRequest: 1 });
});

after(async () => {
  raw.disconnect();
  await redis.stop();
});

test('an entry comes back as stored, with its TTL in Redis; small ones plain, large ones compressed unless already encoded', async () => {
  const { l2, cells } = await open();
  try {
    const small = entry('hello');
    l2.set('GET:/small', small, 60_000, []);
    assert.deepEqual(await stored(l2, 'GET:/small'), { ...small, body: Buffer.from(small.body) });
    const pttl = await raw.pttl('ng:cache:test:e:GET:/small');
    assert.ok(pttl > 55_000 && pttl <= 60_000, `PTTL ${pttl}`);
    assert.equal((await raw.getBuffer('ng:cache:test:e:GET:/small'))![0], 0, 'small: plain');

    const big = entry('abcdefgh'.repeat(4096));
    l2.set('GET:/big', big, 60_000, []);
    const got = await stored(l2, 'GET:/big');
    assert.equal(Buffer.from(got.body).toString(), 'abcdefgh'.repeat(4096));
    const value = (await raw.getBuffer('ng:cache:test:e:GET:/big'))!;
    assert.equal(value[0], 1, 'large: deflate');
    assert.ok(value.length < 2000, `compressed to ${value.length} bytes`);

    const gz = entry('abcdefgh'.repeat(4096), ['content-encoding', 'gzip']);
    l2.set('GET:/gz', gz, 60_000, []);
    await stored(l2, 'GET:/gz');
    assert.equal((await raw.getBuffer('ng:cache:test:e:GET:/gz'))![0], 0, 'already encoded: not compressed again');

    const tooBig = entry(new Uint8Array(2 << 20));
    l2.set('GET:/huge', tooBig, 60_000, []);
    assert.equal(Atomics.load(cells, L2_STORE_SKIPPED), 1);
    assert.equal(await raw.exists('ng:cache:test:e:GET:/huge'), 0);
    assert.ok(Atomics.load(cells, L2_STORES) >= 3);
    assert.ok(Atomics.load(cells, L2_HITS) >= 3);
  } finally {
    await l2.close();
  }
});

test('brotli: large entries come back whole', async () => {
  const { l2 } = await open({ compression: 'brotli', namespace: 'br' });
  try {
    const body = JSON.stringify(Array.from({ length: 2000 }, (_, i) => ({ id: i, name: `item ${i}` })));
    l2.set('k', entry(body), 60_000, []);
    assert.equal(Buffer.from((await stored(l2, 'k')).body).toString(), body);
    assert.equal((await raw.getBuffer('ng:cache:br:e:k'))![0], 2);
  } finally {
    await l2.close();
  }
});

test('Redis drops an entry when its TTL ends; a value this version cannot read is a miss and is removed', async () => {
  const { l2, cells } = await open({ namespace: 'ttl' });
  try {
    l2.set('short', entry('x'), 150, []);
    await stored(l2, 'short');
    await sleep(200);
    assert.equal(await l2.get('short'), null);
    await raw.set('ng:cache:ttl:e:junk', Buffer.from([0, 0xc1, 0xc1, 0xc1]));
    const misses = Atomics.load(cells, L2_MISSES);
    assert.equal(await l2.get('junk'), null);
    assert.equal(Atomics.load(cells, L2_MISSES), misses + 1);
    // the unreadable value is deleted after the miss is answered, without waiting for it
    for (let i = 0; i < 200 && (await raw.exists('ng:cache:ttl:e:junk')) === 1; i++) await sleep(10);
    assert.equal(await raw.exists('ng:cache:ttl:e:junk'), 0);
  } finally {
    await l2.close();
  }
});

test('purge by tag removes exactly the tagged entries; a tag index keeps only live members', async () => {
  const { l2, cells } = await open({ namespace: 'tags' });
  try {
    l2.set('a', entry('a'), 60_000, ['product:1']);
    l2.set('b', entry('b'), 60_000, ['product:1', 'list']);
    l2.set('c', entry('c'), 60_000, ['list']);
    for (const k of ['a', 'b', 'c']) await stored(l2, k);
    assert.equal(await l2.purge('tag', 'product:1'), 2);
    assert.equal(await l2.get('a'), null);
    assert.equal(await l2.get('b'), null);
    assert.ok(await l2.get('c'));
    assert.equal(await raw.exists('ng:cache:tags:t:product:1'), 0);
    assert.equal(await l2.purge('tag', 'product:1'), 0, 'a second purge finds nothing');
    assert.equal(Atomics.load(cells, L2_PURGED), 2);
    // the index lives as long as its longest entry
    const tagTtl = await raw.pttl('ng:cache:tags:t:list');
    assert.ok(tagTtl > 55_000 && tagTtl <= 60_000, `tag PTTL ${tagTtl}`);

    // Expired members leave the index on the next store with that tag.
    l2.set('gone', entry('g'), 100, ['hot']);
    await stored(l2, 'gone');
    await sleep(200);
    l2.set('live', entry('l'), 60_000, ['hot']);
    await stored(l2, 'live');
    assert.deepEqual(await raw.zrange('ng:cache:tags:t:hot', '0', '-1'), ['live']);
  } finally {
    await l2.close();
  }
});

test('purge by prefix removes the keys that start with it, glob characters taken literally, without KEYS', async () => {
  const { l2 } = await open({ namespace: 'pfx' });
  try {
    const keys = ['GET:/a/1', 'GET:/a/2', 'GET:/a*[x]', 'GET:/b/1', 'GET:/c*', 'GET:/cx', 'GET:/c?'];
    for (const k of keys) l2.set(k, entry(k), 60_000, []);
    for (const k of keys) await stored(l2, k);
    // a namespace beside it is left alone
    const other = await open({ namespace: 'pfx2' });
    other.l2.set('GET:/a/1', entry('other'), 60_000, []);
    await stored(other.l2, 'GET:/a/1');
    await raw.call('CONFIG', 'RESETSTAT');

    assert.equal(await l2.purge('prefix', 'GET:/a'), 3);
    for (const k of ['GET:/a/1', 'GET:/a/2', 'GET:/a*[x]']) assert.equal(await l2.get(k), null, k);
    assert.ok(await l2.get('GET:/b/1'));
    assert.equal(await l2.purge('prefix', 'GET:/c*'), 1, 'only the key that starts with "GET:/c*"');
    assert.ok(await l2.get('GET:/cx'));
    assert.equal(await l2.purge('prefix', 'GET:/c?'), 1);
    assert.ok(await l2.get('GET:/cx'));
    assert.equal(await l2.purge('key', 'GET:/cx'), 1);
    assert.equal(await l2.purge('key', 'GET:/cx'), 0);
    assert.ok(await other.l2.get('GET:/a/1'), 'the other namespace keeps its entry');
    const stats = await raw.info('commandstats');
    assert.doesNotMatch(stats, /cmdstat_keys:/, 'no KEYS');
    assert.match(stats, /cmdstat_scan:/);
    await other.l2.close();
  } finally {
    await l2.close();
  }
});

test('outage mid-run: Redis stops, the L2 answers misses at once and says so; it comes back by itself when Redis does', async () => {
  const { l2, cells, log } = await open({ namespace: 'outage' });
  try {
    l2.set('k', entry('before'), 60_000, []);
    await stored(l2, 'k');
    await redis.stop();
    assert.ok(await waitFor(() => !l2.available, 3000), 'unavailable once Redis is gone');
    assert.equal(Atomics.load(cells, L2_UP), 0);
    assert.equal(Atomics.load(cells, L2_OUTAGES), 1);
    const skipped = Atomics.load(cells, L2_SKIPPED);
    assert.equal(await l2.get('k'), null);
    l2.set('k2', entry('during'), 60_000, []);
    assert.equal(Atomics.load(cells, L2_SKIPPED), skipped + 2, 'neither the get nor the store asked Redis');
    await assert.rejects(l2.purge('key', 'x'), 'a purge says it could not reach Redis (the purge bus queues it)');
    assert.equal(log.lines.filter((l) => l.level === 'error' && /redis unreachable/.test(l.msg)).length, 1, 'one log line for the transition');

    await redis.start(); // empty again: no persistence
    assert.ok(await waitFor(() => l2.available, 10_000), 'available again');
    assert.equal(Atomics.load(cells, L2_UP), 1);
    assert.equal(log.lines.filter((l) => l.level === 'warn' && /reachable again/.test(l.msg)).length, 1);
    l2.set('k', entry('after'), 60_000, []);
    assert.equal(Buffer.from((await stored(l2, 'k')).body).toString(), 'after');
  } finally {
    await l2.close();
  }
});

test('a hung Redis: gets give up after timeoutMs, three in a row mark it down, a probe brings it back', async () => {
  const { l2, cells, log } = await open({ namespace: 'hung', timeoutMs: 50 });
  try {
    l2.set('k', entry('v'), 60_000, []);
    await stored(l2, 'k');
    // A stopped process (SIGSTOP): its connections stay open and nothing is answered until it is continued, so
    // each get below can only come back by giving up after timeoutMs, however long it takes on a loaded machine.
    redis.pause();
    try {
      for (let i = 0; i < 3; i++) assert.equal(await l2.get('k'), null);
      assert.equal(Atomics.load(cells, L2_ERRORS), 3);
      assert.equal(l2.available, false);
      assert.ok(log.lines.some((l) => l.level === 'error' && /unreachable/.test(l.msg)));
      const skipped = Atomics.load(cells, L2_SKIPPED);
      assert.equal(await l2.get('k'), null);
      assert.equal(Atomics.load(cells, L2_SKIPPED), skipped + 1, 'while down, a get does not wait on Redis at all');
    } finally {
      redis.resume();
    }
    assert.ok(await waitFor(() => l2.available, 10_000), 'the probe sees it answer again');
    assert.ok(await l2.get('k'));
  } finally {
    await l2.close();
  }
});

test('variants (Vary) and copies with key parts: the primary key holds the newest variant, a purge by URI key removes them all', async () => {
  const { l2 } = await open({ namespace: 'vary' });
  try {
    l2.set('GET a/x\0en', entry('english'), 60_000, ['t']);
    await stored(l2, 'GET a/x\0en');
    l2.set('GET a/x\0de', entry('deutsch'), 60_000, ['t']);
    await stored(l2, 'GET a/x\0de');
    l2.set('GET a/x |consumer=alice', entry('alice'), 60_000, []);
    l2.set('GET a/x |consumer=bob\0en', entry('bob'), 60_000, []);
    l2.set('GET a/xy', entry('neighbour'), 60_000, []);
    for (const k of ['GET a/x |consumer=alice', 'GET a/x |consumer=bob', 'GET a/xy']) await stored(l2, k);
    assert.equal(Buffer.from((await stored(l2, 'GET a/x')).body).toString(), 'deutsch', 'the newest variant at the primary key');
    assert.equal(Buffer.from((await stored(l2, 'GET a/x\0en')).body).toString(), 'english');

    // a key with parts: itself and its variants only
    assert.equal(await l2.purge('key', 'GET a/x |consumer=bob'), 1);
    assert.equal(await l2.get('GET a/x |consumer=bob'), null);
    assert.ok(await l2.get('GET a/x |consumer=alice'));
    // the URI: every variant and every copy
    assert.equal(await l2.purge('key', 'GET a/x'), 3, 'two variants and one consumer copy');
    for (const k of ['GET a/x', 'GET a/x\0en', 'GET a/x\0de', 'GET a/x |consumer=alice']) assert.equal(await l2.get(k), null, JSON.stringify(k));
    assert.ok(await l2.get('GET a/xy'), 'a key that only starts like it stays');
    assert.equal(await raw.exists('ng:cache:vary:u:GET a/x'), 0);
  } finally {
    await l2.close();
  }
});

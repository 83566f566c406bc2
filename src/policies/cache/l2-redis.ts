import { Packr } from 'msgpackr';
import { brotliCompress, brotliDecompress, brotliDecompressSync, constants as zc, deflateRaw, inflateRaw, inflateRawSync } from 'node:zlib';
import { promisify } from 'node:util';
import type { Cluster, Redis } from 'ioredis';
import type { RedisConfig } from '../../shared/redis-config.js';
import { createRedisClient } from '../rate-limit/store-redis.js';

/**
 * The cache's optional shared second level in Redis: every node's workers look here after their own L1 misses and
 * before going upstream, and store what they fetched. Redis is an optimisation, never a dependency: a get resolves
 * to null (a miss) on any failure and never waits longer than `timeoutMs`; while Redis is away the L2 says
 * `available = false`, answers at once without asking, and the cache works as L1 only.
 *
 * Keys (all under `ng:cache:<namespace>:`, so that gateways sharing one Redis can keep apart):
 *
 *   e:<cache key>   the packed entry (below), PX = freshness + stale windows, so Redis drops it when the cache could
 *                   no longer use it
 *   u:<uri>         sorted set of the keys stored under one URI ("GET host/path?q", key.ts) other than the URI
 *                   itself, kept like a tag index: its variants (a key with a NUL: primary + "\0" + the request's
 *                   values of the Vary fields) and its copies with configured parts (" |consumer=..."), so that a
 *                   purge by key removes what the L1's does (store.ts purgeKey). Storing a variant also writes it at
 *                   e:<primary>, so that a node whose L1 is cold finds the newest variant (and with it the Vary field
 *                   names) at the primary key in one round trip, and the one it needs in a second only when the
 *                   request differs
 *   t:<tag>         sorted set: member = cache key, score = when that entry expires (Redis time, ms). A store adds
 *                   with ZADD, drops members whose entry has expired (ZREMRANGEBYSCORE -inf now) and extends the
 *                   set's TTL to the longest member's: the index of a tag holds live entries only, however long the
 *                   tag is used (a plain SADD set would keep every key ever tagged while the tag stays hot)
 *   purge-seq       a counter the purge bus bumps per purge (purge-bus.ts)
 *
 * Purges never use KEYS: by key one UNLINK, plus what u:<uri> names under it; by tag ZPOPMIN of 1000 members at a time, one UNLINK per member; by
 * prefix SCAN MATCH `e:<prefix>*` COUNT 1000 per call on every master (SCAN walks the whole database, so a prefix
 * purge costs O(keys in the db) / 1000 round trips but adds nothing to a store). Every command touches one key,
 * so the same code runs on standalone, Sentinel and Cluster.
 *
 * Value layout: one format byte, then the msgpackr encoding of the StoredEntry plus a version field, compressed as
 * the byte says:
 *
 *   +--------+------------------------------------------------------------+
 *   | format | msgpack({ v: 1, status, headers, body, storedAt, meta })   |  format: 0 plain, 1 deflate-raw, 2 brotli
 *   +--------+------------------------------------------------------------+
 *
 * An entry whose response already carries a Content-Encoding is never compressed again (it would not shrink).
 * Compression runs on the libuv pool (asynchronous zlib), off the event loop; decompression of a value under
 * SYNC_INFLATE_BYTES is synchronous (faster than a thread-pool hop at that size), larger ones go to the pool.
 */

/** what is stored: plain data only (msgpackr), see the module comment */
export interface StoredEntry {
  status: number;
  /** flat [name, value, name, value, ...], names lower-case, hop-by-hop already removed */
  headers: string[];
  body: Uint8Array;
  /** ms epoch when the response was received */
  storedAt: number;
  /** opaque to the L2: owned by the cache (e.g. the http-cache-semantics policy's toObject()) */
  meta: Record<string, unknown>;
}

export interface CacheL2 {
  /**
   * the stored entry for a key, or null (miss, expired, or Redis unavailable: never throws, never waits longer than
   * timeoutMs). For a primary key whose responses vary, the newest variant stored (see u:<uri> below).
   */
  get(key: string): Promise<StoredEntry | null>;
  /** store (fire and forget): TTL in Redis = ttlMs (freshness + stale windows); tags index the key for purge */
  set(key: string, entry: StoredEntry, ttlMs: number, tags: readonly string[]): void;
  /** purge in Redis (a key, every key with a prefix, every key with a tag); resolves to the count removed */
  purge(kind: 'key' | 'prefix' | 'tag', value: string): Promise<number>;
  /** true while Redis answers; false during an outage (the cache then works as L1 only) */
  readonly available: boolean;
  close(): Promise<void>;
}

export type L2Compression = 'deflate' | 'brotli' | 'off';

/** The settings of one L2 client (the `cache.l2` block, resolved with the top-level `redis:` section). */
export interface L2Config {
  /** how to reach Redis (src/shared/redis-config.ts) */
  readonly redis: RedisConfig;
  /** keys live under ng:cache:<namespace>: */
  readonly namespace: string;
  /** the longest a get waits for Redis (ms) before it counts as a miss */
  readonly timeoutMs: number;
  /** values whose packed size is at least this are compressed */
  readonly compressAboveBytes: number;
  readonly compression: L2Compression;
  /** entries with a larger body are not stored in Redis (they stay in L1 only) */
  readonly maxBodyBytes: number;
}

/** The logger an L2 needs: pino's shape (the worker's log bridge or a pino child). */
export interface L2Logger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

// ---------------------------------------------------------------------------------------------- metrics cells
/**
 * Counters of one L2 client, L2_CELLS int32 cells that the caller hands in (a worker's block of a shared region,
 * read by the control plane on scrape; or a private array). Only this client writes them, with Atomics.
 *
 *   | HITS | MISSES | ERRORS | SKIPPED | STORES | STORE_ERRORS | STORE_SKIPPED | PURGED | OUTAGES | UP |
 *
 * ERRORS: gets that failed or ran out of time (counted as misses by the cache, not here); SKIPPED: gets and
 * stores not tried because Redis was known to be down; STORE_SKIPPED: bodies over maxBodyBytes; UP: 1 while
 * available (a gauge), OUTAGES: transitions to unavailable.
 */
export const L2_HITS = 0;
export const L2_MISSES = 1;
export const L2_ERRORS = 2;
export const L2_SKIPPED = 3;
export const L2_STORES = 4;
export const L2_STORE_ERRORS = 5;
export const L2_STORE_SKIPPED = 6;
export const L2_PURGED = 7;
export const L2_OUTAGES = 8;
export const L2_UP = 9;
export const L2_CELLS = 10;
/** metric name suffix and help of each counter cell, for the scrape (UP is rendered as a gauge) */
export const L2_COUNTER_NAMES: readonly (readonly [cell: number, name: string, help: string])[] = [
  [L2_HITS, 'hits', 'L2 lookups that found an entry in Redis'],
  [L2_MISSES, 'misses', 'L2 lookups that Redis answered without an entry'],
  [L2_ERRORS, 'errors', 'L2 lookups that failed or exceeded cache.l2.timeoutMs (served as misses)'],
  [L2_SKIPPED, 'skipped', 'L2 lookups and stores not tried because Redis was unreachable (the cache served from L1 or upstream)'],
  [L2_STORES, 'stores', 'entries written to Redis'],
  [L2_STORE_ERRORS, 'store_errors', 'writes to Redis that failed'],
  [L2_STORE_SKIPPED, 'store_skipped', 'entries not written to Redis because their body exceeds cache.l2.maxBodyBytes'],
  [L2_PURGED, 'purged', 'entries removed from Redis by purges'],
  [L2_OUTAGES, 'outages', 'times Redis became unreachable for the L2'],
];

const FORMAT_PLAIN = 0;
const FORMAT_DEFLATE = 1;
const FORMAT_BROTLI = 2;
/** below this, decompressing on the event loop beats a hop to the libuv pool (measured: bench/micro, cache-l2) */
const SYNC_INFLATE_BYTES = 32 * 1024;
/** consecutive failed or timed-out commands after which Redis counts as down (a ping probes it back up) */
const FAILURES_TO_DOWN = 3;
const PROBE_MS = 500;
/** per batch of a tag or prefix purge */
const PURGE_BATCH = 1000;

const deflateAsync = promisify(deflateRaw);
const inflateAsync = promisify(inflateRaw);
const brotliAsync = promisify(brotliCompress);
const unbrotliAsync = promisify(brotliDecompress);
/** brotli at quality 4: most of the ratio of 11 at a small part of its time (entries are written on the data path) */
const BROTLI_OPTS = { params: { [zc.BROTLI_PARAM_QUALITY]: 4 } };

/** Adds a member to a tag index with its expiry in Redis time, drops expired members, and keeps the set alive as long as its longest member. */
const TAG_ADD = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
`;

type L2Redis = (Redis | Cluster) & { ngCacheTagAdd(key: string, member: string, ttlMs: number): Promise<number> };

/** `ng:cache:<namespace>:` */
export function l2KeyBase(namespace: string): string {
  return `ng:cache:${namespace}:`;
}

/** The URI part of a key (key.ts): up to its configured parts (" |...") or its Vary values ("\0..."). */
export function uriOf(key: string): string {
  let end = key.length;
  const nul = key.indexOf('\0');
  if (nul >= 0) end = nul;
  const parts = key.indexOf(' |');
  if (parts >= 0 && parts < end) end = parts;
  return end === key.length ? key : key.slice(0, end);
}

/** `k` is `key` itself or one of its Vary variants */
function underKey(k: string, key: string): boolean {
  return k === key || (k.length > key.length && k.charCodeAt(key.length) === 0 && k.startsWith(key));
}

/** a literal for SCAN MATCH: glob metacharacters escaped */
export function globLiteral(s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&');
}

/** Where the client connects, for logs, without credentials. */
export function redisWhere(cfg: RedisConfig): string {
  return cfg.url ? cfg.url.replace(/\/\/[^@/]*@/, '//***@') : (cfg.nodes ?? []).map((n) => `${n.host}:${n.port}`).join(',') || '127.0.0.1:6379';
}

/** A Redis connection with the project's conventions (no offline queue, bounded commands) and the L2's script. */
export function connectL2Redis(cfg: RedisConfig, commandTimeoutMs: number): L2Redis {
  // the lookup's GET goes out at once: auto-pipelining would hold it for a setImmediate (measured ~25 µs p50 of an
  // L2 hit, docs/caching.md); stores and purges stay pipelined
  const client = createRedisClient({ ...cfg, commandTimeoutMs: Math.max(10, commandTimeoutMs) }, ['get']) as unknown as L2Redis;
  client.defineCommand('ngCacheTagAdd', { numberOfKeys: 1, lua: TAG_ADD });
  return client;
}

const NULL_ENTRY: Promise<StoredEntry | null> = Promise.resolve(null);

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

/** Packs an entry with its format byte (compressed when asked and worth it). */
export async function encodeEntry(entry: StoredEntry, compression: L2Compression, compressAboveBytes: number): Promise<Buffer> {
  const packed = packr.pack({ v: 1, status: entry.status, headers: entry.headers, body: entry.body, storedAt: entry.storedAt, meta: entry.meta });
  let format = FORMAT_PLAIN;
  let payload: Buffer = packed;
  if (compression !== 'off' && packed.length >= compressAboveBytes && !hasContentEncoding(entry.headers)) {
    const squeezed = compression === 'brotli' ? await brotliAsync(packed, BROTLI_OPTS) : await deflateAsync(packed);
    if (squeezed.length < packed.length) {
      payload = squeezed;
      format = compression === 'brotli' ? FORMAT_BROTLI : FORMAT_DEFLATE;
    }
  }
  const out = Buffer.allocUnsafe(payload.length + 1);
  out[0] = format;
  payload.copy(out, 1);
  return out;
}

/** The entry in a stored value, or null when it is not one this version wrote (never throws). */
export async function decodeEntry(value: Buffer): Promise<StoredEntry | null> {
  if (value.length < 2) return null;
  const format = value[0];
  const payload = value.subarray(1);
  let packed: Buffer;
  try {
    if (format === FORMAT_PLAIN) packed = payload;
    else if (format === FORMAT_DEFLATE) packed = payload.length < SYNC_INFLATE_BYTES ? inflateRawSync(payload) : await inflateAsync(payload);
    else if (format === FORMAT_BROTLI) packed = payload.length < SYNC_INFLATE_BYTES ? brotliDecompressSync(payload) : await unbrotliAsync(payload);
    else return null;
    const o = packr.unpack(packed) as Record<string, unknown> | null;
    if (o === null || typeof o !== 'object' || o.v !== 1) return null;
    const { status, headers, body, storedAt, meta } = o;
    if (typeof status !== 'number' || typeof storedAt !== 'number' || !Array.isArray(headers) || !(body instanceof Uint8Array)) return null;
    if (headers.length % 2 !== 0 || !headers.every((h) => typeof h === 'string')) return null;
    return { status, headers: headers as string[], body, storedAt, meta: meta !== null && typeof meta === 'object' ? (meta as Record<string, unknown>) : {} };
  } catch {
    return null;
  }
}

function hasContentEncoding(headers: readonly string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === 'content-encoding' && headers[i + 1] !== 'identity') return true;
  return false;
}

/** A private set of cells, for an L2 made without a shared metrics block (tests, the control plane's purger). */
export function privateL2Cells(): Int32Array {
  return new Int32Array(L2_CELLS);
}

class RedisCacheL2 implements CacheL2 {
  readonly #cfg: L2Config;
  readonly #log: L2Logger;
  readonly #cells: Int32Array;
  readonly #client: L2Redis;
  readonly #entryBase: string;
  readonly #tagBase: string;
  readonly #uriBase: string;
  readonly #where: string;
  #available = false;
  /** Redis was found unreachable (an outage was counted and logged) and has not been back since */
  #outage = false;
  /** consecutive failures: FAILURES_TO_DOWN of them mark Redis down even while the socket stays open (a hung server) */
  #failures = 0;
  #downSince = 0;
  /** a ping every PROBE_MS while Redis is down on an open socket */
  #probe: NodeJS.Timeout | null = null;
  #closed = false;
  /** lookups on their way to Redis, by key */
  readonly #inflight = new Map<string, Promise<StoredEntry | null>>();

  constructor(cfg: L2Config, log: L2Logger, cells: Int32Array) {
    this.#cfg = cfg;
    this.#log = log;
    this.#cells = cells;
    const base = l2KeyBase(cfg.namespace);
    this.#entryBase = base + 'e:';
    this.#tagBase = base + 't:';
    this.#uriBase = base + 'u:';
    this.#where = redisWhere(cfg.redis);
    this.#client = connectL2Redis(cfg.redis, cfg.timeoutMs);
    this.#client.on('ready', () => this.#up());
    this.#client.on('error', (err: Error) => this.#down(err.message));
    this.#client.on('close', () => this.#down('connection closed'));
    this.#client.on('end', () => this.#down('connection ended'));
  }

  get available(): boolean {
    return this.#available;
  }

  #up(): void {
    this.#failures = 0;
    if (this.#probe !== null) {
      clearInterval(this.#probe);
      this.#probe = null;
    }
    if (this.#available || this.#closed) return;
    this.#available = true;
    Atomics.store(this.#cells, L2_UP, 1);
    if (this.#outage) this.#log.warn({ redis: this.#where, downMs: Date.now() - this.#downSince }, 'cache l2: redis reachable again; lookups and stores use L2 again');
    else this.#log.info({ redis: this.#where, namespace: this.#cfg.namespace }, 'cache l2: redis connected');
    this.#outage = false;
  }

  #down(reason: string): void {
    // once per outage: while connecting at start, or from up
    if (this.#outage || this.#closed) return;
    this.#outage = true;
    this.#available = false;
    this.#downSince = Date.now();
    Atomics.store(this.#cells, L2_UP, 0);
    Atomics.add(this.#cells, L2_OUTAGES, 1);
    this.#log.error({ redis: this.#where, reason }, 'cache l2: redis unreachable; the cache serves from L1 and upstream only until it is back');
  }

  /** A command failed or timed out; several in a row on an open socket mean a server that does not answer. */
  #failed(err: unknown): void {
    if (++this.#failures < FAILURES_TO_DOWN || this.#outage) return;
    this.#down(`${FAILURES_TO_DOWN} commands in a row failed: ${(err as Error).message}`);
    if (this.#probe === null && !this.#closed) {
      this.#probe = setInterval(() => {
        if ((this.#client as Redis).status !== 'ready') return; // the client reconnects by itself and says 'ready'
        this.#client.ping().then(() => this.#up(), () => {});
      }, PROBE_MS);
      this.#probe.unref();
    }
  }

  get(key: string): Promise<StoredEntry | null> {
    if (!this.#available) {
      Atomics.add(this.#cells, L2_SKIPPED, 1);
      return NULL_ENTRY;
    }
    // Concurrent lookups of one key (a cold L1 under load) share one round trip and one decode.
    let p = this.#inflight.get(key);
    if (p === undefined) {
      p = this.#fetch(key);
      this.#inflight.set(key, p);
    }
    return p;
  }

  async #fetch(key: string): Promise<StoredEntry | null> {
    try {
      return await this.#read(key);
    } finally {
      this.#inflight.delete(key);
    }
  }

  async #read(key: string): Promise<StoredEntry | null> {
    let value: Buffer | null;
    try {
      value = await this.#client.getBuffer(this.#entryBase + key);
    } catch (err) {
      Atomics.add(this.#cells, L2_ERRORS, 1);
      this.#failed(err);
      return null;
    }
    this.#failures = 0;
    if (value === null) {
      Atomics.add(this.#cells, L2_MISSES, 1);
      return null;
    }
    const entry = await decodeEntry(value);
    if (entry === null) {
      // Written by another version, or damaged: a miss, and out of the way of the next store.
      Atomics.add(this.#cells, L2_MISSES, 1);
      this.#client.unlink(this.#entryBase + key).catch(() => {});
      return null;
    }
    Atomics.add(this.#cells, L2_HITS, 1);
    return entry;
  }

  set(key: string, entry: StoredEntry, ttlMs: number, tags: readonly string[]): void {
    const ttl = Math.ceil(ttlMs);
    if (ttl < 1) return;
    if (!this.#available) {
      Atomics.add(this.#cells, L2_SKIPPED, 1);
      return;
    }
    if (entry.body.length > this.#cfg.maxBodyBytes) {
      Atomics.add(this.#cells, L2_STORE_SKIPPED, 1);
      return;
    }
    void this.#store(key, entry, ttl, tags);
  }

  async #store(key: string, entry: StoredEntry, ttl: number, tags: readonly string[]): Promise<void> {
    try {
      const value = await encodeEntry(entry, this.#cfg.compression, this.#cfg.compressAboveBytes);
      // The entry first, then its tag indexes: a failure in between leaves an entry that a tag purge misses, never
      // an index pointing nowhere useful. Auto-pipelining sends them in one write.
      const writes: Promise<unknown>[] = [this.#client.set(this.#entryBase + key, value, 'PX', ttl)];
      const uri = uriOf(key);
      if (uri !== key) writes.push(this.#client.ngCacheTagAdd(this.#uriBase + uri, key, ttl));
      const nul = key.indexOf('\0');
      if (nul > 0) writes.push(this.#client.set(this.#entryBase + key.slice(0, nul), value, 'PX', ttl));
      for (const tag of tags) writes.push(this.#client.ngCacheTagAdd(this.#tagBase + tag, key, ttl));
      await Promise.all(writes);
      this.#failures = 0;
      Atomics.add(this.#cells, L2_STORES, 1);
    } catch (err) {
      Atomics.add(this.#cells, L2_STORE_ERRORS, 1);
      this.#failed(err);
    }
  }

  /** Throws when Redis fails (the control plane reports it); see the module comment for what each kind costs. */
  async purge(kind: 'key' | 'prefix' | 'tag', value: string): Promise<number> {
    let removed = 0;
    if (kind === 'key') removed = await this.#purgeKey(value);
    else if (kind === 'tag') removed = await this.#purgeIndex(this.#tagBase + value);
    else removed = await this.#purgePrefix(globLiteral(this.#entryBase + value) + '*');
    Atomics.add(this.#cells, L2_PURGED, removed);
    return removed;
  }

  /**
   * A URI key: itself, its variants and its copies with configured parts; a key with parts: itself and its
   * variants (as store.ts purgeKey). The copies of variants at their primary keys go too, uncounted.
   */
  async #purgeKey(key: string): Promise<number> {
    const uri = uriOf(key);
    const index = this.#uriBase + uri;
    const doomed = (await this.#client.zrange(index, '0', '-1')).filter((k) => underKey(k, key) || (key === uri && k.startsWith(key + ' |')));
    let removed = 0;
    let variants = false;
    const copies = new Set<string>();
    const unlinks: Promise<number>[] = [];
    for (const k of doomed) {
      unlinks.push(this.#client.unlink(this.#entryBase + k));
      const nul = k.indexOf('\0');
      if (nul > 0) copies.add(k.slice(0, nul));
      if (nul === key.length) variants = true;
    }
    for (const n of await Promise.all(unlinks)) removed += n;
    if (doomed.length > 0) await this.#client.zrem(index, ...doomed);
    const own = await this.#client.unlink(this.#entryBase + key);
    if (!variants) removed += own;
    copies.delete(key);
    for (const c of copies) await this.#client.unlink(this.#entryBase + c);
    return removed;
  }

  /** Removes the entries a tag index names, and the index. */
  async #purgeIndex(indexKey: string): Promise<number> {
    let removed = 0;
    for (;;) {
      // ZPOPMIN takes members out as it returns them: two purges of one tag at once never both miss a member
      const popped = await this.#client.zpopmin(indexKey, PURGE_BATCH);
      if (popped.length === 0) return removed;
      const unlinks: Promise<number>[] = [];
      for (let i = 0; i < popped.length; i += 2) unlinks.push(this.#client.unlink(this.#entryBase + popped[i]));
      for (const n of await Promise.all(unlinks)) removed += n;
    }
  }

  async #purgePrefix(match: string): Promise<number> {
    const masters: Redis[] = 'nodes' in this.#client && typeof (this.#client as Cluster).nodes === 'function' && this.#cfg.redis.mode === 'cluster'
      ? (this.#client as Cluster).nodes('master')
      : [this.#client as Redis];
    let removed = 0;
    for (const node of masters) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', match, 'COUNT', PURGE_BATCH);
        cursor = next;
        if (keys.length === 0) continue;
        const unlinks = keys.map((k) => node.unlink(k));
        for (const n of await Promise.all(unlinks)) removed += n;
      } while (cursor !== '0');
    }
    return removed;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#available = false;
    Atomics.store(this.#cells, L2_UP, 0);
    if (this.#probe !== null) clearInterval(this.#probe);
    this.#probe = null;
    await this.#client.quit().catch(() => this.#client.disconnect());
  }
}

/**
 * One L2 client with its own Redis connection. `cells`: L2_CELLS counters (see above); a private array when
 * omitted. The client connects at once and reconnects by itself; `available` turns true when Redis is ready.
 */
export function createCacheL2(config: L2Config, logger: L2Logger, metrics?: Int32Array): CacheL2 {
  return new RedisCacheL2(config, logger, metrics ?? privateL2Cells());
}

// ------------------------------------------------------------------------------------ the L2 of a worker thread

/** What a cache policy's compile step resolves for its L2 (part of CacheData: structured-clone safe). */
export interface L2Data extends L2Config {
  /** how long a purge waits for the other nodes' confirmations (the control plane's purge bus) */
  readonly purgeAckTimeoutMs: number;
  /** counters of every worker's client for this namespace: L2_REGION_WORKERS rows of L2_CELLS */
  readonly region: SharedArrayBuffer;
}

/** rows of an L2 metrics region (one per worker index, as the cache's own region) */
export const L2_REGION_WORKERS = 256;
export const L2_REGION_BYTES = L2_REGION_WORKERS * L2_CELLS * 4;

/**
 * Where a worker's L2 clients log: set once by the worker thread (its lines go to the control plane's logger);
 * silent until then.
 */
let workerLog: L2Logger = { info() {}, warn() {}, error() {} };

export function setL2Logger(log: L2Logger): void {
  workerLog = log;
}

/** This worker's L2 clients by namespace (module state of the worker thread, like the L1 zones: they outlive a plan). */
const workerClients = new Map<string, { settings: string; l2: CacheL2 }>();

/**
 * The L2 client of this worker for a policy's settings: one Redis connection per worker and namespace, made when
 * a plan first names it and kept across reloads while its settings stay the same (a change closes the old one).
 * Why in the worker and not behind the control plane: a lookup is then one round trip from the thread that needs
 * it; through the main thread it adds two message hops and queues every worker's lookups on one loop (measured in
 * bench/cache-l2-placement.ts: docs/caching.md#redis-l2).
 */
export function workerL2(d: L2Data, workerIndex: number): CacheL2 {
  const settings = JSON.stringify([d.redis, d.timeoutMs, d.compression, d.compressAboveBytes, d.maxBodyBytes]);
  const have = workerClients.get(d.namespace);
  if (have !== undefined && have.settings === settings) return have.l2;
  if (have !== undefined) void have.l2.close();
  const row = new Int32Array(d.region, (workerIndex % L2_REGION_WORKERS) * L2_CELLS * 4, L2_CELLS);
  const tagged: L2Logger = {
    info: (o, m) => workerLog.info({ worker: workerIndex, namespace: d.namespace, ...o }, m),
    warn: (o, m) => workerLog.warn({ worker: workerIndex, namespace: d.namespace, ...o }, m),
    error: (o, m) => workerLog.error({ worker: workerIndex, namespace: d.namespace, ...o }, m),
  };
  const l2 = createCacheL2(d, tagged, row);
  workerClients.set(d.namespace, { settings, l2 });
  return l2;
}

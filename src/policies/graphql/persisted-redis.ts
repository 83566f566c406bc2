import type { Cluster, Redis } from 'ioredis';
import type { RedisConfig } from '../../shared/redis-config.js';
import type { PromWriter } from '../../observe/prometheus.js';
import type { Plan } from '../../config/plan.js';
import { createRedisClient } from '../rate-limit/store-redis.js';
import { redisWhere } from '../cache/l2-redis.js';
import { sha256Hex } from './persisted.js';

/**
 * Automatic persisted queries shared through Redis (`persisted.store: redis`): a hash registered on one node (any
 * worker) is known to every node. The worker's own LRU stays in front: a hash found there never asks Redis, so a
 * hash registered in memory keeps running whatever Redis does. A local miss asks Redis once (GET, bounded by
 * redis.commandTimeoutMs); Redis down, slow or failing makes that lookup a miss, the client gets
 * PersistedQueryNotFound and resends its query (Apollo's protocol), which registers it in memory again: no request
 * fails because of Redis. Registration writes the LRU at once and Redis in the background (SET PX).
 *
 * Keys: `<redis.keyPrefix>apq:<sha256>` -> the query text. A value read back is checked against its hash, so a
 * Redis that someone else writes to cannot put another query under a known hash.
 *
 * Counters (REGION cells, all workers add with Atomics; rendered by GraphqlApqMetrics on the main thread):
 *   | HITS | MISSES | ERRORS | SKIPPED | STORES | STORE_ERRORS | OUTAGES | UP (workers connected, gauge) | STORE_SKIPPED |
 */
export const A_HITS = 0;
export const A_MISSES = 1;
export const A_ERRORS = 2;
export const A_SKIPPED = 3;
export const A_STORES = 4;
export const A_STORE_ERRORS = 5;
export const A_OUTAGES = 6;
export const A_UP = 7;
export const A_STORE_SKIPPED = 8;
export const APQ_CELLS = 9;
export const APQ_REGION_BYTES = APQ_CELLS * 4;

/** What the graphql policy's compile step resolves for store: redis (structured-clone safe). */
export interface ApqRedisData {
  readonly redis: RedisConfig;
  readonly ttlMs: number;
  readonly region: SharedArrayBuffer;
}

export interface ApqLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}
let workerLog: ApqLogger = { info() {}, warn() {}, error() {} };
/** Where the worker's APQ Redis clients log (set once by the worker thread; silent until then). */
export function setApqLogger(log: ApqLogger): void {
  workerLog = log;
}

const NOT_FOUND: Promise<string | null> = Promise.resolve(null);

/** One worker's connection to the APQ Redis (per settings, shared by the routes that use it). */
class ApqRedis {
  readonly #client: Redis | Cluster;
  readonly #where: string;
  readonly #base: string;
  readonly #worker: number;
  /** the regions of the routes using this connection, for UP and OUTAGES */
  readonly regions = new Map<SharedArrayBuffer, Int32Array>();
  #up = false;
  #outage = false;

  constructor(cfg: RedisConfig, worker: number) {
    this.#client = createRedisClient(cfg);
    this.#where = redisWhere(cfg);
    this.#base = `${cfg.keyPrefix}apq:`;
    this.#worker = worker;
    this.#client.on('ready', () => this.#ready());
    this.#client.on('error', (err: Error) => this.#down(err.message));
    this.#client.on('close', () => this.#down('connection closed'));
  }

  get available(): boolean {
    return this.#up;
  }

  #ready(): void {
    if (this.#up) return;
    this.#up = true;
    for (const r of this.regions.values()) Atomics.add(r, A_UP, 1);
    workerLog.info({ worker: this.#worker, redis: this.#where }, this.#outage ? 'graphql apq: redis reachable again; persisted queries are shared again' : 'graphql apq: redis connected');
    this.#outage = false;
  }

  #down(reason: string): void {
    if (this.#outage) return;
    this.#outage = true;
    if (this.#up) for (const r of this.regions.values()) Atomics.sub(r, A_UP, 1);
    this.#up = false;
    for (const r of this.regions.values()) Atomics.add(r, A_OUTAGES, 1);
    workerLog.error({ worker: this.#worker, redis: this.#where, reason }, 'graphql apq: redis unreachable; persisted queries are kept in this worker only until it is back');
  }

  /** a route's counters (the same region across reloads: counted once) */
  attach(sab: SharedArrayBuffer): Int32Array {
    let cells = this.regions.get(sab);
    if (cells !== undefined) return cells;
    this.regions.set(sab, (cells = new Int32Array(sab)));
    if (this.#up) Atomics.add(cells, A_UP, 1);
    return cells;
  }

  get(hash: string, cells: Int32Array): Promise<string | null> {
    if (!this.#up) {
      Atomics.add(cells, A_SKIPPED, 1);
      return NOT_FOUND;
    }
    return this.#client.get(this.#base + hash).then(
      (text) => {
        // a value that is not the query of its hash is ignored (and overwritten by the next registration)
        if (text === null || sha256Hex(text) !== hash) {
          Atomics.add(cells, A_MISSES, 1);
          return null;
        }
        Atomics.add(cells, A_HITS, 1);
        return text;
      },
      () => {
        Atomics.add(cells, A_ERRORS, 1);
        return null;
      },
    );
  }

  set(hash: string, text: string, ttlMs: number, cells: Int32Array): void {
    if (!this.#up) {
      Atomics.add(cells, A_STORE_SKIPPED, 1);
      return;
    }
    this.#client.set(this.#base + hash, text, 'PX', ttlMs).then(
      () => Atomics.add(cells, A_STORES, 1),
      () => Atomics.add(cells, A_STORE_ERRORS, 1),
    );
  }
}

/** This worker's APQ connections by settings (module state of the worker thread: they outlive a plan). */
const clients = new Map<string, ApqRedis>();

/** The shared side of a route's APQ store in this worker. */
export class RemoteApq {
  readonly #redis: ApqRedis;
  readonly #cells: Int32Array;
  readonly #ttlMs: number;
  constructor(d: ApqRedisData, worker: number) {
    const key = JSON.stringify(d.redis);
    let c = clients.get(key);
    if (c === undefined) clients.set(key, (c = new ApqRedis(d.redis, worker)));
    this.#redis = c;
    this.#cells = c.attach(d.region);
    this.#ttlMs = d.ttlMs;
  }
  /** the query of a hash this worker does not hold; null when Redis has none or cannot answer (never rejects) */
  get(hash: string): Promise<string | null> {
    return this.#redis.get(hash, this.#cells);
  }
  set(hash: string, text: string): void {
    this.#redis.set(hash, text, this.#ttlMs, this.#cells);
  }
}

/** Main thread: the APQ Redis families, from the regions of the routes with store: redis. */
export function renderApqMetrics(plan: Plan, out: PromWriter): void {
  const routes: { route: string; cells: Int32Array }[] = [];
  for (const r of plan.routes) {
    const p = r.policies?.find((x) => x.name === 'graphql');
    const d = (p?.data as { apqRedis?: ApqRedisData | null } | undefined)?.apqRedis;
    if (d) routes.push({ route: r.name, cells: new Int32Array(d.region) });
  }
  if (routes.length === 0) return;
  out.help('nanogate_graphql_apq_redis_lookups_total', 'counter', 'persisted-query hashes not held by the worker and asked of Redis, by route and result (hit, miss, error: failed or timed out, skipped: Redis was down, answered as not found)');
  out.help('nanogate_graphql_apq_redis_stores_total', 'counter', 'persisted queries written to Redis, by route and result (ok, error, skipped: Redis was down, kept in memory only)');
  out.help('nanogate_graphql_apq_redis_outages_total', 'counter', 'times a worker lost its APQ Redis connection, by route');
  out.help('nanogate_graphql_apq_redis_connected_workers', 'gauge', 'workers whose APQ Redis connection is up, by route');
  const u = (c: Int32Array, i: number) => Atomics.load(c, i) >>> 0;
  for (const { route, cells } of routes) {
    for (const [result, cell] of [['hit', A_HITS], ['miss', A_MISSES], ['error', A_ERRORS], ['skipped', A_SKIPPED]] as const) {
      out.sample('nanogate_graphql_apq_redis_lookups_total', out.labels('route', route, 'result', result), u(cells, cell));
    }
    for (const [result, cell] of [['ok', A_STORES], ['error', A_STORE_ERRORS], ['skipped', A_STORE_SKIPPED]] as const) {
      out.sample('nanogate_graphql_apq_redis_stores_total', out.labels('route', route, 'result', result), u(cells, cell));
    }
    out.sample('nanogate_graphql_apq_redis_outages_total', out.labels('route', route), u(cells, A_OUTAGES));
    out.sample('nanogate_graphql_apq_redis_connected_workers', out.labels('route', route), Math.max(0, Atomics.load(cells, A_UP)));
  }
}

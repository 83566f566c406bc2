import { calendarNow } from '../../shared/clock.js';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../../config/schema.js';
import type { Plan } from '../../config/plan.js';
import type { RedisConfig } from '../../shared/redis-config.js';
import { clusterChecks, type CheckData } from './index.js';
import {
  CL_DENIED64,
  CL_FLAG,
  CL_HINT,
  CL_LEASE,
  H_GEN,
  REDIS_CONNECTING,
  REDIS_DOWN,
  REDIS_UP,
  Region,
  S_FALLBACK_ADMIT,
  S_FALLBACK_REJECT,
  S_REDIS_STATE,
  S_WAIT_TIMEOUTS,
  STATUS_BYTES,
  TAG,
} from './layout.js';
import { Period, leaseAdd, nowUs } from './store-shared.js';
import { createRedisClient, type Grant, type ScriptedRedis } from './store-redis.js';
import { RATE_LIMIT_SERVICE, type LeaseRequest, type RateLimitServiceData } from './service-data.js';

/**
 * The control plane's side of cluster-scope limits. It holds the node's only Redis connection: workers never talk
 * to Redis and never wait on it. A worker whose lease for a key runs low posts a LeaseRequest on a BroadcastChannel;
 * this service runs the key's Lua script for `lease` tokens and adds what Redis granted to the entry's LEASE cell,
 * records a refusal in DENIED, then bumps the region's GEN cell and wakes the workers waiting on it
 * (Atomics.notify). It also tracks whether Redis is reachable (status cells that workers read), logs every change
 * of that, and lets the client reconnect by itself.
 */
export class RateLimitService {
  readonly log: Logger;
  readonly statusCells = new SharedArrayBuffer(STATUS_BYTES);
  readonly #cells = new Int32Array(this.statusCells);
  readonly channelName = `nanogate-rate-limit-${process.pid}-${randomBytes(6).toString('hex')}`;
  #channel: BroadcastChannel | null = null;
  #client: ScriptedRedis | null = null;
  #redisConfig = '';
  #prefix = 'nanogate:';
  /** cluster checks by region id (the latest compile's) */
  #regions = new Map<string, { data: CheckData; region: Region; period: Period | null }>();
  #downSince: number | null = null;
  readonly #counts = { leaseRequests: 0, tokensGranted: 0, refusals: 0, errors: 0, reconnects: 0, outages: 0 };

  constructor(log: Logger) {
    this.log = log;
  }

  /** Registers the cluster limits of a freshly compiled plan and hands the service to its workers. */
  prepare(config: Config, plan: Plan): void {
    const checks = plan.routes.flatMap((r) => clusterChecks(r.policies));
    if (checks.length === 0 && this.#client === null) return;
    for (const c of checks) {
      this.#regions.set(c.regionId, { data: c, region: new Region(c.region), period: c.type === 'quota' ? new Period(c.per as 'day' | 'month') : null });
    }
    const redis = (config as { redis?: RedisConfig }).redis;
    if (redis !== undefined) this.#connect(redis);
    if (this.#channel === null) {
      this.#channel = new BroadcastChannel(this.channelName);
      this.#channel.onmessage = (ev) => this.#onRequest((ev as MessageEvent).data as LeaseRequest);
      (this.#channel as unknown as { unref(): void }).unref();
    }
    const service: RateLimitServiceData = { channel: this.channelName, status: this.statusCells };
    (plan.services as Record<string, unknown>)[RATE_LIMIT_SERVICE] = service;
  }

  #connect(cfg: RedisConfig): void {
    const key = JSON.stringify(cfg);
    if (key === this.#redisConfig && this.#client !== null) return;
    this.#redisConfig = key;
    this.#prefix = cfg.keyPrefix;
    const old = this.#client;
    if (old !== null) old.disconnect();
    Atomics.store(this.#cells, S_REDIS_STATE, REDIS_CONNECTING);
    const client = createRedisClient(cfg);
    this.#client = client;
    const where = cfg.url ? cfg.url.replace(/\/\/[^@/]*@/, '//***@') : (cfg.nodes ?? []).map((n) => `${n.host}:${n.port}`).join(',');
    client.on('ready', () => {
      if (this.#client !== client) return;
      const was = Atomics.exchange(this.#cells, S_REDIS_STATE, REDIS_UP);
      if (was === REDIS_DOWN) {
        this.#counts.reconnects++;
        this.log.warn({ redis: where, downMs: this.#downSince === null ? 0 : Date.now() - this.#downSince }, 'rate limits: redis reachable again; cluster limits are enforced again');
      } else this.log.info({ redis: where, mode: cfg.mode }, 'rate limits: redis connected');
      this.#downSince = null;
      this.#wakeAll();
    });
    const down = (reason: string) => {
      if (this.#client !== client) return;
      this.#markDown(where, reason);
    };
    client.on('error', (err: Error) => down(err.message));
    client.on('close', () => down('connection closed'));
    client.on('end', () => down('connection ended'));
  }

  #markDown(where: string, reason: string): void {
    const was = Atomics.exchange(this.#cells, S_REDIS_STATE, REDIS_DOWN);
    if (was !== REDIS_DOWN) {
      this.#downSince = Date.now();
      this.#counts.outages++;
      this.log.error({ redis: where, reason }, 'rate limits: redis unreachable; cluster limits follow onRedisDown until it is back');
      this.#wakeAll();
    }
  }

  /** Wakes every worker waiting for a lease (they re-check, and see the new state). */
  #wakeAll(): void {
    for (const { region } of this.#regions.values()) {
      Atomics.add(region.i32, H_GEN, 1);
      Atomics.notify(region.i32, H_GEN);
    }
  }

  #onRequest(req: LeaseRequest): void {
    const reg = this.#regions.get(req.r);
    const client = this.#client;
    if (reg === undefined) return;
    const { data, region } = reg;
    const base = region.base32(req.e);
    const finish = () => {
      Atomics.store(region.i32, base + CL_FLAG, 0);
      Atomics.add(region.i32, H_GEN, 1);
      Atomics.notify(region.i32, H_GEN);
    };
    if (client === null || Atomics.load(this.#cells, S_REDIS_STATE) === REDIS_DOWN) return finish();
    this.#counts.leaseRequests++;
    const key = `${this.#prefix}rl:${data.regionId}:${req.k}`;
    let call: Promise<Grant>;
    if (data.type === 'tokenBucket') call = client.ngTokenBucket(key, data.intervalUs, data.limit, data.lease);
    else if (data.type === 'slidingWindow') call = client.ngSlidingWindow(key, data.subUs, data.limit, data.lease);
    else {
      const period = reg.period!;
      period.at(calendarNow());
      if (period.index !== req.p) return finish(); // asked in the last period: let the worker ask again
      call = client.ngQuota(`${key}:${req.p}`, data.limit, data.lease, period.endMs - calendarNow() + 3_600_000);
    }
    call.then(
      ([granted, remaining, retryMs]) => {
        // The entry may have gone to another key meanwhile (table takeover): then the grant is dropped.
        if (req.t === 0 || Atomics.load(region.i32, base + TAG) === req.t) {
          if (granted > 0) leaseAdd(region.i32, base + CL_LEASE, req.p, granted);
          Atomics.store(region.i32, base + CL_HINT, remaining);
          const until = granted > 0 ? 0 : Math.floor(nowUs() / 1000 + Math.max(1, retryMs));
          Atomics.store(region.i64, region.base64(req.e) + CL_DENIED64, BigInt(until));
        }
        this.#counts.tokensGranted += granted;
        if (granted === 0) this.#counts.refusals++;
        finish();
      },
      (err: Error) => {
        this.#counts.errors++;
        this.#markDown(this.#redisConfig ? 'redis' : '', err.message);
        finish();
      },
    );
  }

  status(): Record<string, unknown> | null {
    if (this.#client === null) return null;
    const state = Atomics.load(this.#cells, S_REDIS_STATE);
    return {
      redis: state === REDIS_UP ? 'up' : state === REDIS_DOWN ? 'down' : 'connecting',
      downSince: this.#downSince === null ? null : new Date(this.#downSince).toISOString(),
      outages: this.#counts.outages,
      reconnects: this.#counts.reconnects,
      leaseRequests: this.#counts.leaseRequests,
      tokensGranted: this.#counts.tokensGranted,
      refusals: this.#counts.refusals,
      redisErrors: this.#counts.errors,
      fallbackAdmitted: Atomics.load(this.#cells, S_FALLBACK_ADMIT),
      fallbackRefused: Atomics.load(this.#cells, S_FALLBACK_REJECT),
      leaseWaitTimeouts: Atomics.load(this.#cells, S_WAIT_TIMEOUTS),
    };
  }

  async close(): Promise<void> {
    this.#channel?.close();
    this.#channel = null;
    const c = this.#client;
    this.#client = null;
    if (c !== null) c.disconnect();
  }
}

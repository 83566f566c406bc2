import { calendarNow } from '../../shared/clock.js';
import type { PolicyContext } from '../../pipeline/policy.js';
import type { CheckData } from './index.js';
import {
  CL_DENIED64,
  CL_FALLBACK64,
  CL_FLAG,
  CL_HINT,
  CL_LEASE,
  H_GEN,
  Q_PC64,
  Q_PERIOD_MASK,
  Q_PERIOD_UNIT,
  REDIS_DOWN,
  Region,
  S_FALLBACK_ADMIT,
  S_FALLBACK_REJECT,
  S_REDIS_STATE,
  S_WAIT_TIMEOUTS,
  SW_SUBS,
  TAG,
  TB_TAT64,
} from './layout.js';
import {
  CheckOut,
  Period,
  clusterFreshAt,
  findEntry,
  hashKey,
  hashOut,
  nowUs,
  leaseRefund,
  leaseTake,
  quotaFreshAt,
  quotaRefundCell,
  quotaTakeCell,
  swFreshAt,
  swRefund,
  swTake,
  tatTakeCell,
  tbFresh,
  tbRefund,
  type FreshTest,
} from './store-shared.js';
import type { LeaseRequest, RateLimitServiceData } from './service-data.js';

/** Results of one check. */
export const ADMIT = 0;
export const REFUSE = 1;
/** cluster: no leased token yet; a refill was asked for, wait on the region's GEN cell */
export const WAIT = 2;
/** cluster: Redis is down and the policy fails closed */
export const UNAVAILABLE = 3;

/** A lease request that got no answer within this time may be sent again. */
const ASK_TIMEOUT_MS = 1000;
/** marks an entry whose admission came from the local fallback (refund goes there, not to the lease) */
const FALLBACK_BIT = 1 << 30;
/** key of the OVERFLOW entry in Redis */
const OVERFLOW_KEY = '\u0000overflow';

/**
 * One limit (or quota) as a worker runs it: the key of a request, its entry in the shared region, and the check.
 * One instance per worker, route and limit; `out`, `entry` and `gen` describe the last check (a worker runs one
 * check at a time, so they are scratch, not state).
 */
export abstract class Limiter {
  readonly data: CheckData;
  readonly region: Region;
  readonly out = new CheckOut();
  readonly fixed: boolean;
  readonly fresh: FreshTest;
  entry = 0;
  /** GEN seen before the last lease request (WAIT) */
  gen = 0;
  /** the key string of the last check ('' for fixed keys) */
  key = '';
  /**
   * tokens the next check takes (a token bucket of a `cost: graphql` policy: the operation's cost); set by the hook
   * before each check, like `out` it is scratch of one synchronous call
   */
  weight = 1;
  // hashOut of the last key hashed here
  #hashedKey = '';
  #hashedSeed = NaN;
  #hash0 = 0;
  #hash1 = 0;

  constructor(data: CheckData, fresh: FreshTest) {
    this.data = data;
    this.region = new Region(data.region);
    this.fixed = data.key === 'route' || data.key === 'global';
    this.fresh = fresh;
  }

  /** Finds the request's entry (and sets `key`). Consumer, plan and header keys fall back to the client IP. */
  locate(ctx: PolicyContext, now: number): number {
    if (this.fixed) return 0;
    const d = this.data;
    let key: string | null | undefined;
    let seed = d.seed;
    switch (d.key) {
      case 'ip':
        key = ctx.clientIp;
        break;
      case 'consumer':
        key = ctx.consumerId;
        break;
      case 'plan':
        key = ctx.consumerPlan;
        break;
      case 'header':
        key = ctx.header(d.header!);
        break;
    }
    if (key === null || key === undefined) {
      // Anonymous or without the header: counted by client address, in a namespace of its own.
      key = '\u0000ip:' + ctx.clientIp;
      seed ^= 0x5bd1e995;
    }
    this.key = key;
    // consecutive requests mostly carry the same key (a client's connection, a consumer's burst): comparing it with
    // the last one is cheaper than hashing it again
    if (key !== this.#hashedKey || seed !== this.#hashedSeed) {
      hashKey(key, seed);
      this.#hashedKey = key;
      this.#hashedSeed = seed;
      this.#hash0 = hashOut[0];
      this.#hash1 = hashOut[1];
    } else {
      hashOut[0] = this.#hash0;
      hashOut[1] = this.#hash1;
    }
    return findEntry(this.region, this.fresh, now);
  }

  abstract check(ctx: PolicyContext, now: number): number;
  abstract refund(entry: number): void;
  /** the check as Redis-less fallback (cluster only) */
  fallback(_ctx: PolicyContext, _now: number): number {
    return REFUSE;
  }
  timedOut(): void {}
}

class TokenBucket extends Limiter {
  constructor(data: CheckData) {
    super(data, tbFresh);
  }
  check(ctx: PolicyContext, now: number): number {
    const e = (this.entry = this.locate(ctx, now));
    const r = this.region;
    return tatTakeCell(r.i64, r.base64(e) + TB_TAT64, now, this.data.intervalUs, this.data.limit, this.out, this.weight) ? ADMIT : REFUSE;
  }
  refund(entry: number): void {
    tbRefund(this.region, entry, this.data.intervalUs * this.weight);
  }
}

class SlidingWindow extends Limiter {
  constructor(data: CheckData) {
    super(data, swFreshAt(data.subUs));
  }
  check(ctx: PolicyContext, now: number): number {
    const e = (this.entry = this.locate(ctx, now));
    return swTake(this.region, e, now, this.data.subUs, this.data.limit, this.out) ? ADMIT : REFUSE;
  }
  refund(entry: number): void {
    swRefund(this.region, entry, nowUs(), this.data.subUs);
  }
}

class Quota extends Limiter {
  readonly period: Period;
  constructor(data: CheckData, period: Period) {
    super(data, quotaFreshAt(period));
    this.period = period;
  }
  check(ctx: PolicyContext, now: number): number {
    const e = (this.entry = this.locate(ctx, now));
    const ms = calendarNow();
    const p = this.period.at(ms);
    const ok = quotaTakeCell(this.region.i64, this.region.base64(e) + Q_PC64, p, this.data.limit, this.out);
    this.out.resetUs = this.out.retryUs = (this.period.endMs - ms) * 1000;
    return ok ? ADMIT : REFUSE;
  }
  refund(entry: number): void {
    quotaRefundCell(this.region.i64, this.region.base64(entry) + Q_PC64, this.period.index);
  }
}

/**
 * A cluster-scope limit: requests spend tokens that the control plane leased from Redis into the entry's LEASE
 * cell. When the lease runs low the worker asks for more (one request in flight per entry, flagged in FLAG); when
 * it is empty the request waits (Atomics.waitAsync on GEN, never blocking the thread) for the reply, unless Redis
 * already said no (DENIED). While Redis is down, the policy's onRedisDown applies: the same limit enforced by this
 * node alone (FALLBACK cell), or 503.
 */
class Cluster extends Limiter {
  readonly status: Int32Array | null;
  readonly channel: BroadcastChannel | null;
  readonly failOpen: boolean;
  readonly period: Period | null;
  /** refill when the lease falls below this (prefetch, so that most requests never wait) */
  readonly lowWater: number;
  /** fallback GCRA: µs per token and burst (a sliding window falls back to a bucket of the same rate) */
  readonly fbInterval: number;
  readonly fbBurst: number;
  readonly quota: boolean;

  constructor(data: CheckData, service: RateLimitServiceData | null, failOpen: boolean) {
    const period = data.type === 'quota' ? new Period(data.per as 'day' | 'month') : null;
    const fbInterval = data.type === 'tokenBucket' ? data.intervalUs : Math.ceil((data.subUs * SW_SUBS) / data.limit);
    super(
      data,
      clusterFreshAt(
        period
          ? (i64, cell) => {
              const v = Number(Atomics.load(i64, cell));
              return v === 0 || Math.floor(v / Q_PERIOD_UNIT) !== (period.at(calendarNow()) & Q_PERIOD_MASK);
            }
          : (i64, cell, t) => Number(Atomics.load(i64, cell)) <= t,
      ),
    );
    this.period = period;
    this.quota = period !== null;
    this.status = service ? new Int32Array(service.status) : null;
    this.channel = service ? channelFor(service.channel) : null;
    this.failOpen = failOpen;
    this.lowWater = Math.ceil(data.lease / 2);
    this.fbInterval = fbInterval;
    this.fbBurst = data.limit;
  }

  override locate(ctx: PolicyContext, now: number): number {
    const e = super.locate(ctx, now);
    if (e === this.region.overflow) this.key = OVERFLOW_KEY;
    return e;
  }

  check(ctx: PolicyContext, now: number): number {
    const e = (this.entry = this.locate(ctx, now));
    const r = this.region;
    const b = r.base32(e);
    const epoch = this.period !== null ? this.period.at(calendarNow()) : 0;
    const state = this.status !== null ? Atomics.load(this.status, S_REDIS_STATE) : REDIS_DOWN;
    const left = leaseTake(r.i32, b + CL_LEASE, epoch);
    const out = this.out;
    if (left >= 0) {
      if (left < this.lowWater && state !== REDIS_DOWN) this.#ask(e, epoch, now);
      out.remaining = Math.max(0, Atomics.load(r.i32, b + CL_HINT)) + left;
      out.resetUs = this.#resetUs(out.remaining, now);
      out.retryUs = 0;
      return ADMIT;
    }
    if (state === REDIS_DOWN) return this.fallback(ctx, now);
    const denied = Number(Atomics.load(r.i64, r.base64(e) + CL_DENIED64)) * 1000;
    if (denied > now) {
      out.remaining = 0;
      out.retryUs = denied - now;
      out.resetUs = this.#resetUs(0, now);
      return REFUSE;
    }
    this.gen = Atomics.load(r.i32, H_GEN);
    this.#ask(e, epoch, now);
    return WAIT;
  }

  #resetUs(remaining: number, now: number): number {
    const d = this.data;
    if (this.period !== null) return (this.period.endMs - calendarNow()) * 1000;
    if (d.type === 'tokenBucket') return Math.max(0, d.limit - remaining) * d.intervalUs;
    return d.subUs * SW_SUBS - (now % d.subUs);
  }

  #ask(e: number, epoch: number, now: number): void {
    if (this.channel === null) return;
    const i32 = this.region.i32;
    const cell = this.region.base32(e) + CL_FLAG;
    const stamp = ((Math.floor(now / 1000) & 0x3fffffff) + 1) | 0;
    const v = Atomics.load(i32, cell);
    if (v !== 0 && ((stamp - v) & 0x3fffffff) < ASK_TIMEOUT_MS) return;
    if (Atomics.compareExchange(i32, cell, v, stamp) !== v) return;
    const msg: LeaseRequest = { r: this.data.regionId, e, k: this.key, t: this.fixed || e === this.region.overflow ? 0 : Atomics.load(i32, this.region.base32(e) + TAG), p: epoch };
    this.channel.postMessage(msg);
  }

  override fallback(_ctx: PolicyContext, now: number): number {
    const status = this.status;
    if (!this.failOpen) {
      if (status !== null) Atomics.add(status, S_FALLBACK_REJECT, 1);
      return UNAVAILABLE;
    }
    const r = this.region;
    const cell = r.base64(this.entry) + CL_FALLBACK64;
    let ok: boolean;
    if (this.period !== null) {
      const ms = calendarNow();
      ok = quotaTakeCell(r.i64, cell, this.period.at(ms), this.data.limit, this.out);
      this.out.resetUs = this.out.retryUs = (this.period.endMs - ms) * 1000;
    } else ok = tatTakeCell(r.i64, cell, now, this.fbInterval, this.fbBurst, this.out);
    if (ok) {
      this.entry |= FALLBACK_BIT;
      if (status !== null) Atomics.add(status, S_FALLBACK_ADMIT, 1);
    }
    return ok ? ADMIT : REFUSE;
  }

  override timedOut(): void {
    if (this.status !== null) Atomics.add(this.status, S_WAIT_TIMEOUTS, 1);
  }

  refund(entry: number): void {
    const r = this.region;
    if ((entry & FALLBACK_BIT) !== 0) {
      const e = entry & ~FALLBACK_BIT;
      const cell = r.base64(e) + CL_FALLBACK64;
      if (this.period !== null) quotaRefundCell(r.i64, cell, this.period.index);
      else {
        for (;;) {
          const old = Atomics.load(r.i64, cell);
          if (Atomics.compareExchange(r.i64, cell, old, BigInt(Number(old) - this.fbInterval)) === old) return;
        }
      }
      return;
    }
    leaseRefund(r.i32, r.base32(entry) + CL_LEASE, this.period !== null ? this.period.index : 0);
  }
}

const channels = new Map<string, BroadcastChannel>();

/** One BroadcastChannel per name and thread; it never keeps the thread alive and drops what it receives. */
function channelFor(name: string): BroadcastChannel {
  let ch = channels.get(name);
  if (ch === undefined) {
    ch = new BroadcastChannel(name);
    ch.onmessage = () => {};
    (ch as unknown as { unref(): void }).unref();
    channels.set(name, ch);
  }
  return ch;
}

export function createLimiter(data: CheckData, service: RateLimitServiceData | null, failOpen: boolean): Limiter {
  if (data.scope === 'cluster') return new Cluster(data, service, failOpen);
  if (data.type === 'tokenBucket') return new TokenBucket(data);
  if (data.type === 'slidingWindow') return new SlidingWindow(data);
  return new Quota(data, new Period(data.per as 'day' | 'month'));
}

import { performance } from 'node:perf_hooks';
import { calendarNow } from '../../shared/clock.js';
import {
  CL_DENIED64,
  CL_FALLBACK64,
  CL_FLAG,
  CL_LEASE,
  EMPTY,
  EPOCH_MASK,
  LEASE_BITS,
  LEASE_MASK,
  PROBES,
  Q_PC64,
  Q_PERIOD_MASK,
  Q_PERIOD_UNIT,
  Region,
  SW_COUNT_BITS,
  SW_COUNT_MASK,
  SW_LAST,
  SW_OFF_MAX,
  SW_RING,
  SW_SLOTS,
  SW_SUBS,
  SW_TAG_MASK,
  SW_TOUCHED,
  TAG,
  TB_TAT64,
} from './layout.js';

/**
 * The one-node algorithms over the shared layout (layout.ts). Each check is a compare-and-swap loop on one cell, so
 * every worker sees one bucket and no admission is ever lost or doubled. They allocate nothing but the BigInts the
 * 64-bit cells hand out.
 */

// ------------------------------------------------------------------------------------------------------ clock

/**
 * Monotonic microseconds, the same in every thread of the process. performance.now() counts from each thread's own
 * start, so the offset to process.hrtime (one clock for the whole process) is taken once per thread; the remaining
 * error between threads is the time between two clock reads (well below a microsecond).
 */
const HR_OFFSET_MS = (() => {
  let best = Infinity;
  let offset = 0;
  for (let i = 0; i < 5; i++) {
    const a = performance.now();
    const hr = Number(process.hrtime.bigint()) / 1e6;
    const b = performance.now();
    if (b - a < best) {
      best = b - a;
      offset = hr - (a + b) / 2;
    }
  }
  return offset;
})();

export function nowUs(): number {
  return Math.floor((performance.now() + HR_OFFSET_MS) * 1000);
}

// ------------------------------------------------------------------------------------------------------ keys

/** Two independent 32-bit FNV-1a hashes of a key in one pass: [0] picks the home entry, [1] is the tag. */
export const hashOut = new Int32Array(2);

export function hashKey(key: string, seed: number): void {
  let h1 = 0x811c9dc5 ^ seed;
  let h2 = 0x01000193 ^ Math.imul(seed, 0x9e3779b1);
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h2 ^= h2 >>> 15;
  }
  h2 ^= h2 >>> 13;
  h2 = Math.imul(h2, 0xc2b2ae35);
  h2 ^= h2 >>> 16;
  hashOut[0] = h1 ^ (h1 >>> 16);
  hashOut[1] = h2 === EMPTY ? 1 : h2;
}

/** Tells whether an entry's state is what a new key would start with (so another key may take the entry over). */
export type FreshTest = (r: Region, entry: number, now: number) => boolean;

/**
 * The entry of the key whose hashes are in hashOut, claiming one if needed: at most PROBES entries are read, and
 * the OVERFLOW entry is returned when every probed entry belongs to a key with live state.
 */
export function findEntry(r: Region, fresh: FreshTest, now: number): number {
  const i32 = r.i32;
  const home = hashOut[0];
  const tag = hashOut[1];
  let candidate = -1;
  let candidateTag = EMPTY;
  for (let p = 0; p < PROBES; p++) {
    const e = (home + p) & r.mask;
    const cell = r.base32(e) + TAG;
    const t = Atomics.load(i32, cell);
    if (t === tag) return e;
    if (t === EMPTY) {
      // Entries are never emptied again, so the key is not further along: claim this one (or join a racing claim).
      if (candidate >= 0) break;
      const seen = Atomics.compareExchange(i32, cell, EMPTY, tag);
      if (seen === EMPTY || seen === tag) return e;
      continue;
    }
    if (candidate < 0 && fresh(r, e, now)) {
      candidate = e;
      candidateTag = t;
    }
  }
  if (candidate >= 0) {
    const cell = r.base32(candidate) + TAG;
    const seen = Atomics.compareExchange(i32, cell, candidateTag, tag);
    if (seen === candidateTag || seen === tag) return candidate;
  }
  return r.overflow;
}

// ------------------------------------------------------------------------------------------------------ results

/** What a check reports besides admit/refuse. Times in µs. */
export class CheckOut {
  remaining = 0;
  /** until the state is back to full (bucket full, window empty, period over) */
  resetUs = 0;
  /** until a refused request could pass */
  retryUs = 0;
}

// ------------------------------------------------------------------------------------------------------ token bucket

/**
 * Token bucket as GCRA: the state is the "theoretical arrival time" TAT; a request at `now` is admitted when
 * max(TAT, now) + interval <= now + burst * interval, and then TAT advances by one interval. This is exactly a bucket
 * of `burst` tokens refilled every `interval` µs, held in one 64-bit cell instead of two (tokens, last refill), so
 * one compare-and-swap updates it. Over any span E from a full bucket, admissions <= burst + E / interval.
 */
export function tbTake(r: Region, entry: number, now: number, intervalUs: number, burst: number, out: CheckOut): boolean {
  return tatTakeCell(r.i64, r.base64(entry) + TB_TAT64, now, intervalUs, burst, out);
}

/** Gives back one token taken by tbTake (a later limit or the quota refused the request). */
export function tbRefund(r: Region, entry: number, intervalUs: number): void {
  const i64 = r.i64;
  const cell = r.base64(entry) + TB_TAT64;
  for (;;) {
    const old = Atomics.load(i64, cell);
    if (Atomics.compareExchange(i64, cell, old, BigInt(Number(old) - intervalUs)) === old) return;
  }
}

export const tbFresh: FreshTest = (r, e, now) => Number(Atomics.load(r.i64, r.base64(e) + TB_TAT64)) <= now;

// ------------------------------------------------------------------------------------------------------ sliding window

/**
 * Sliding window of SW_SUBS sub-windows: a request is counted in the current sub-window, and each sub-window also
 * remembers when its last admission was (rounded up to 1/SW_OFF_MAX of a sub-window). A sub-window counts until the
 * window has passed since its last admission; every admission in it is at or before that one, so each stays counted
 * for at least the window after it was made, and no window of length `per` ever holds more than `limit` admissions.
 * The price is refusing up to one sub-window early (the earlier admissions of a sub-window wait for its last one).
 * Because a sub-window leaves one window after an admission that was made at or before now, Retry-After and Reset
 * never exceed the window. (Counting whole sub-windows until their end plus the window, as this once did, answered
 * a refused 4/min client "Retry-After: 63".) Increment first, then check, then undo when over: concurrent requests
 * can only make each other refuse, never both pass beyond the limit.
 */
export function swTake(r: Region, entry: number, now: number, subUs: number, limit: number, out: CheckOut): boolean {
  const i32 = r.i32;
  const base = r.base32(entry);
  const cur = Math.floor(now / subUs);
  const curTag = cur & SW_TAG_MASK;
  const slot = cur % SW_RING;
  const own = base + SW_SLOTS + slot;
  const windowUs = subUs * SW_SUBS;
  const step = subUs / SW_OFF_MAX;
  let count = 0;
  for (;;) {
    const v = Atomics.load(i32, own);
    const next = v >>> SW_COUNT_BITS === curTag ? v + 1 : (curTag << SW_COUNT_BITS) | 1;
    if (Atomics.compareExchange(i32, own, v, next | 0) === v) {
      count = next & SW_COUNT_MASK;
      break;
    }
  }
  const touched = Atomics.load(i32, base + SW_TOUCHED);
  if (touched < cur) Atomics.compareExchange(i32, base + SW_TOUCHED, touched, cur);
  // The older sub-windows; a ring untouched for longer than the window holds nothing current. A sub-window's last
  // admission is within it, so the nine before the current one are always still in the window and only the oldest
  // (cur - SW_SUBS) needs its LAST cell read; and sub-windows leave in their order, the oldest counted one first.
  let oldest = cur;
  if (cur - touched <= SW_SUBS) {
    for (let j = SW_SUBS; j >= 1; j--) {
      const sub = cur - j;
      const k = sub % SW_RING;
      const v = Atomics.load(i32, base + SW_SLOTS + k);
      if (v >>> SW_COUNT_BITS !== (sub & SW_TAG_MASK)) continue;
      const c = v & SW_COUNT_MASK;
      if (c === 0) continue;
      if (j === SW_SUBS && swLastUs(i32, base + SW_LAST + k, sub, subUs, step, now) + windowUs <= now) continue;
      if (sub < oldest) oldest = sub;
      count += c;
    }
  }
  if (count > limit) {
    swUndo(i32, own, curTag);
    out.remaining = 0;
    // Until the oldest counted sub-window leaves (the current one when it holds them all). The rounding of a LAST
    // cell may put an admission up to one step after now: never say more than the window.
    const leaves = swLastUs(i32, base + SW_LAST + (oldest % SW_RING), oldest, subUs, step, now) + windowUs;
    out.retryUs = Math.min(windowUs, leaves - now);
    out.resetUs = windowUs;
    return false;
  }
  swMarkLast(i32, base + SW_LAST + slot, curTag, Math.min(SW_OFF_MAX, Math.ceil((now - cur * subUs) / step)));
  out.remaining = limit - count;
  out.retryUs = 0;
  // the admission just made is the newest: the window is empty once it has left
  out.resetUs = windowUs;
  return true;
}

/**
 * When the last admission of sub-window `sub` was (µs). A cell not yet written for this sub-window (an admission
 * counted, its time not yet recorded by a racing thread) counts as now, or the sub-window's end if that is earlier.
 */
function swLastUs(i32: Int32Array, cell: number, sub: number, subUs: number, step: number, now: number): number {
  const v = Atomics.load(i32, cell);
  if (v >>> SW_COUNT_BITS !== (sub & SW_TAG_MASK)) return Math.min(now, (sub + 1) * subUs);
  return sub * subUs + (v & SW_COUNT_MASK) * step;
}

/** Records an admission at `off` steps into the current sub-window: the cell keeps the latest. */
function swMarkLast(i32: Int32Array, cell: number, curTag: number, off: number): void {
  const next = ((curTag << SW_COUNT_BITS) | off) | 0;
  for (;;) {
    const v = Atomics.load(i32, cell);
    if (v >>> SW_COUNT_BITS === curTag && (v & SW_COUNT_MASK) >= off) return;
    if (Atomics.compareExchange(i32, cell, v, next) === v) return;
  }
}

function swUndo(i32: Int32Array, cell: number, curTag: number): void {
  for (;;) {
    const v = Atomics.load(i32, cell);
    if (v >>> SW_COUNT_BITS !== curTag || (v & SW_COUNT_MASK) === 0) return;
    if (Atomics.compareExchange(i32, cell, v, v - 1) === v) return;
  }
}

/** Gives back one admission counted by swTake at `now` (same sub-window only; later ones have moved on). */
export function swRefund(r: Region, entry: number, now: number, subUs: number): void {
  const cur = Math.floor(now / subUs);
  swUndo(r.i32, r.base32(entry) + SW_SLOTS + (cur % SW_RING), cur & SW_TAG_MASK);
}

export function swFreshAt(subUs: number): FreshTest {
  return (r, e, now) => Math.floor(now / subUs) - Atomics.load(r.i32, r.base32(e) + SW_TOUCHED) > SW_SUBS;
}

// ------------------------------------------------------------------------------------------------------ quota

/** A calendar period (UTC day or month): its index, and its end in epoch ms. */
export class Period {
  index = -1;
  endMs = 0;
  constructor(readonly per: 'day' | 'month') {}

  /** Moves to the period that holds `ms` when the current one is over. */
  at(ms: number): number {
    if (ms >= this.endMs || this.index < 0) {
      const d = new Date(ms);
      if (this.per === 'day') {
        this.index = Math.floor(ms / 86_400_000);
        this.endMs = (this.index + 1) * 86_400_000;
      } else {
        this.index = (d.getUTCFullYear() - 1970) * 12 + d.getUTCMonth();
        this.endMs = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
      }
    }
    return this.index;
  }
}

/** Counts one request against a per-period quota in a PERIOD_COUNT cell (i64 index `cell`). */
export function quotaTakeCell(i64: BigInt64Array, cell: number, period: number, limit: number, out: CheckOut): boolean {
  const p = period & Q_PERIOD_MASK;
  for (;;) {
    const old = Atomics.load(i64, cell);
    const v = Number(old);
    const vp = Math.floor(v / Q_PERIOD_UNIT);
    const used = vp === p ? v - vp * Q_PERIOD_UNIT : 0;
    if (used >= limit) {
      out.remaining = 0;
      return false;
    }
    if (Atomics.compareExchange(i64, cell, old, BigInt(p * Q_PERIOD_UNIT + used + 1)) === old) {
      out.remaining = limit - used - 1;
      return true;
    }
  }
}

export function quotaRefundCell(i64: BigInt64Array, cell: number, period: number): void {
  const p = period & Q_PERIOD_MASK;
  for (;;) {
    const old = Atomics.load(i64, cell);
    const v = Number(old);
    if (Math.floor(v / Q_PERIOD_UNIT) !== p || v === p * Q_PERIOD_UNIT) return;
    if (Atomics.compareExchange(i64, cell, old, BigInt(v - 1)) === old) return;
  }
}

export function quotaFreshAt(period: Period): FreshTest {
  return (r, e) => {
    const v = Number(Atomics.load(r.i64, r.base64(e) + Q_PC64));
    const vp = Math.floor(v / Q_PERIOD_UNIT);
    return vp !== (period.at(calendarNow()) & Q_PERIOD_MASK) || v === vp * Q_PERIOD_UNIT;
  };
}

// ------------------------------------------------------------------------------------------------------ cluster lease

/** Takes one token of the local lease (tokens fetched from Redis for this epoch). */
export function leaseTake(i32: Int32Array, cell: number, epoch: number): number {
  const e = epoch & EPOCH_MASK;
  for (;;) {
    const v = Atomics.load(i32, cell);
    const n = v & LEASE_MASK;
    if (v >>> LEASE_BITS !== e || n === 0) return -1;
    if (Atomics.compareExchange(i32, cell, v, v - 1) === v) return n - 1;
  }
}

/** Adds granted tokens to a lease (control plane), replacing a lease of another epoch. */
export function leaseAdd(i32: Int32Array, cell: number, epoch: number, n: number): void {
  const e = epoch & EPOCH_MASK;
  for (;;) {
    const v = Atomics.load(i32, cell);
    const have = v >>> LEASE_BITS === e ? v & LEASE_MASK : 0;
    const next = (e << LEASE_BITS) | Math.min(LEASE_MASK, have + n);
    if (Atomics.compareExchange(i32, cell, v, next | 0) === v) return;
  }
}

/** Gives a token back to the lease (a later check refused the request). */
export function leaseRefund(i32: Int32Array, cell: number, epoch: number): void {
  leaseAdd(i32, cell, epoch, 1);
}

/** Fresh: no leased tokens, no refill pending, not denied, local fallback state unused. */
export function clusterFreshAt(fallbackFresh: (i64: BigInt64Array, cell: number, now: number) => boolean): FreshTest {
  return (r, e, now) => {
    const b = r.base32(e);
    if ((Atomics.load(r.i32, b + CL_LEASE) & LEASE_MASK) !== 0 || Atomics.load(r.i32, b + CL_FLAG) !== 0) return false;
    const b64 = r.base64(e);
    if (Number(Atomics.load(r.i64, b64 + CL_DENIED64)) * 1000 > now) return false;
    return fallbackFresh(r.i64, b64 + CL_FALLBACK64, now);
  };
}

/**
 * GCRA on one i64 cell (see tbTake); also the fallback state of cluster entries. `tokens` > 1 takes that many at
 * once (a request priced by its cost): TAT advances by tokens x interval, admitted while it stays within the burst.
 */
export function tatTakeCell(i64: BigInt64Array, cell: number, now: number, intervalUs: number, burst: number, out: CheckOut, tokens = 1): boolean {
  const limitTat = now + burst * intervalUs;
  const step = tokens === 1 ? intervalUs : tokens * intervalUs;
  for (;;) {
    const old = Atomics.load(i64, cell);
    const tat = Number(old);
    const next = (tat > now ? tat : now) + step;
    if (next > limitTat) {
      out.remaining = 0;
      out.retryUs = next - limitTat;
      out.resetUs = tat - now;
      return false;
    }
    if (Atomics.compareExchange(i64, cell, old, BigInt(next)) === old) {
      out.remaining = Math.floor((limitTat - next) / intervalUs);
      out.resetUs = next - now;
      out.retryUs = 0;
      return true;
    }
  }
}

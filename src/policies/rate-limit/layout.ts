/**
 * Shared-memory layout of rate-limit state. Every limit (and a quota) owns one region: a SharedArrayBuffer taken
 * from CompileContext.shared(), so it is the same memory in every worker and survives config reloads. Every access
 * to a cell is an Atomics call; nothing is locked.
 *
 *   region
 *   +------------------------------------ header (HEADER_BYTES = 16) ------------------------------------+
 *   | GEN (i32): bumped by the control plane after each Redis reply (workers Atomics.waitAsync on it)     |
 *   | CAPACITY (i32) | STRIDE_BYTES (i32) | reserved (i32)                                                 |
 *   +------------------------------------------------------------------------------------------------------+
 *   | entry 0 | entry 1 | ... | entry CAPACITY-1 | OVERFLOW entry (table regions only)                      |
 *   +------------------------------------------------------------------------------------------------------+
 *
 * A fixed key (route, global) has CAPACITY 1 and uses entry 0. Keys known only at run time (client IP, header
 * value, consumer, plan) live in a table of CAPACITY (a power of two) entries with open addressing: a key probes
 * PROBES consecutive entries from hash1(key) and is identified by a 32-bit TAG = hash2(key) (EMPTY = 0). When no
 * probed entry is free, the key takes over the first probed entry whose state is *fresh* (equal to a new key's
 * state: a full bucket, an empty window, an unused quota), so a takeover never changes any key's future decisions.
 * When every probed entry holds live state, the key is counted in the region's OVERFLOW entry, which all such keys
 * share. A flood of new keys therefore never evicts live state, never makes a lookup probe more than PROBES
 * entries, and is itself limited as if it were one key.
 *
 *   token bucket entry (TB_STRIDE = 16 bytes)
 *   +-------+-------+-----------------------+
 *   | TAG   | pad   | TAT (i64, µs)         |       TAT: the token bucket as GCRA "theoretical arrival time" (µs of
 *   +-------+-------+-----------------------+       the monotonic clock); one cell, so one CAS
 *
 *   sliding window entry (SW_STRIDE = 96 bytes)
 *   +-------+---------+------+-----+-------+------+-----+-------+
 *   | TAG   | TOUCHED | S0   | ... | S10   | L0   | ... | L10   |
 *   +-------+---------+------+-----+-------+------+-----+-------+
 *   Sk: sub-window counters, (subIndex & 0x7ff) << 21 | count; TOUCHED: newest sub-window index written
 *   Lk: when the last admission of Sk's sub-window was, (subIndex & 0x7ff) << 21 | offset, the offset in steps of
 *   subUs / SW_OFF_MAX from the sub-window's start, rounded up (never earlier than the admission)
 *
 *   quota entry (Q_STRIDE = 16 bytes)               cluster entry (CL_STRIDE = 32 bytes)
 *   +-------+-------+-----------------------+       +-----+-------+------+------+--------------+--------------+
 *   | TAG   | pad   | PERIOD_COUNT (i64)    |       | TAG | LEASE | FLAG | HINT | DENIED (i64) | FALLBACK(i64)|
 *   +-------+-------+-----------------------+       +-----+-------+------+------+--------------+--------------+
 *   PERIOD_COUNT = period * 2^37 + count            LEASE: tokens leased from Redis, (epoch & 0x7ff) << 21 | n
 *   (below 2^53, so Number() reads it exactly)      FLAG: monotonic ms when a refill was asked (0 = none)
 *                                                   HINT: remaining in Redis at the last reply
 *                                                   DENIED: monotonic ms until Redis has no token (i64)
 *                                                   FALLBACK: local state used while Redis is down
 *                                                   (a TAT, or a PERIOD_COUNT for quotas)
 */

export const HEADER_BYTES = 16;
export const H_GEN = 0;
export const H_CAPACITY = 1;
export const H_STRIDE = 2;

/** no key in this entry */
export const EMPTY = 0;
/** entries probed from a key's home position before falling back to OVERFLOW */
export const PROBES = 8;

// token bucket (i32 offsets within the entry, then i64 offset)
export const TB_STRIDE = 16;
export const TAG = 0;
export const TB_TAT64 = 1; // i64 index within the entry (byte 8)

// sliding window
export const SW_STRIDE = 96;
export const SW_TOUCHED = 1;
export const SW_SLOTS = 2;
/** sub-windows per window; the ring holds one more (the current, partial one) */
export const SW_SUBS = 10;
export const SW_RING = SW_SUBS + 1;
/** first of the SW_RING last-admission cells */
export const SW_LAST = SW_SLOTS + SW_RING;
/** largest offset of a last-admission cell: a sub-window is SW_OFF_MAX steps */
export const SW_OFF_MAX = (1 << 21) - 1;
export const SW_COUNT_BITS = 21;
export const SW_COUNT_MASK = (1 << SW_COUNT_BITS) - 1;
export const SW_TAG_MASK = 0x7ff;

// quota
export const Q_STRIDE = 16;
export const Q_PC64 = 1;
/** 2^37: count part of PERIOD_COUNT */
export const Q_PERIOD_UNIT = 137438953472;
export const Q_PERIOD_MASK = 0xffff;

// cluster lease entry
export const CL_STRIDE = 32;
export const CL_LEASE = 1;
export const CL_FLAG = 2;
export const CL_HINT = 3;
export const CL_DENIED64 = 2; // i64 index within the entry (byte 16)
export const CL_FALLBACK64 = 3; // byte 24
export const LEASE_BITS = 21;
export const LEASE_MASK = (1 << LEASE_BITS) - 1;
export const EPOCH_MASK = 0x7ff;

/** The typed views over one region; made once per worker and route. */
export class Region {
  readonly sab: SharedArrayBuffer;
  readonly i32: Int32Array;
  readonly i64: BigInt64Array;
  /** table entries (1 for a fixed key) */
  readonly capacity: number;
  readonly mask: number;
  /** i32 cells per entry */
  readonly stride32: number;
  /** index of the OVERFLOW entry (= capacity) */
  readonly overflow: number;

  constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.i32 = new Int32Array(sab);
    this.i64 = new BigInt64Array(sab);
    this.capacity = this.i32[H_CAPACITY];
    this.mask = this.capacity - 1;
    this.stride32 = this.i32[H_STRIDE] >> 2;
    this.overflow = this.capacity;
  }

  /** i32 index of an entry's first cell */
  base32(entry: number): number {
    return (HEADER_BYTES >> 2) + entry * this.stride32;
  }

  /** i64 index of an entry's first 8 bytes */
  base64(entry: number): number {
    return (HEADER_BYTES >> 3) + entry * (this.stride32 >> 1);
  }
}

/** Bytes of a region with `capacity` entries of `stride` bytes (+1 OVERFLOW entry for tables). */
export function regionBytes(capacity: number, stride: number, table: boolean): number {
  return HEADER_BYTES + (capacity + (table ? 1 : 0)) * stride;
}

/** Writes the header of a new region (all zero), or checks an old one; runs on the control plane at compile. */
export function initRegion(sab: SharedArrayBuffer, capacity: number, stride: number): void {
  const i32 = new Int32Array(sab);
  if (Atomics.load(i32, H_CAPACITY) === 0) {
    Atomics.store(i32, H_STRIDE, stride);
    Atomics.store(i32, H_CAPACITY, capacity);
  }
}

/**
 * Service region of the control plane (plan.services.rateLimit.status), read and written by workers and the
 * control plane:
 *
 *   +-------------+----------------+-----------------+-------------------+
 *   | REDIS_STATE | FALLBACK_ADMIT | FALLBACK_REJECT | WAIT_TIMEOUTS     |  (i32 each)
 *   +-------------+----------------+-----------------+-------------------+
 */
export const S_REDIS_STATE = 0;
export const S_FALLBACK_ADMIT = 1;
export const S_FALLBACK_REJECT = 2;
export const S_WAIT_TIMEOUTS = 3;
export const STATUS_BYTES = 16;
export const REDIS_CONNECTING = 0;
export const REDIS_UP = 1;
export const REDIS_DOWN = 2;

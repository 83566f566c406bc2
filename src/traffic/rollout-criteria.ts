import { BUCKETS } from '../observe/metrics-layout.js';
import { quantileMs as splitQuantile } from './split-state.js';

/**
 * The numbers a rollout is judged on, from the per-version counters and latency buckets of a route's split region
 * (src/traffic/split-state.ts). The region holds cumulative 32-bit counters that wrap; a window is the difference
 * of two samples, taken modulo 2^32 (exact as long as fewer than 2^32 requests fall between two samples).
 * Pure functions: the controller samples, this file computes.
 */

/** One reading of a route's region: cumulative counters per version, as stored (signed 32-bit). */
export interface Sample {
  /** Date.now() of the reading */
  readonly at: number;
  readonly requests: readonly number[];
  readonly errors: readonly number[];
  /** per version, BUCKETS latency bucket counts (not cumulative), bounds of src/observe/metrics-layout.ts */
  readonly buckets: readonly (ArrayLike<number>)[];
}

/** What happened between two samples, for one version or a sum of versions. */
export interface Window {
  requests: number;
  errors: number;
  buckets: Float64Array;
}

/** The difference now - then of two readings of a 32-bit counter that may have wrapped, as a non-negative number. */
export function delta32(now: number, then: number): number {
  return (now - then) >>> 0;
}

/** The window between two samples of the versions in `versions`, summed. */
export function windowOf(from: Sample, to: Sample, versions: readonly number[]): Window {
  const w: Window = { requests: 0, errors: 0, buckets: new Float64Array(BUCKETS) };
  for (const v of versions) {
    w.requests += delta32(to.requests[v], from.requests[v]);
    w.errors += delta32(to.errors[v], from.errors[v]);
    const a = from.buckets[v];
    const b = to.buckets[v];
    for (let i = 0; i < BUCKETS; i++) w.buckets[i] += delta32(b[i], a[i]);
  }
  return w;
}

/** Error rate in percent, or null for an empty window. */
export function errorRatePct(w: Window): number | null {
  return w.requests > 0 ? (100 * w.errors) / w.requests : null;
}

/**
 * The q-quantile (0..1) of bucket counts in ms, or null when there are none (an empty window is not a 0 ms one):
 * interpolated as histogram_quantile() does, by the split region's own function, so the number in the admin API
 * is the one a dashboard shows.
 */
export function quantileMs(buckets: ArrayLike<number>, q: number): number | null {
  let total = 0;
  for (let i = 0; i < BUCKETS; i++) total += buckets[i];
  return total === 0 ? null : splitQuantile(buckets, q);
}

/** The criteria of a rollout, in the units of PlanRollout. */
export interface Criteria {
  /** percentage points, or null */
  readonly maxErrorRateIncrease: number | null;
  /** percent, or null */
  readonly maxP95Increase: number | null;
  /** ms: a P95 below it is compared as it */
  readonly p95FloorMs: number;
}

export interface Measured {
  requests: number;
  errors: number;
  /** percent, null for no requests */
  errorRatePct: number | null;
  /** ms, null for no requests */
  p95Ms: number | null;
}

export function measure(w: Window): Measured {
  return { requests: w.requests, errors: w.errors, errorRatePct: round3(errorRatePct(w)), p95Ms: round3(quantileMs(w.buckets, 0.95)) };
}

/**
 * Judges a canary window against the stable versions' window of the same time: the reasons it fails, none when it
 * passes. Latency: canary P95 <= max(stable P95, p95FloorMs) × (1 + maxP95Increase / 100). An empty stable window counts as error rate 0 and leaves P95 unjudged (nothing to compare with).
 */
export function failures(c: Criteria, canary: Window, stable: Window): string[] {
  const out: string[] = [];
  if (canary.requests === 0) return out;
  if (c.maxErrorRateIncrease !== null) {
    const cr = errorRatePct(canary)!;
    const sr = errorRatePct(stable) ?? 0;
    if (cr > sr + c.maxErrorRateIncrease) out.push(`error rate ${fmt(cr)} % > stable ${fmt(sr)} % + ${c.maxErrorRateIncrease} points`);
  }
  if (c.maxP95Increase !== null && stable.requests > 0) {
    const cp = quantileMs(canary.buckets, 0.95)!;
    const sp = quantileMs(stable.buckets, 0.95)!;
    const limit = Math.max(sp, c.p95FloorMs) * (1 + c.maxP95Increase / 100);
    if (cp > limit) out.push(`P95 ${fmt(cp)} ms > stable ${fmt(sp)} ms + ${c.maxP95Increase} %${sp < c.p95FloorMs ? ` of the ${c.p95FloorMs} ms floor` : ''}`);
  }
  return out;
}

/** Every request of the window failed (a canary whose upstream is down answers only 502/503/504). */
export function allFailed(w: Window, atLeast: number): boolean {
  return w.requests >= atLeast && w.errors >= w.requests;
}

function round3(x: number | null): number | null {
  return x === null ? null : Math.round(x * 1000) / 1000;
}

function fmt(x: number): string {
  return String(Math.round(x * 1000) / 1000);
}

import { performance } from 'node:perf_hooks';
import { XorShift32, randomSeed } from './rng.js';
import { NO_NODE, type Balancer, type NodeView } from './view.js';

/**
 * Peak EWMA (Finagle's PeakEwma, linkerd and tower's balancer): each node's cost is its peak-sensitive moving
 * average of response time times the requests it would then have in flight,
 *
 *   cost_i = latencyEWMA_i × (inFlight_i + 1) / weight_i
 *
 * and power of two choices takes the cheaper of two random eligible nodes. A node that slows down loses traffic at
 * once (the peak replaces the average), and gets it back as its average decays. Dividing by the weight makes
 * configured weights and the slow-start ramp count here too.
 *
 * A node with no sample yet (just added, or never used) must not look free: with cost 0 it would win every draw it
 * is in (about 2/N of all traffic, on a node that has not been warmed up). It is priced at the mean latency of the
 * nodes that have samples, so it starts like an average node and its first responses set its own value. When no
 * node has a sample, every node costs (inFlight + 1) / weight: plain least request.
 */
export interface PeakEwmaOptions {
  /** PRNG seed; give each worker its own. Default: random */
  seed?: number;
}

/** Draws before a pick gives up on random draws and scans for eligible nodes (most nodes out). */
const DRAWS = 8;

export class PeakEwmaBalancer implements Balancer {
  readonly #rng: XorShift32;
  #cand = new Int32Array(0);

  constructor(options: PeakEwmaOptions = {}) {
    this.#rng = new XorShift32(options.seed ?? randomSeed());
  }

  pick(view: NodeView, skip: number, _key = 0): number {
    const n = view.count;
    if (n === 0) return NO_NODE;
    const rng = this.#rng;
    // Rejection sampling keeps the common case O(1): two distinct eligible nodes in a few draws.
    let a = NO_NODE;
    let b = NO_NODE;
    for (let d = 0; d < DRAWS && b === NO_NODE; d++) {
      const i = rng.below(n);
      if (i === a || i === skip || !view.available(i) || !(view.weight(i) > 0)) continue;
      if (a === NO_NODE) a = i;
      else b = i;
    }
    if (b === NO_NODE) {
      const m = this.#eligible(view, skip);
      if (m === 0) return NO_NODE;
      if (m === 1) return this.#cand[0];
      const r = rng.below(m);
      let s = rng.below(m - 1);
      if (s >= r) s++;
      a = this.#cand[r];
      b = this.#cand[s];
    }
    let la = view.latencyUs(a);
    let lb = view.latencyUs(b);
    if (la <= 0 || lb <= 0) {
      const neutral = meanLatency(view, skip);
      if (la <= 0) la = neutral;
      if (lb <= 0) lb = neutral;
    }
    const ca = (la * (view.inFlight(a) + 1)) / view.weight(a);
    const cb = (lb * (view.inFlight(b) + 1)) / view.weight(b);
    // Equal costs: the first draw, itself random.
    return cb < ca ? b : a;
  }

  #eligible(view: NodeView, skip: number): number {
    const n = view.count;
    if (this.#cand.length < n) this.#cand = new Int32Array(n);
    let m = 0;
    for (let i = 0; i < n; i++) if (i !== skip && view.available(i) && view.weight(i) > 0) this.#cand[m++] = i;
    return m;
  }
}

/** Mean latency of the available nodes that have a sample; 1 when none has (costs then compare in-flight counts). */
function meanLatency(view: NodeView, skip: number): number {
  let sum = 0;
  let k = 0;
  for (let i = 0; i < view.count; i++) {
    if (i === skip || !view.available(i)) continue;
    const l = view.latencyUs(i);
    if (l > 0) {
      sum += l;
      k++;
    }
  }
  return k === 0 ? 1 : sum / k;
}

/** Finagle's and linkerd's default decay time constant. */
export const DEFAULT_DECAY_MS = 10_000;

/**
 * One step of the peak-sensitive EWMA, in integer µs (0 = no sample yet; results are >= 1 so 0 stays that
 * sentinel). A sample above the current value replaces it (the peak); otherwise the value decays towards the sample
 * with weight e^(−elapsed/τ) on the old value, so the average forgets at the same rate in time whatever the
 * request rate.
 */
export function ewmaNext(currentUs: number, sampleUs: number, elapsedMs: number, tauMs: number): number {
  const sample = sampleUs < 1 ? 1 : sampleUs;
  if (currentUs <= 0 || sample >= currentUs) return Math.round(sample);
  const keep = Math.exp(-(elapsedMs > 0 ? elapsedMs : 0) / tauMs);
  const next = Math.round(currentUs * keep + sample * (1 - keep));
  return next < 1 ? 1 : next;
}

/**
 * The value to balance on at `nowMs`: the stored EWMA decayed towards 0 for the time since its last update, as
 * Finagle's and tower's peak EWMA do when they read a node's cost. Without it a node that was slow once keeps its
 * peak for ever: it loses every draw, gets no request, so no sample that could bring the value down. Decayed, an
 * idle node's cost falls until it wins a draw again, and the response to that probe sets its value afresh. Never
 * returns 0 for a node that has a value (0 means no sample). NodeView.latencyUs(i) should return this.
 */
export function ewmaAt(valueUs: number, stampMs: number, nowMs: number, tauMs: number): number {
  if (valueUs <= 0) return 0;
  const elapsed = ((nowMs | 0) - (stampMs | 0)) | 0;
  if (elapsed <= 0) return valueUs;
  const v = valueUs * Math.exp(-elapsed / tauMs);
  return v < 1 ? 1 : v;
}

/**
 * Applies a sample to shared cells: `cells[valueIndex]` holds the EWMA in µs, `cells[stampIndex]` the time of the
 * last update in ms (Int32, wrapping every 24.8 days; differences are taken modulo 2^32). Safe with any number of
 * workers updating the same node:
 *
 * - the stamp only moves forward (compare-and-swap), and each update decays by the time it moved it, so concurrent
 *   updates split the elapsed time between them and the total decay matches the time that passed; an update
 *   stamped at or before the current stamp (another worker got there first, or a little clock skew) decays by 0;
 * - the value is a compare-and-swap loop, so no sample and no peak is lost.
 *
 * Two samples in the same millisecond: the second gets elapsed 0 and moves the average only if it is a new peak
 * (the average then sees about one sample per ms per node, plenty for a τ of seconds). `nowMs` must come from one
 * clock for all threads (Date.now(), or performance.timeOrigin + performance.now()). Returns the new value.
 */
export function ewmaUpdate(cells: Int32Array, valueIndex: number, stampIndex: number, sampleUs: number, nowMs: number, tauMs: number): number {
  const now = nowMs | 0;
  let elapsed = 0;
  // First sample: the stamp may be anything (0 from a fresh region); set it, there is nothing to decay.
  if (Atomics.load(cells, valueIndex) === 0) Atomics.store(cells, stampIndex, now);
  for (;;) {
    const prev = Atomics.load(cells, stampIndex);
    const d = (now - prev) | 0;
    if (d <= 0) break;
    if (Atomics.compareExchange(cells, stampIndex, prev, now) === prev) {
      elapsed = d;
      break;
    }
  }
  for (;;) {
    const old = Atomics.load(cells, valueIndex);
    const next = ewmaNext(old, sampleUs, elapsed, tauMs);
    if (next === old || Atomics.compareExchange(cells, valueIndex, old, next) === old) return next;
  }
}

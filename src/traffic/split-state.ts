import { BOUNDS_MS, BUCKETS, HIST_CELLS, HIST_SUM, bucketOf } from '../observe/metrics-layout.js';

/**
 * The shared region of one route with `traffic`: the weights the workers split by (written by the control plane:
 * config apply, a rollout, the admin API) and what each version served (written by the workers as requests end).
 * One SharedArrayBuffer per route, from the SharedRegistry under SplitState.key(route, version names), so a reload
 * that keeps the versions keeps the weights, the schedule counter and the stats. Every access is an Atomics call.
 *
 *   int32 cells
 *   +------------+-------------+----------+---------+----------+------------------------+--------------------------+
 *   | GENERATION | CONFIG_HASH | VERSIONS | COUNTER | reserved | WEIGHTS [versions]     | STATS [versions x V_CELLS] |
 *   +------------+-------------+----------+---------+----------+------------------------+--------------------------+
 *   0            1             2          3         4..7       HEADER_CELLS             HEADER_CELLS + versions
 *
 *   GENERATION  a seqlock: odd while setWeights writes, bumped to the next even value when it is done; a worker
 *               rebuilds its schedule when it reads a new even value around a consistent read of WEIGHTS
 *   CONFIG_HASH hash of the configured weights last written, so a reload that does not change them leaves the
 *               run-time weights (a rollout step, an admin PUT) alone
 *   COUNTER     the split's request counter, shared by all workers (Atomics.add): request n takes schedule slot
 *               n mod 1000, so any 1,000 consecutive split requests follow the weights exactly, across workers
 *   WEIGHTS     per-mille, 0..1000, adding to 1000
 *
 *   version stats (V_CELLS), cumulative 32-bit counters that wrap (readers take differences, as metrics-hub does):
 *   +----------+--------+----------------------------------------------------+
 *   | REQUESTS | ERRORS | LATENCY: BUCKETS counts (metrics-layout bounds), SUM µs |
 *   +----------+--------+----------------------------------------------------+
 *   ERRORS: responses with a 5xx status and gateway failures (a refused connect, a timeout, a cut response, an
 *           upstream failure a fallback answered for)
 */

const GENERATION = 0;
const CONFIG_HASH = 1;
const VERSIONS = 2;
const COUNTER = 3;
const HEADER_CELLS = 8;

const V_REQUESTS = 0;
const V_ERRORS = 1;
const V_LATENCY = 2;
export const V_CELLS = V_LATENCY + HIST_CELLS;

/** Slots of the split schedule, and the range a sticky key hashes into: weights are per-mille. */
export const SCHEDULE_SLOTS = 1000;
/**
 * The counter is pulled back by this (a multiple of SCHEDULE_SLOTS) before it nears 2^31, so slot n mod 1000 never
 * jumps: a 32-bit wrap would skip 296 slots (2^32 mod 1000).
 */
const COUNTER_FOLD = 1_000_000_000;

export class SplitState {
  readonly cells: Int32Array;
  readonly versions: number;
  readonly #stats: number;

  static bytes(versions: number): number {
    return (HEADER_CELLS + versions + versions * V_CELLS) * Int32Array.BYTES_PER_ELEMENT;
  }

  /** The registry key of a route's region: its name and its ordered version names. */
  static key(routeName: string, versionNames: readonly string[]): string {
    return `traffic:${routeName}:${versionNames.join(',')}`;
  }

  constructor(sab: SharedArrayBuffer, versions: number) {
    if (sab.byteLength < SplitState.bytes(versions)) throw new Error(`split region too small for ${versions} versions`);
    this.cells = new Int32Array(sab);
    this.versions = versions;
    this.#stats = HEADER_CELLS + versions;
    if (Atomics.load(this.cells, VERSIONS) === 0) Atomics.store(this.cells, VERSIONS, versions);
  }

  // ------------------------------------------------------------------ weights (control plane writes, workers read)

  weight(v: number): number {
    return Atomics.load(this.cells, HEADER_CELLS + v);
  }

  /** Control plane only: writes the per-mille weights (0..1000 each, sum 1000) and bumps the generation. */
  setWeights(perMille: readonly number[]): void {
    if (perMille.length !== this.versions) throw new Error(`expected ${this.versions} weights, got ${perMille.length}`);
    let sum = 0;
    for (const w of perMille) {
      if (!Number.isInteger(w) || w < 0 || w > SCHEDULE_SLOTS) throw new Error(`a weight must be an integer 0..${SCHEDULE_SLOTS} (per-mille), got ${w}`);
      sum += w;
    }
    if (sum !== SCHEDULE_SLOTS) throw new Error(`weights must add to ${SCHEDULE_SLOTS} per-mille, got ${sum}`);
    const c = this.cells;
    // seqlock: odd while writing, so a reader that sees the same even value before and after its read has a whole set
    if ((Atomics.load(c, GENERATION) & 1) === 0) Atomics.add(c, GENERATION, 1);
    for (let v = 0; v < perMille.length; v++) Atomics.store(c, HEADER_CELLS + v, perMille[v]);
    Atomics.add(c, GENERATION, 1);
  }

  generation(): number {
    return Atomics.load(this.cells, GENERATION);
  }

  /**
   * Copies a consistent set of weights into `out` and returns its generation, or -1 when a write is under way (the
   * caller keeps what it had and tries again at its next request).
   */
  readWeights(out: Int32Array | number[]): number {
    const c = this.cells;
    const g = Atomics.load(c, GENERATION);
    if ((g & 1) !== 0) return -1;
    for (let v = 0; v < this.versions; v++) out[v] = Atomics.load(c, HEADER_CELLS + v);
    return Atomics.load(c, GENERATION) === g ? g : -1;
  }

  configHash(): number {
    return Atomics.load(this.cells, CONFIG_HASH);
  }

  setConfigHash(h: number): void {
    Atomics.store(this.cells, CONFIG_HASH, h | 0);
  }

  // ------------------------------------------------------------------ schedule counter (workers)

  /** The schedule slot (0..999) of the next split request, exact across workers. */
  nextSlot(): number {
    const n = Atomics.add(this.cells, COUNTER, 1);
    if (n >= COUNTER_FOLD) Atomics.sub(this.cells, COUNTER, COUNTER_FOLD);
    const s = n % SCHEDULE_SLOTS;
    return s < 0 ? s + SCHEDULE_SLOTS : s;
  }

  // ------------------------------------------------------------------ per-version stats (workers write)

  /** A request that went to version `v` ended: `error` for a 5xx or a gateway failure; latency in µs. */
  record(v: number, status: number, latencyUs: number, error = status >= 500): void {
    const c = this.cells;
    const at = this.#stats + v * V_CELLS;
    Atomics.add(c, at + V_REQUESTS, 1);
    if (error) Atomics.add(c, at + V_ERRORS, 1);
    const us = latencyUs >= 0 ? latencyUs : 0;
    Atomics.add(c, at + V_LATENCY + bucketOf(us / 1000), 1);
    Atomics.add(c, at + V_LATENCY + HIST_SUM, us | 0);
  }

  requests(v: number): number {
    return Atomics.load(this.cells, this.#stats + v * V_CELLS + V_REQUESTS) >>> 0;
  }

  errors(v: number): number {
    return Atomics.load(this.cells, this.#stats + v * V_CELLS + V_ERRORS) >>> 0;
  }

  /** Copies the version's latency bucket counts (BUCKETS cells, not cumulative, metrics-layout bounds) into `out`. */
  histogram(v: number, out: Int32Array): void {
    const at = this.#stats + v * V_CELLS + V_LATENCY;
    for (let b = 0; b < BUCKETS; b++) out[b] = Atomics.load(this.cells, at + b);
  }

  /** Sum of the version's latencies in µs (32-bit, wraps). */
  latencySumUs(v: number): number {
    return Atomics.load(this.cells, this.#stats + v * V_CELLS + V_LATENCY + HIST_SUM) >>> 0;
  }
}

/**
 * The q-quantile (0..1) in ms of bucket counts (e.g. the difference of two histogram() copies), interpolated
 * linearly inside the bucket as Prometheus' histogram_quantile does; the +Inf bucket answers its lower bound.
 * 0 when there are no counts.
 */
export function quantileMs(buckets: ArrayLike<number>, q: number): number {
  let total = 0;
  for (let b = 0; b < BUCKETS; b++) total += buckets[b];
  if (total <= 0) return 0;
  const rank = q * total;
  let seen = 0;
  for (let b = 0; b < BUCKETS; b++) {
    const n = buckets[b];
    if (n > 0 && seen + n >= rank) {
      if (b === BUCKETS - 1) return BOUNDS_MS[BOUNDS_MS.length - 1];
      const lower = b === 0 ? 0 : BOUNDS_MS[b - 1];
      return lower + (BOUNDS_MS[b] - lower) * ((rank - seen) / n);
    }
    seen += n;
  }
  return BOUNDS_MS[BOUNDS_MS.length - 1];
}

export function p95Ms(bucketsDelta: ArrayLike<number>): number {
  return quantileMs(bucketsDelta, 0.95);
}

/** The hash stored as CONFIG_HASH: FNV-1a over the configured per-mille weights. */
export function weightsHash(perMille: readonly number[]): number {
  let h = 0x811c9dc5;
  for (const w of perMille) {
    h ^= w & 0xffff;
    h = Math.imul(h, 0x01000193);
    h ^= w >>> 16;
    h = Math.imul(h, 0x01000193);
  }
  // 0 is what a fresh region holds: never use it as a hash
  return h === 0 ? 1 : h | 0;
}

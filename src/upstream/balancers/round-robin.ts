import { XorShift32, randomSeed } from './rng.js';
import { NO_NODE, type Balancer, type NodeView } from './view.js';

/**
 * Smooth weighted round robin (the nginx algorithm), unrolled into a schedule array for a fixed set of integer
 * weights. Weights 5,1,1 give a a b a c a a: spread out, not bursty. Kept from src/upstream/balancer.ts for callers
 * that want the static schedule; RoundRobinBalancer runs the same steps live.
 */
export function smoothSchedule(weights: readonly number[]): number[] {
  const total = weights.reduce((a, b) => a + b, 0);
  const current = weights.map(() => 0);
  const out: number[] = [];
  for (let step = 0; step < total; step++) {
    let best = -1;
    for (let i = 0; i < weights.length; i++) {
      if (weights[i] === 0) continue;
      current[i] += weights[i];
      if (best < 0 || current[i] > current[best]) best = i;
    }
    current[best] -= total;
    out.push(best);
  }
  return out;
}

export interface RoundRobinOptions {
  /**
   * Start phase. Each worker should pass its own (e.g. its index + 1) so the workers do not all begin on node 0.
   * 0 starts at the beginning of the schedule, exactly as smoothSchedule. Default: random.
   */
  seed?: number;
  /**
   * The configured (integer) weights of the node set. With them the balancer unrolls the schedule once, here, and
   * a pick is an array read while the view reports exactly these weights (no slow start running); without them,
   * or while any weight differs, every pick is a live step.
   */
  weights?: readonly number[];
}

/** Longest unrolled schedule (entries, after dividing the weights by their gcd); longer sets run live. */
const MAX_SCHEDULE = 65536;
/** Schedule entries a pick tries (skipping unavailable nodes) before it takes a live step instead. */
const SCHEDULE_TRIES = 8;

/**
 * The smooth weighted round robin, one step per pick, over the weights the view reports at that moment. Running it
 * live instead of from a precomputed schedule is what lets weights change between picks (slow start ramps them,
 * fractional values included) and lets an unavailable or skipped node simply sit out a step: the others share its
 * turns in their weight ratio and the schedule stays smooth. A step is O(nodes): one add per eligible node.
 *
 * Each eligible node's counter grows by its weight per step and the winner's drops by the step's total, so the sum
 * of the counters never changes and each stays within a bounded distance of zero: over any run of picks, node i's
 * share converges to w_i / Σw whatever the starting counters were. That is why a random start phase is safe.
 *
 * The common case, every node at its configured weight, does not need the live step: given `weights`, the same
 * schedule is unrolled once and a pick reads the next entry (about 15 ns instead of 13-30 ns per node; see
 * docs/balancing.md), passing over unavailable or skipped nodes as src/upstream/balancer.ts does. A scheduled
 * node whose weight is not its configured one (slow start began) switches to live steps; a live step that sees
 * every weight back at its configured value switches back.
 */
export class RoundRobinBalancer implements Balancer {
  #current = new Float64Array(0);
  readonly #rng: XorShift32 | null;
  readonly #schedule: Int32Array | null = null;
  readonly #configured: Float64Array = new Float64Array(0);
  #scheduled = false;
  #next = 0;

  constructor(options: RoundRobinOptions = {}) {
    const seed = options.seed ?? randomSeed();
    this.#rng = seed === 0 ? null : new XorShift32(seed);
    const w = options.weights;
    if (w && w.length > 0 && w.every((x) => Number.isInteger(x) && x >= 0)) {
      const g = w.reduce((a, b) => gcd(a, b), 0);
      const total = g === 0 ? 0 : w.reduce((a, b) => a + b / g, 0);
      if (total > 0 && total <= MAX_SCHEDULE) {
        this.#schedule = Int32Array.from(smoothSchedule(w.map((x) => x / g)));
        this.#configured = Float64Array.from(w);
        this.#scheduled = true;
        this.#next = this.#rng === null ? 0 : this.#rng.below(this.#schedule.length);
      }
    }
  }

  pick(view: NodeView, skip: number, _key = 0): number {
    const s = this.#schedule;
    if (this.#scheduled && s !== null && view.count === this.#configured.length) {
      for (let tries = 0; tries < SCHEDULE_TRIES; tries++) {
        const i = s[this.#next];
        this.#next = this.#next + 1 === s.length ? 0 : this.#next + 1;
        if (i === skip || !view.available(i)) continue;
        if (view.weight(i) === this.#configured[i]) return i;
        // A weight moved (slow start): live steps until every weight is back.
        this.#scheduled = false;
        break;
      }
    }
    return this.#step(view, skip);
  }

  #step(view: NodeView, skip: number): number {
    const n = view.count;
    if (n !== this.#current.length) this.#reset(view);
    const cur = this.#current;
    const cfg = this.#configured;
    let configured = this.#schedule !== null && n === cfg.length;
    let total = 0;
    let best = NO_NODE;
    let bestValue = -Infinity;
    for (let i = 0; i < n; i++) {
      if (i === skip || !view.available(i)) continue;
      const w = view.weight(i);
      if (configured && w !== cfg[i]) configured = false;
      if (!(w > 0)) continue;
      const c = cur[i] + w;
      cur[i] = c;
      total += w;
      // Strictly greater: ties go to the lowest index, as in smoothSchedule.
      if (c > bestValue) {
        bestValue = c;
        best = i;
      }
    }
    if (best !== NO_NODE) cur[best] -= total;
    if (configured) this.#scheduled = true;
    return best;
  }

  // A new node set (the cluster swaps the view when nodes join or leave) restarts the live counters at a new phase.
  // Allocates, but only on a node-set change, never on a steady-state pick.
  #reset(view: NodeView): void {
    const n = view.count;
    this.#current = new Float64Array(n);
    if (this.#rng === null) return;
    for (let i = 0; i < n; i++) this.#current[i] = this.#rng.float() * view.weight(i);
  }
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

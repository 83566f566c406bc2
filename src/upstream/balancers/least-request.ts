import { XorShift32, randomSeed } from './rng.js';
import { NO_NODE, type Balancer, type NodeView } from './view.js';

/** Picks for which the last full pass's "all weights equal" stands (a changed candidate weight ends it sooner). */
const RECHECK = 64;
const RESCAN = -2;
const POW_TABLE = 256;

export interface LeastRequestOptions {
  /** candidates drawn per pick when weights are equal (Envoy choice_count); default 2 */
  choices?: number;
  /** how strongly in-flight requests lower a node's weight when weights differ (Envoy active_request_bias); default 1 */
  activeRequestBias?: number;
  /** PRNG seed; give each worker its own. Default: random */
  seed?: number;
}

/**
 * Envoy's weighted least request, over the in-flight counts of all workers:
 *
 * - all eligible weights equal: power of two choices (Mitzenmacher). Draw `choices` distinct eligible nodes at
 *   random, take the one with the fewest requests in flight. O(1) in the draws; a node with the most in flight is
 *   never chosen while any other node has fewer, and there is no herd onto the single least-loaded node when many
 *   workers pick at once (what a full scan for the minimum does).
 * - weights differ (configured weights, or a node in slow start): each eligible node is chosen with probability
 *   proportional to  weight / (inFlight + 1)^activeRequestBias. Envoy reaches the same proportions with an EDF
 *   schedule it rebuilds as hosts change; a balancer here keeps no per-node state across workers, so it draws
 *   from the distribution directly. With no load this honours the weights exactly; bias 0 ignores load (weighted
 *   random), larger biases move traffic off loaded nodes harder.
 *
 * Whether the weights are equal is a property of the whole node set that changes with slow start, so it cannot be
 * decided once when the config loads; a full pass per pick to decide it would cost O(nodes) (~13 ns a node over
 * shared memory) and lose P2C's O(1). So the answer of the last full pass is kept for up to RECHECK picks, and
 * a drawn candidate whose weight differs from it ends it at once. The equal case then draws its candidates at
 * random (rejection sampling, falling back to the pass when most nodes are out); the unequal case needs the pass
 * anyway, for the sum of effective weights. Nothing allocates once the scratch arrays have the node count.
 */
export class LeastRequestBalancer implements Balancer {
  readonly #rng: XorShift32;
  readonly #choices: number;
  readonly #bias: number;
  #cand = new Int32Array(0);
  #w = new Float64Array(0);
  readonly #drawn: Int32Array;
  /** (a + 1)^bias for a = 0 … POW_TABLE - 1: Math.pow costs ~40 ns, more than the rest of a node's step */
  readonly #pow: Float64Array;
  /** result of the last full pass: all eligible weights equal, and to which value */
  #equal = false;
  #equalWeight = 0;
  #untilCheck = 0;

  constructor(options: LeastRequestOptions = {}) {
    this.#choices = Math.max(1, options.choices ?? 2) | 0;
    this.#bias = options.activeRequestBias ?? 1;
    if (!(this.#bias >= 0)) throw new RangeError(`activeRequestBias must be >= 0, got ${this.#bias}`);
    this.#rng = new XorShift32(options.seed ?? randomSeed());
    this.#drawn = new Int32Array(this.#choices);
    this.#pow = new Float64Array(POW_TABLE);
    for (let a = 0; a < POW_TABLE; a++) this.#pow[a] = Math.pow(a + 1, this.#bias);
  }

  pick(view: NodeView, skip: number, _key = 0): number {
    const n = view.count;
    if (n === 0) return NO_NODE;
    if (this.#equal && --this.#untilCheck > 0) {
      const i = this.#drawFewest(view, skip);
      if (i !== RESCAN) return i;
    }
    if (this.#cand.length < n) {
      this.#cand = new Int32Array(n);
      this.#w = new Float64Array(n);
    }
    const cand = this.#cand;
    const ws = this.#w;
    let m = 0;
    let equal = true;
    for (let i = 0; i < n; i++) {
      if (i === skip || !view.available(i)) continue;
      const w = view.weight(i);
      if (!(w > 0)) continue;
      if (m > 0 && w !== ws[0]) equal = false;
      cand[m] = i;
      ws[m] = w;
      m++;
    }
    // The skipped node is not in this pass; a retry's node almost always has the others' weight, and a draw
    // that meets a different weight rechecks at once.
    this.#equal = equal && m > 1;
    this.#equalWeight = ws[0];
    this.#untilCheck = RECHECK;
    if (m === 0) return NO_NODE;
    if (m === 1) return cand[0];
    return equal ? this.#fewest(view, cand, m) : this.#weighted(view, cand, ws, m);
  }

  // Equal weights, O(choices): distinct random eligible nodes by rejection, the one with the fewest in flight.
  // RESCAN when the draws keep missing (most nodes out) or a candidate's weight changed.
  #drawFewest(view: NodeView, skip: number): number {
    const n = view.count;
    const rng = this.#rng;
    const drawn = this.#drawn;
    const k = this.#choices;
    let got = 0;
    let best = NO_NODE;
    let bestLoad = Infinity;
    for (let d = 0; d < 4 * k && got < k; d++) {
      const i = rng.below(n);
      if (i === skip || !view.available(i)) continue;
      let dup = false;
      for (let j = 0; j < got; j++) if (drawn[j] === i) dup = true;
      if (dup) continue;
      const w = view.weight(i);
      if (!(w > 0)) continue;
      if (w !== this.#equalWeight) {
        this.#untilCheck = 0;
        return RESCAN;
      }
      drawn[got++] = i;
      const load = view.inFlight(i);
      if (load < bestLoad) {
        bestLoad = load;
        best = i;
      }
    }
    return got < k ? RESCAN : best;
  }

  // Partial Fisher-Yates: the first k slots of cand become k distinct random candidates. Ties keep the first drawn,
  // which is itself random.
  #fewest(view: NodeView, cand: Int32Array, m: number): number {
    const rng = this.#rng;
    const k = this.#choices < m ? this.#choices : m;
    let best = NO_NODE;
    let bestLoad = Infinity;
    for (let j = 0; j < k; j++) {
      const r = j + rng.below(m - j);
      const node = cand[r];
      cand[r] = cand[j];
      cand[j] = node;
      const load = view.inFlight(node);
      if (load < bestLoad) {
        bestLoad = load;
        best = node;
      }
    }
    return best;
  }

  #weighted(view: NodeView, cand: Int32Array, ws: Float64Array, m: number): number {
    const bias = this.#bias;
    const pow = this.#pow;
    let sum = 0;
    for (let j = 0; j < m; j++) {
      const a = view.inFlight(cand[j]);
      // Bias 1 is a division; other biases read the table, and only past it pay for Math.pow.
      const ew = bias === 1 ? ws[j] / (a + 1) : ws[j] / (a < POW_TABLE ? pow[a] : Math.pow(a + 1, bias));
      ws[j] = ew;
      sum += ew;
    }
    let r = this.#rng.float() * sum;
    for (let j = 0; j < m - 1; j++) {
      r -= ws[j];
      if (r < 0) return cand[j];
    }
    return cand[m - 1];
  }
}

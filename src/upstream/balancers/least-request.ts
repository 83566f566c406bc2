import { XorShift32, randomSeed } from './rng.js';
import { NO_NODE, type Balancer, type NodeView } from './view.js';

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
 * Both cases make one pass over the nodes to find the eligible ones and whether their weights are equal (weights
 * change with slow start, so this cannot be decided once when the config loads); the pass reads three view cells
 * per node and allocates nothing once the scratch arrays have the node count.
 */
export class LeastRequestBalancer implements Balancer {
  readonly #rng: XorShift32;
  readonly #choices: number;
  readonly #bias: number;
  #cand = new Int32Array(0);
  #w = new Float64Array(0);

  constructor(options: LeastRequestOptions = {}) {
    this.#choices = Math.max(1, options.choices ?? 2) | 0;
    this.#bias = options.activeRequestBias ?? 1;
    if (!(this.#bias >= 0)) throw new RangeError(`activeRequestBias must be >= 0, got ${this.#bias}`);
    this.#rng = new XorShift32(options.seed ?? randomSeed());
  }

  pick(view: NodeView, skip: number, _key = 0): number {
    const n = view.count;
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
    if (m === 0) return NO_NODE;
    if (m === 1) return cand[0];
    return equal ? this.#fewest(view, cand, m) : this.#weighted(view, cand, ws, m);
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
    let sum = 0;
    for (let j = 0; j < m; j++) {
      const a = view.inFlight(cand[j]) + 1;
      // The two common biases without Math.pow: 1 is a division, 0 ignores load.
      const ew = bias === 1 ? ws[j] / a : bias === 0 ? ws[j] : ws[j] / Math.pow(a, bias);
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

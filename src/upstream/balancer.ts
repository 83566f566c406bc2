import type { PlanUpstream } from '../config/plan.js';

/**
 * Smooth weighted round robin (the nginx algorithm), unrolled when the config loads into a schedule array, so a pick
 * is one array read. Weights 5,1,1 give a a b a c a a: spread out, not bursty.
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

export interface PoolLoad {
  readonly inFlight: number;
}

/** Health and ejection as the cluster sees them (cluster.ts); the drain switch is checked here as before. */
export interface NodeAvailability {
  available(i: number): boolean;
}

const ALL: NodeAvailability = { available: () => true };

export class Balancer {
  readonly #schedule: Int32Array;
  readonly #weights: readonly number[];
  readonly #leastConnections: boolean;
  /** admin switches (src/shared/admin-flags.ts): node i is drained when flags[firstCell + i] is non-zero */
  readonly #flags: Int32Array;
  readonly #firstCell: number;
  #next = 0;

  constructor(upstream: Pick<PlanUpstream, 'nodes' | 'balancer'>, flags: Int32Array = new Int32Array(upstream.nodes.length), firstCell = 0) {
    this.#flags = flags;
    this.#firstCell = firstCell;
    this.#weights = upstream.nodes.map((n) => n.weight);
    this.#schedule = Int32Array.from(smoothSchedule(this.#weights));
    this.#leastConnections = upstream.balancer === 'least-connections';
    // Workers start at different points so that they do not all hit node 0 first.
    this.#next = (Math.random() * this.#schedule.length) | 0;
  }

  /** Index of the node to use; `skip` is a node that just failed (-1 for none); drained nodes are never picked. */
  pick(pools: readonly PoolLoad[], skip: number, nodes: NodeAvailability = ALL): number {
    const flags = this.#flags;
    const first = this.#firstCell;
    if (this.#leastConnections) {
      let best = -1;
      let bestScore = Infinity;
      for (let i = 0; i < pools.length; i++) {
        const w = this.#weights[i];
        if (w === 0 || i === skip || Atomics.load(flags, first + i) !== 0 || !nodes.available(i)) continue;
        const score = pools[i].inFlight / w;
        if (score < bestScore) {
          bestScore = score;
          best = i;
        }
      }
      return best;
    }
    const s = this.#schedule;
    for (let tries = 0; tries < s.length; tries++) {
      const i = s[this.#next];
      this.#next = this.#next + 1 === s.length ? 0 : this.#next + 1;
      if (i !== skip && Atomics.load(flags, first + i) === 0 && nodes.available(i)) return i;
    }
    return -1;
  }
}

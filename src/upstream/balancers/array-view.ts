import type { NodeView } from './view.js';

/**
 * NodeView over plain arrays, for tests, benches and the reference semantics of the interface. Fields are public
 * typed arrays so a test can change load and health between picks.
 */
export class ArrayNodeView implements NodeView {
  readonly count: number;
  readonly up: Uint8Array;
  readonly weights: Float64Array;
  readonly active: Int32Array;
  readonly latency: Int32Array;

  constructor(count: number, init: { weights?: readonly number[]; latencyUs?: readonly number[] } = {}) {
    this.count = count;
    this.up = new Uint8Array(count).fill(1);
    this.weights = new Float64Array(count).fill(1);
    this.active = new Int32Array(count);
    this.latency = new Int32Array(count);
    if (init.weights) this.weights.set(init.weights);
    if (init.latencyUs) this.latency.set(init.latencyUs);
  }

  available(i: number): boolean {
    return this.up[i] === 1;
  }

  weight(i: number): number {
    return this.weights[i];
  }

  inFlight(i: number): number {
    return this.active[i];
  }

  latencyUs(i: number): number {
    return this.latency[i];
  }
}

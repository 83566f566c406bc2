import { REQUESTS, ROW } from '../shared/counters.js';

/**
 * SO_REUSEPORT hashes each connection to a worker once, so a few long-lived keep-alive connections can leave one
 * worker with 60 % of the traffic (measured: scripts/measure-worker-balance.mjs). Every 250 ms each worker
 * compares its request rate with the mean of all workers (from the shared request counters); while it serves
 * more than its share it ends every Nth response with `Connection: close`. The client reconnects, the kernel hashes
 * the new connection afresh, and the load evens out, at the cost of an occasional reconnect on the busy worker only.
 */
const WINDOW_MS = 250;
// Below 4,000 req/s in all (1,000 per window) an uneven split costs nothing and the reconnects would cost latency.
const MIN_REQUESTS = 1000;

export class Rebalancer {
  readonly #cells: Int32Array;
  readonly #me: number;
  readonly #workers: number;
  readonly #last: Uint32Array;
  #lastAt = 0;
  #every = 0;
  #count = 0;

  constructor(counters: SharedArrayBuffer, me: number, workers: number) {
    this.#cells = new Int32Array(counters);
    this.#me = me;
    this.#workers = workers;
    this.#last = new Uint32Array(workers);
  }

  /** Called from the worker's coarse clock; recomputes the shedding rate once per window. */
  tick(now: number): void {
    if (this.#workers < 2 || now - this.#lastAt < WINDOW_MS) return;
    this.#lastAt = now;
    let total = 0;
    let mine = 0;
    for (let w = 0; w < this.#workers; w++) {
      const v = Atomics.load(this.#cells, w * ROW + REQUESTS) >>> 0;
      const d = (v - this.#last[w]) >>> 0;
      this.#last[w] = v;
      total += d;
      if (w === this.#me) mine = d;
    }
    if (total < MIN_REQUESTS) {
      this.#every = 0;
      return;
    }
    const ratio = mine / (total / this.#workers);
    this.#every = ratio > 1.3 ? 4 : ratio > 1.15 ? 8 : ratio > 1.05 ? 32 : 0;
  }

  /** True when this response should close its connection to move the client to another worker. */
  shouldClose(): boolean {
    return this.#every !== 0 && ++this.#count % this.#every === 0;
  }
}

import type { PlanCircuit } from '../config/plan.js';
import {
  BUCKET_CELLS,
  CIRCUIT,
  CIRCUIT_BUCKETS,
  CIRCUIT_CLOSED,
  CIRCUIT_HALF_OPEN,
  CIRCUIT_OPEN,
  CIRCUIT_OPENED_AT,
  CIRCUIT_OPENINGS,
  CIRCUIT_PROBES,
  CIRCUIT_PROBES_OK,
  WINDOW_BASE,
  after,
  clock32,
} from './cluster-state.js';

/** admit(): the request may go now */
export const ADMIT_OK = 0;
/** admit(): it may go now as one of the half-open circuit's probes (its outcome decides the circuit) */
export const ADMIT_PROBE = 1;
/** admit(): the circuit is open (or half-open with every probe taken) */
export const ADMIT_CIRCUIT_OPEN = 2;

/**
 * A circuit breaker over shared cells, so its state holds on every worker: an upstream's lives in the header of the
 * upstream's region (cluster-state.ts), a route's in a region of its own with the same layout. Closed, it counts
 * calls, failures and slow calls in a rolling window of CIRCUIT_BUCKETS buckets and opens when a share passes its
 * threshold over the minimum volume; open, it refuses until openMs passed; half-open, it admits exactly
 * halfOpenRequests probes across all workers, closing when all pass and opening again at the first that fails.
 */
export class CircuitBreaker {
  readonly cells: Int32Array;
  readonly config: PlanCircuit;
  readonly #changed: () => void;

  constructor(cells: Int32Array, config: PlanCircuit, changed: () => void = () => {}) {
    this.cells = cells;
    this.config = config;
    this.#changed = changed;
  }

  get state(): number {
    return Atomics.load(this.cells, CIRCUIT);
  }

  /** ms until an open circuit lets probes through (for Retry-After); 0 when it is not open. */
  retryAfterMs(): number {
    if (Atomics.load(this.cells, CIRCUIT) !== CIRCUIT_OPEN) return 0;
    const left = (Atomics.load(this.cells, CIRCUIT_OPENED_AT) + this.config.openMs - clock32()) | 0;
    return left > 0 ? left : 0;
  }

  admit(): number {
    const c = this.config;
    const cells = this.cells;
    const state = Atomics.load(cells, CIRCUIT);
    if (state === CIRCUIT_CLOSED) return ADMIT_OK;
    const now = clock32();
    const openedAt = Atomics.load(cells, CIRCUIT_OPENED_AT);
    if (state === CIRCUIT_OPEN) {
      if (!after(now, clock32(openedAt + c.openMs))) return ADMIT_CIRCUIT_OPEN;
      if (Atomics.compareExchange(cells, CIRCUIT, CIRCUIT_OPEN, CIRCUIT_HALF_OPEN) === CIRCUIT_OPEN) {
        Atomics.store(cells, CIRCUIT_PROBES, 0);
        Atomics.store(cells, CIRCUIT_PROBES_OK, 0);
        this.#changed();
      }
    }
    // Half-open: exactly halfOpenRequests probes across all workers. Probes whose clients left decide nothing; a
    // half-open state that outlives twice the open time lets a new set of probes through.
    if (Atomics.add(cells, CIRCUIT_PROBES, 1) < c.halfOpenRequests) return ADMIT_PROBE;
    if (after(now, clock32(openedAt + 2 * c.openMs + 1000))) {
      Atomics.store(cells, CIRCUIT_OPENED_AT, clock32(Date.now() - c.openMs));
      Atomics.store(cells, CIRCUIT_PROBES, 0);
    }
    return ADMIT_CIRCUIT_OPEN;
  }

  /** The circuit's view of one call: counted in the rolling window, or decides a probe. */
  record(failed: boolean, latencyUs: number, probe: boolean): void {
    const c = this.config;
    const cells = this.cells;
    const state = Atomics.load(cells, CIRCUIT);
    const slow = c.slowCallMs > 0 && latencyUs > c.slowCallMs * 1000;
    if (state === CIRCUIT_HALF_OPEN) {
      if (!probe) return;
      if (failed || slow) this.#open(CIRCUIT_HALF_OPEN);
      else if (Atomics.add(cells, CIRCUIT_PROBES_OK, 1) + 1 >= c.halfOpenRequests) {
        if (Atomics.compareExchange(cells, CIRCUIT, CIRCUIT_HALF_OPEN, CIRCUIT_CLOSED) === CIRCUIT_HALF_OPEN) {
          for (let b = 0; b < CIRCUIT_BUCKETS; b++) Atomics.store(cells, WINDOW_BASE + b * BUCKET_CELLS, 0);
          this.#changed();
        }
      }
      return;
    }
    if (state !== CIRCUIT_CLOSED) return;
    const epoch = Math.floor(Date.now() / c.bucketMs) | 0;
    const base = WINDOW_BASE + (epoch % CIRCUIT_BUCKETS) * BUCKET_CELLS;
    const seen = Atomics.load(cells, base);
    if (seen !== epoch && Atomics.compareExchange(cells, base, seen, epoch) === seen) {
      Atomics.store(cells, base + 1, 0);
      Atomics.store(cells, base + 2, 0);
      Atomics.store(cells, base + 3, 0);
    }
    Atomics.add(cells, base + 1, 1);
    if (failed) Atomics.add(cells, base + 2, 1);
    if (slow) Atomics.add(cells, base + 3, 1);
    if (!failed && !slow) return;
    // Only a failure can open the circuit, so only a failure sums the window.
    let calls = 0;
    let failures = 0;
    let slows = 0;
    for (let b = 0; b < CIRCUIT_BUCKETS; b++) {
      const at = WINDOW_BASE + b * BUCKET_CELLS;
      if (epoch - Atomics.load(cells, at) >= CIRCUIT_BUCKETS) continue;
      calls += Atomics.load(cells, at + 1);
      failures += Atomics.load(cells, at + 2);
      slows += Atomics.load(cells, at + 3);
    }
    if (calls < c.minRequests) return;
    if (failures * 100 >= c.errorPercent * calls || (c.slowCallMs > 0 && slows * 100 >= c.slowPercent * calls)) this.#open(CIRCUIT_CLOSED);
  }

  #open(from: number): void {
    const cells = this.cells;
    if (Atomics.compareExchange(cells, CIRCUIT, from, CIRCUIT_OPEN) !== from) return;
    Atomics.store(cells, CIRCUIT_OPENED_AT, clock32());
    Atomics.add(cells, CIRCUIT_OPENINGS, 1);
    this.#changed();
  }
}

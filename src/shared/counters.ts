import { addOwn } from './own-cells.js';

/**
 * Per-worker request counters in one SharedArrayBuffer, written by the owning worker (addOwn: it is a row's only
 * writer) and read by the control plane with Atomics (admin /status, metrics). A row is padded to a 64-byte cache
 * line, so two workers counting never write the same line.
 *
 *   row w (ROW x int32, SLOTS of them used):
 *   +----------+-----------+------+------+------+------+------+----------------+----------------+
 *   | REQUESTS | IN_FLIGHT | 1xx  | 2xx  | 3xx  | 4xx  | 5xx  | GATEWAY_ERRORS | UPSTREAM_ERRORS|
 *   +----------+-----------+------+------+------+------+------+----------------+----------------+
 *
 * Counts are 32-bit and wrap; readers take differences (see CounterReader), which stay right across a wrap as long
 * as they read more often than 2^32 events apart.
 */
export const REQUESTS = 0;
export const IN_FLIGHT = 1;
export const STATUS_BASE = 2; // + (status / 100 | 0) - 1
export const GATEWAY_ERRORS = 7;
export const UPSTREAM_ERRORS = 8;
export const SLOTS = 9;
/** cells per row: SLOTS rounded up to a cache line of int32 */
export const ROW = 16;
export const MAX_WORKERS = 256;

export function createCounters(): SharedArrayBuffer {
  return new SharedArrayBuffer(MAX_WORKERS * ROW * Int32Array.BYTES_PER_ELEMENT);
}

export class WorkerCounters {
  readonly #cells: Int32Array;
  readonly #base: number;
  constructor(sab: SharedArrayBuffer, worker: number) {
    this.#cells = new Int32Array(sab);
    this.#base = worker * ROW;
  }
  add(slot: number, n = 1): void {
    addOwn(this.#cells, this.#base + slot, n);
  }
  status(status: number): void {
    const cls = (status / 100) | 0;
    if (cls >= 1 && cls <= 5) addOwn(this.#cells, this.#base + STATUS_BASE + cls - 1, 1);
  }
}

/** Control-plane side: 64-bit totals from wrapping 32-bit cells. */
export class CounterReader {
  readonly #cells: Int32Array;
  readonly #last: Uint32Array;
  readonly #totals: Float64Array;
  constructor(sab: SharedArrayBuffer) {
    this.#cells = new Int32Array(sab);
    this.#last = new Uint32Array(this.#cells.length);
    this.#totals = new Float64Array(this.#cells.length);
  }
  /** Folds the cells into totals; call at least every few seconds. */
  poll(): void {
    for (let i = 0; i < this.#cells.length; i++) {
      const now = Atomics.load(this.#cells, i) >>> 0;
      this.#totals[i] += (now - this.#last[i]) >>> 0;
      this.#last[i] = now;
    }
  }
  total(worker: number, slot: number): number {
    if (slot === IN_FLIGHT) return Atomics.load(this.#cells, worker * ROW + slot);
    return this.#totals[worker * ROW + slot];
  }
}

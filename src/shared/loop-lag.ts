/**
 * How late a thread's periodic timer fired, kept between two reads: the event-loop lag as the thread's own timer
 * sees it, with no timer added for it. The workers' 25 ms clock tick (src/shared/clock.ts) and the control plane's
 * 100 ms sampler (src/observe/process-metrics.ts) feed one each.
 *
 * Node's perf_hooks.monitorEventLoopDelay was the other way: it needs a timer of its own (100 wake-ups a second at
 * prom-client's 10 ms), and at a 100 ms resolution it did not see a 300 ms block of the loop (Node 20.20).
 */

/** Lag over the samples since the last read, in µs (all 0 with count 0 when the timer did not fire). */
export interface LoopLag {
  count: number;
  min: number;
  max: number;
  mean: number;
  stddev: number;
  p50: number;
  p90: number;
  p99: number;
}

const NONE: LoopLag = Object.freeze({ count: 0, min: 0, max: 0, mean: 0, stddev: 0, p50: 0, p90: 0, p99: 0 });

export class LagSamples {
  readonly #samples: Float64Array;
  #count = 0;
  #last = 0;
  readonly #periodMs: number;

  /** `capacity` samples are kept between reads (a slow reader keeps the latest ones). */
  constructor(periodMs: number, capacity: number) {
    this.#periodMs = periodMs;
    this.#samples = new Float64Array(capacity);
  }

  /** Called when the timer is armed, so that its first firing has something to be late against. */
  start(nowMs: number): void {
    this.#last = nowMs;
  }

  /** Called from the timer, with performance.now(): records how late this firing is against the previous one (ms, returned). */
  fired(nowMs: number): number {
    const late = nowMs - this.#last - this.#periodMs;
    this.#last = nowMs;
    this.#samples[this.#count++ % this.#samples.length] = late > 0 ? late * 1000 : 0;
    return late > 0 ? late : 0;
  }

  /** The lag since the previous call, and a fresh start for the next one. */
  take(): LoopLag {
    const n = Math.min(this.#count, this.#samples.length);
    this.#count = 0;
    if (n === 0) return NONE;
    const sorted = this.#samples.slice(0, n).sort();
    let sum = 0;
    for (let i = 0; i < n; i++) sum += sorted[i];
    const mean = sum / n;
    let sq = 0;
    for (let i = 0; i < n; i++) sq += (sorted[i] - mean) ** 2;
    const at = (q: number) => sorted[Math.floor((n - 1) * q)];
    return { count: n, min: sorted[0], max: sorted[n - 1], mean, stddev: Math.sqrt(sq / n), p50: at(0.5), p90: at(0.9), p99: at(0.99) };
  }
}

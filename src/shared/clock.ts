import { performance } from 'node:perf_hooks';
import { LagSamples, type LoopLag } from './loop-lag.js';
/**
 * A coarse per-thread clock for deadlines. Reading Date.now() per request would be cheap, but the point is that no
 * request arms a timer: one interval per thread advances `now` and runs the registered sweeps.
 */
type Sweep = (now: number) => void;

const TICK_MS = 25;
/** lag samples kept between two reads of takeLag (40 a second; a slow second keeps its latest ones) */
const LAG_SAMPLES = 256;

class CoarseClock {
  now = Date.now();
  /**
   * How much later than due this tick fired (ms): time the thread was held by something else than its loop (a long
   * GC pause, a CPU-heavy request, a stopped or starved process). Sweeps push the deadlines they watch back by it, so
   * that a timeout measures time the thread could have seen the answer in, not time it was held.
   */
  heldMs = 0;
  readonly #sweeps = new Set<Sweep>();
  #timer: NodeJS.Timeout | null = null;
  // Event-loop lag, measured by the tick itself (how late it fires): the thread needs no timer of its own for it,
  // and an idle worker wakes 40 times a second, not 140 (perf_hooks' delay monitor would add 100 timer fires).
  readonly #lag = new LagSamples(TICK_MS, LAG_SAMPLES);

  /** Runs `sweep` every TICK_MS (25 ms: the granularity of every deadline in the thread). */
  register(sweep: Sweep): () => void {
    this.#sweeps.add(sweep);
    if (this.#timer === null) {
      this.#lag.start(performance.now());
      this.#timer = setInterval(() => {
        this.heldMs = this.#lag.fired(performance.now());
        this.now = Date.now();
        for (const s of this.#sweeps) s(this.now);
      }, TICK_MS);
      this.#timer.unref();
    }
    return () => {
      this.#sweeps.delete(sweep);
      if (this.#sweeps.size === 0 && this.#timer !== null) {
        clearInterval(this.#timer);
        this.#timer = null;
      }
    };
  }

  /** The loop lag seen by the ticks since the last call (µs; count 0 when the clock did not tick). */
  takeLag(): LoopLag {
    return this.#lag.take();
  }
}

export const clock = new CoarseClock();

/**
 * Wall-clock milliseconds for calendar periods: the quotas per UTC day or month (src/policies/rate-limit) and nothing
 * else. Date.now() unless NANOGATE_TEST_WALL_CLOCK holds an ISO 8601 instant (e.g. 2026-01-05T12:00:00Z): then this
 * clock stands still at that instant, so a test of a quota and of where its period ends gives the same answer
 * whatever the date and hour it runs at (run near midnight UTC, a quota would otherwise reset half-way through it).
 * A test seam: the variable is read once per thread, at the first call; an unparsable value is ignored.
 */
let pinnedWallClock: number | null | undefined;

export function calendarNow(): number {
  if (pinnedWallClock === undefined) {
    const v = process.env.NANOGATE_TEST_WALL_CLOCK;
    const ms = v ? Date.parse(v) : NaN;
    pinnedWallClock = Number.isFinite(ms) ? ms : null;
  }
  return pinnedWallClock ?? Date.now();
}

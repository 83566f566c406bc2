/**
 * A coarse per-thread clock for deadlines. Reading Date.now() per request would be cheap, but the point is that no
 * request arms a timer: one interval per thread advances `now` and runs the registered sweeps.
 */
type Sweep = (now: number) => void;

const TICK_MS = 25;

class CoarseClock {
  now = Date.now();
  readonly #sweeps = new Set<Sweep>();
  #timer: NodeJS.Timeout | null = null;

  /** Runs `sweep` every TICK_MS (25 ms: the granularity of every deadline in the thread). */
  register(sweep: Sweep): () => void {
    this.#sweeps.add(sweep);
    if (this.#timer === null) {
      this.#timer = setInterval(() => {
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

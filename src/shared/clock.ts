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

/**
 * Request coalescing (Varnish's waiting list): while one request for a key is on its way to the upstream (the
 * leader), other misses for the same key wait for its answer instead of sending their own. When the leader's
 * response is stored, every waiter is woken at once and answered from the cache; when it turns out uncacheable (or
 * fails, or the client went away), every waiter is released at once to the upstream, all in parallel: a waiting
 * list never turns into one-at-a-time serialisation. The key is then remembered as "pass" for a while
 * (hit-for-pass), so the next concurrent misses go straight upstream without waiting on each other.
 *
 * A waiter waits at most `timeoutMs` (one timer per flight, armed when the first waiter joins); then it goes
 * upstream on its own.
 */
export interface Waiter {
  /** stored: the leader's response is in the cache (look again); false: go to the upstream */
  wake(stored: boolean): void;
}

class Flight {
  readonly waiters: Waiter[] = [];
  timer: NodeJS.Timeout | null = null;
}

/** Keys remembered as uncacheable at most, so the memory stays bounded whatever the traffic. */
const MAX_PASS_KEYS = 10_000;

export class Flights {
  readonly #flights = new Map<string, Flight>();
  readonly #pass = new Map<string, number>();
  readonly #timeoutMs: number;
  readonly #passMs: number;

  constructor(timeoutMs: number, passMs: number) {
    this.#timeoutMs = timeoutMs;
    this.#passMs = passMs;
  }

  get inFlight(): number {
    return this.#flights.size;
  }

  /**
   * A miss for `key`: true when the caller leads (it goes upstream and must call land() once), false when a flight
   * is already under way (then call join()). A key recently found uncacheable never coalesces: null.
   */
  lead(key: string, now: number): boolean | null {
    if (this.#pass.size > 0) {
      const until = this.#pass.get(key);
      if (until !== undefined) {
        if (now < until) return null;
        this.#pass.delete(key);
      }
    }
    if (this.#flights.has(key)) return false;
    this.#flights.set(key, new Flight());
    return true;
  }

  join(key: string, waiter: Waiter): boolean {
    const f = this.#flights.get(key);
    if (f === undefined) return false;
    f.waiters.push(waiter);
    if (f.timer === null) f.timer = setTimeout(() => this.#expire(f), this.#timeoutMs);
    return true;
  }

  /** The leader is done: stored or not. Every waiter wakes now. */
  land(key: string, stored: boolean, now: number): void {
    const f = this.#flights.get(key);
    if (f === undefined) return;
    this.#flights.delete(key);
    if (f.timer !== null) clearTimeout(f.timer);
    if (!stored && this.#passMs > 0) {
      if (this.#pass.size >= MAX_PASS_KEYS) this.#pass.clear();
      this.#pass.set(key, now + this.#passMs);
    }
    // Woken on the next turn, not inside the leader's response (its uWS cork): each waiter writes its own response.
    if (f.waiters.length > 0) setImmediate(wakeAll, f.waiters, stored);
  }

  /** A purge makes a remembered "pass" stale too. */
  forget(key: string): void {
    this.#pass.delete(key);
  }

  #expire(f: Flight): void {
    f.timer = null;
    // The leader still runs: the waiters that joined so far go upstream on their own; later ones wait again.
    wakeAll(f.waiters.splice(0), false);
  }
}

function wakeAll(waiters: readonly Waiter[], stored: boolean): void {
  for (const w of waiters) w.wake(stored);
}

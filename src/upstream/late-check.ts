/**
 * The second look a pool's sweep takes at deadlines it saw pass: in setImmediate, once the current turn of the event
 * loop has read its sockets. The clock tick that runs the sweep comes before the poll phase, so after the thread was
 * held, answers that arrived meanwhile are still unread when the sweep looks (docs/resilience.md, "Timeouts blame
 * the upstream"). One pending look per pool at a time.
 */
export class LateCheck {
  readonly #expire: (now: number) => void;
  #armed = false;
  readonly #run = (now: number): void => {
    this.#armed = false;
    this.#expire(now);
  };

  /** `expire(now)` times out what is still past its deadline at `now` (the sweep's clock reading) */
  constructor(expire: (now: number) => void) {
    this.#expire = expire;
  }

  arm(now: number): void {
    if (this.#armed) return;
    this.#armed = true;
    setImmediate(this.#run, now);
  }
}

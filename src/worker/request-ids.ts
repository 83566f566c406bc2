import { flat } from '../shared/flat-string.js';

/** base-36 text of 0 … 36²−1: as is (ids below 36²), and padded to two digits (the last two digits of larger ones) */
const UNPADDED: readonly string[] = Array.from({ length: 36 * 36 }, (_, i) => i.toString(36));
const TAIL: readonly string[] = UNPADDED.map((t) => t.padStart(2, '0'));

/**
 * The ids a handler gives requests that bring none: a prefix (random, and the worker's index) and a sequence number
 * in base 36, `prefix + seq.toString(36)`. The last two digits come from a table and the text before them is kept
 * while it lasts (1,296 ids), so an id is one string add, not a Number.prototype.toString call (≈220 instructions).
 */
export class RequestIds {
  readonly #prefix: string;
  #seq = 0;
  #high = 0;
  #highPrefix: string;

  constructor(prefix: string) {
    this.#prefix = flat(prefix);
    this.#highPrefix = this.#prefix;
  }

  next(): string {
    const n = ++this.#seq;
    if (n < TAIL.length) return this.#prefix + UNPADDED[n];
    const h = Math.floor(n / TAIL.length);
    if (h !== this.#high) {
      this.#high = h;
      this.#highPrefix = flat(this.#prefix + h.toString(36));
    }
    return this.#highPrefix + TAIL[n - h * TAIL.length];
  }
}

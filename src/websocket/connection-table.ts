/**
 * Open WebSocket connections per consumer on one route, across the node's workers: a fixed open-addressing table in
 * a SharedArrayBuffer (one per route, from the control plane's SharedRegistry, so a reload keeps the counts).
 *
 *   slot i (BigInt64, Atomics only):
 *   +---------------------------+---------------------------+
 *   | key hash (31 bits, != 0)  | open connections (32 bits)|
 *   +---------------------------+---------------------------+
 *   EMPTY = 0n: never used. A slot keeps its hash when its count falls to 0, and may then be taken over by another
 *   key once the table has no empty slot left on the probe path.
 *
 * One compare-and-swap updates hash and count together, so a slot is never seen half-written. Two workers that see
 * a consumer's first connection at the same moment may each claim a slot for it; its limit is then counted in two
 * halves until those connections close (at worst twice the limit, for a consumer that opens connections at once on
 * several workers). Two keys with the same 31-bit hash share a count. Both are stated in docs/websocket.md.
 */
export const TABLE_SLOTS = 4096;
export const TABLE_BYTES = TABLE_SLOTS * BigInt64Array.BYTES_PER_ELEMENT;
const EMPTY = 0n;
const COUNT_MASK = 0xffffffffn;

/** FNV-1a in 31 bits (so that hash << 32 stays a positive int64), never 0 (0 marks an empty slot). */
function hash31(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h & 0x7fffffff || 1;
}

export class ConnectionTable {
  readonly #cells: BigInt64Array;

  constructor(sab: SharedArrayBuffer) {
    this.#cells = new BigInt64Array(sab);
  }

  /** Counts one more connection for `key` if it has fewer than `max`; returns its slot, or -1 when refused. */
  acquire(key: string, max: number): number {
    const cells = this.#cells;
    const h = BigInt(hash31(key));
    const start = Number(h) & (TABLE_SLOTS - 1);
    // Find the key's slot on its probe path (up to the first empty one), noting the first reusable slot.
    let reusable = -1;
    let empty = -1;
    for (let n = 0; n < TABLE_SLOTS; n++) {
      const i = (start + n) & (TABLE_SLOTS - 1);
      const v = Atomics.load(cells, i);
      if (v === EMPTY) {
        empty = i;
        break;
      }
      if (v >> 32n === h) return this.#increment(i, h, max);
      if ((v & COUNT_MASK) === 0n && reusable < 0) reusable = i;
    }
    const i = empty >= 0 ? empty : reusable;
    if (i < 0) return -1; // every slot holds an open connection of another key: refuse rather than overcount
    const v = Atomics.load(cells, i);
    if ((v === EMPTY || (v & COUNT_MASK) === 0n) && Atomics.compareExchange(cells, i, v, (h << 32n) | 1n) === v) return i;
    return this.acquire(key, max); // another worker took the slot meanwhile: look again
  }

  #increment(i: number, h: bigint, max: number): number {
    const cells = this.#cells;
    for (;;) {
      const v = Atomics.load(cells, i);
      if (v >> 32n !== h) return -1; // taken over between two loads: extremely rare, refuse this once
      if (Number(v & COUNT_MASK) >= max) return -1;
      if (Atomics.compareExchange(cells, i, v, v + 1n) === v) return i;
    }
  }

  /** The connection counted in slot `i` closed. */
  release(i: number): void {
    Atomics.sub(this.#cells, i, 1n);
  }

  /** open connections counted for `key` (tests and the admin view) */
  count(key: string): number {
    const h = BigInt(hash31(key));
    const start = Number(h) & (TABLE_SLOTS - 1);
    for (let n = 0; n < TABLE_SLOTS; n++) {
      const v = Atomics.load(this.#cells, (start + n) & (TABLE_SLOTS - 1));
      if (v === EMPTY) return 0;
      if (v >> 32n === h) return Number(v & COUNT_MASK);
    }
    return 0;
  }
}

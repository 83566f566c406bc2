import { hashString } from './hash.js';
import { NO_NODE, type Balancer, type NodeView } from './view.js';

/**
 * Consistent hashing with a Maglev lookup table (Eisenbud et al., "Maglev: A Fast and Reliable Software Network
 * Load Balancer", NSDI 2016, §3.4; Envoy's maglev load balancer), and bounded loads on top (Mirrokni, Thorup,
 * Zadimoghaddam, "Consistent Hashing with Bounded Loads", 2018; Envoy's hash_balance_factor).
 *
 *   table (size M, prime)                      node i's permutation of the slots:
 *   ┌───┬───┬───┬───┬───┬───┬───┐              offset_i = h0(id_i) mod M
 *   │ 2 │ 0 │ 1 │ 2 │ 0 │ 1 │ … │              skip_i   = h1(id_i) mod (M - 1) + 1
 *   └───┴───┴───┴───┴───┴───┴───┘              slot_i(j) = (offset_i + j × skip_i) mod M
 *     ▲ key mod M
 *
 * Nodes take turns claiming the next free slot of their own permutation until the table is full; a node of weight
 * w claims a slot in w/max(w) of the turns. Because M is prime every skip is coprime with M, so each permutation
 * visits every slot. A node's permutation depends only on its id, not on the other nodes, so when a node leaves,
 * the slots it held are redistributed and the others' slots barely move: about 1/N of the keys change node.
 *
 * The table is built on the main thread, once per node set (O(M log M) here, ~ms for 65,537), into any Int32Array:
 * a view over shared memory, or a plain one to post to workers. A pick is one read, plus the bounded-load check.
 */

export const DEFAULT_TABLE_SIZE = 65537;
/** Envoy's upper bound for maglev table_size. */
export const MAX_TABLE_SIZE = 5000011;
export const DEFAULT_LOAD_FACTOR = 1.25;

export interface MaglevNode {
  /** stable identity (e.g. host:port): the same id keeps its slots across rebuilds */
  readonly id: string;
  /** configured weight, >= 0; 0 gets no slots */
  readonly weight: number;
}

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/**
 * Fills `out[0, size)` with node indices (into `nodes`), -1 everywhere when no node has a weight above zero.
 * Throws (control plane) on a size that is not a prime in [3, MAX_TABLE_SIZE] or an `out` that is too short.
 */
export function buildMaglevTable(nodes: readonly MaglevNode[], size = DEFAULT_TABLE_SIZE, out: Int32Array = new Int32Array(size)): Int32Array {
  if (!isPrime(size) || size < 3 || size > MAX_TABLE_SIZE) throw new RangeError(`maglev table size must be a prime between 3 and ${MAX_TABLE_SIZE}, got ${size}`);
  if (out.length < size) throw new RangeError(`maglev table: the output has ${out.length} cells, the table needs ${size}`);
  out.fill(-1, 0, size);
  let maxWeight = 0;
  for (const n of nodes) {
    if (!(n.weight >= 0) || !Number.isFinite(n.weight)) throw new RangeError(`maglev table: node "${n.id}" has weight ${n.weight}`);
    if (n.weight > maxWeight) maxWeight = n.weight;
  }
  if (maxWeight === 0) return out;

  const live: number[] = [];
  for (let i = 0; i < nodes.length; i++) if (nodes[i].weight > 0) live.push(i);
  const k = live.length;
  const share = new Float64Array(k);
  const target = new Float64Array(k);
  const pos = new Float64Array(k);
  const skip = new Float64Array(k);
  for (let j = 0; j < k; j++) {
    const node = nodes[live[j]];
    share[j] = node.weight / maxWeight;
    pos[j] = hashString(node.id, 0, node.id.length, 0) % size;
    skip[j] = (hashString(node.id, 0, node.id.length, 0x5bd1e995) % (size - 1)) + 1;
  }
  let filled = 0;
  // Turn t: node j claims a slot when t × share_j has reached its next target (as Envoy's maglev does), so a node
  // with half the largest weight claims in every other turn.
  for (let turn = 1; filled < size; turn++) {
    for (let j = 0; j < k && filled < size; j++) {
      if (turn * share[j] < target[j]) continue;
      target[j] += 1;
      let c = pos[j];
      while (out[c] !== -1) c = (c + skip[j]) % size;
      out[c] = live[j];
      pos[j] = (c + skip[j]) % size;
      filled++;
    }
  }
  return out;
}

export interface MaglevOptions {
  /** table size (prime) when the table is bigger than the part in use; default table.length */
  size?: number;
  /**
   * Bounded load factor c >= 1: no node takes a request while it has ceil(c × its weighted share of (in flight + 1))
   * requests in flight; the pick walks on to the next table entry. 0 turns bounded load off. Default 1.25.
   */
  loadFactor?: number;
}

function checkSize(table: Int32Array, size: number): number {
  if (!isPrime(size) || size > table.length) throw new RangeError(`maglev: table size ${size} must be a prime no larger than the table (${table.length} cells)`);
  return size;
}

/** How many table entries a pick walks past before it falls back to scanning the nodes. */
const MAX_WALK = 64;

/**
 * Picks the node that owns `key` in the table. Unavailable, skipped and (with bounded load) full nodes are walked
 * past to the next table entry: consecutive entries belong to different nodes in table-proportion, so the key's
 * traffic spills over the others by weight, and the same key spills the same way from every worker.
 */
export class MaglevBalancer implements Balancer {
  #table: Int32Array;
  #size: number;
  readonly #factor: number;

  constructor(table: Int32Array, options: MaglevOptions = {}) {
    this.#factor = options.loadFactor ?? DEFAULT_LOAD_FACTOR;
    if (this.#factor !== 0 && !(this.#factor >= 1)) throw new RangeError(`maglev loadFactor must be >= 1 (or 0 for off), got ${this.#factor}`);
    this.#table = table;
    this.#size = checkSize(table, options.size ?? table.length);
  }

  /** Swaps in the table of a new node set (indices refer to the new view). Control plane: throws on a bad size. */
  setTable(table: Int32Array, size = table.length): void {
    this.#size = checkSize(table, size);
    this.#table = table;
  }

  pick(view: NodeView, skip: number, key: number): number {
    const n = view.count;
    const factor = this.#factor;
    // Bounded load: total in flight and weight over the eligible nodes. One pass over the nodes, skipped when off.
    let scale = Infinity;
    if (factor !== 0) {
      let total = 0;
      let weights = 0;
      for (let i = 0; i < n; i++) {
        if (i === skip || !view.available(i)) continue;
        const w = view.weight(i);
        if (!(w > 0)) continue;
        total += view.inFlight(i);
        weights += w;
      }
      if (weights === 0) return NO_NODE;
      // Node i may hold ceil(c × (total + 1) × w_i / Σw): counting this request, so an idle cluster admits it.
      scale = (factor * (total + 1)) / weights;
    }
    const table = this.#table;
    const size = this.#size;
    let slot = (key >>> 0) % size;
    for (let step = 0; step < MAX_WALK; step++) {
      const i = table[slot];
      if (i >= 0 && i < n && this.#fits(view, i, skip, scale)) return i;
      slot = slot + 1 === size ? 0 : slot + 1;
    }
    // Long runs of unfit entries (most nodes down or full): scan the nodes from a key-derived start instead of
    // walking up to M entries. Deterministic per key, so workers still agree.
    const start = (key >>> 0) % (n || 1);
    let fallback = NO_NODE;
    let fallbackLoad = Infinity;
    for (let j = 0; j < n; j++) {
      const i = start + j < n ? start + j : start + j - n;
      if (this.#fits(view, i, skip, scale)) return i;
      if (i === skip || !view.available(i) || !(view.weight(i) > 0)) continue;
      // In-flight counts move under us (other workers): if none fits now, the least loaded eligible node.
      const load = view.inFlight(i);
      if (load < fallbackLoad) {
        fallbackLoad = load;
        fallback = i;
      }
    }
    return fallback;
  }

  #fits(view: NodeView, i: number, skip: number, scale: number): boolean {
    if (i === skip || !view.available(i)) return false;
    const w = view.weight(i);
    if (!(w > 0)) return false;
    return scale === Infinity || view.inFlight(i) + 1 <= Math.ceil(scale * w);
  }
}

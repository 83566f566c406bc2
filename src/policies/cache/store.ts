import { LRUCache } from 'lru-cache';
import { entrySize, freshUntil, type CacheMeta, type StoredEntry } from './entry.js';

/**
 * The L1: stored responses in one worker's memory, bounded by bytes (lru-cache with maxSize and sizeCalculation:
 * the least recently used entries leave first). Besides the entries it keeps three small indexes, updated when an
 * entry enters and when it leaves (lru-cache's dispose, for evictions too):
 *
 *   vary:     primary key -> the request fields its responses vary on (so a lookup knows which variant to read)
 *   uris:     URI part of the key ("GET host/path?query", without the configured parts) -> the full keys stored
 *             under it: purge by key and invalidation remove every variant and every consumer's copy at once
 *   tags:     tag -> full keys (purge by tag)
 *
 *   full key = primary key                                  (no Vary)
 *            = primary key + "\0" + value + "\0" + value ... (Vary: the request's values of the named fields)
 *
 * One store per zone and worker, kept across config reloads (a reload does not empty the cache) unless the zone's
 * size changes.
 */
export class Slot {
  readonly freshUntil: number;
  constructor(
    readonly key: string,
    readonly primary: string,
    readonly entry: StoredEntry,
    readonly meta: CacheMeta,
    readonly size: number,
  ) {
    this.freshUntil = freshUntil(entry, meta);
  }
}

export class L1Store {
  readonly maxBytes: number;
  /** where this worker publishes the zone's size (metrics.ts BYTES, ENTRIES), once the policy has bound it */
  gauges: Int32Array | null = null;
  gaugeBase = 0;
  readonly #lru: LRUCache<string, Slot>;
  readonly #vary = new Map<string, readonly string[]>();
  readonly #uris = new Map<string, Set<string>>();
  readonly #tags = new Map<string, Set<string>>();

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
    this.#lru = new LRUCache<string, Slot>({
      maxSize: maxBytes,
      sizeCalculation: (slot) => slot.size,
      dispose: (slot, key) => this.#unindex(slot, key),
    });
  }

  get size(): number {
    return this.#lru.size;
  }

  /** bytes held (the sizes of the entries) */
  get bytes(): number {
    return this.#lru.calculatedSize;
  }

  /** the request fields a primary key's responses vary on, or undefined (no Vary, or nothing stored) */
  varyOf(primary: string): readonly string[] | undefined {
    return this.#vary.get(primary);
  }

  get(fullKey: string): Slot | undefined {
    return this.#lru.get(fullKey);
  }

  /** Stores an entry; false when it is larger than the whole store. */
  set(primary: string, entry: StoredEntry, meta: CacheMeta): Slot | null {
    const full = meta.vary.length === 0 ? primary : primary + '\0' + meta.varyValues.join('\0');
    const size = entrySize(entry);
    if (size > this.maxBytes) return null;
    const slot = new Slot(full, primary, entry, meta, size);
    this.#lru.set(full, slot);
    if (!this.#lru.has(full)) return null;
    // A response with another Vary than the ones stored before replaces the primary's variant list: the old
    // variants can no longer be selected (RFC 9111 4.1: the newest response's Vary applies).
    const before = this.#vary.get(primary);
    const uri = uriOf(primary);
    if (meta.vary.length > 0 || before !== undefined) {
      if (before !== undefined && !sameList(before, meta.vary)) {
        for (const k of [...(this.#uris.get(uri) ?? [])]) if (k !== full && underPrimary(k, primary)) this.#lru.delete(k);
      }
      if (meta.vary.length > 0) this.#vary.set(primary, meta.vary);
      else this.#vary.delete(primary);
    }
    let set = this.#uris.get(uri);
    if (set === undefined) this.#uris.set(uri, (set = new Set()));
    set.add(full);
    for (const t of meta.tags) {
      let keys = this.#tags.get(t);
      if (keys === undefined) this.#tags.set(t, (keys = new Set()));
      keys.add(full);
    }
    return slot;
  }

  delete(fullKey: string): boolean {
    return this.#lru.delete(fullKey);
  }

  /** Writes the zone's bytes and entries into the metrics region (after a store or a purge). */
  publish(): void {
    const g = this.gauges;
    if (g === null) return;
    Atomics.store(g, this.gaugeBase, this.#lru.calculatedSize | 0);
    Atomics.store(g, this.gaugeBase + 1, this.#lru.size);
  }

  /**
   * Removes what is stored under a key: given a URI key ("GET host/path?q"), every variant and every copy with
   * configured parts (consumers, plans, headers); given a key with parts, the variants of that one. Returns the count.
   */
  purgeKey(key: string): number {
    const set = this.#uris.get(uriOf(key));
    if (set === undefined) return 0;
    let n = 0;
    for (const k of [...set]) if (underPrimary(k, key) || (key === uriOf(key) && k.startsWith(key + ' |'))) if (this.#lru.delete(k)) n++;
    return n;
  }

  /** Removes every entry whose key starts with `prefix` (a walk over all keys: an admin operation). */
  purgePrefix(prefix: string): number {
    const doomed: string[] = [];
    for (const k of this.#lru.keys()) if (k.startsWith(prefix)) doomed.push(k);
    for (const k of doomed) this.#lru.delete(k);
    return doomed.length;
  }

  purgeTag(tag: string): number {
    const set = this.#tags.get(tag);
    if (set === undefined) return 0;
    let n = 0;
    for (const k of [...set]) if (this.#lru.delete(k)) n++;
    return n;
  }

  clear(): number {
    const n = this.#lru.size;
    this.#lru.clear();
    return n;
  }

  #unindex(slot: Slot, key: string): void {
    const uri = uriOf(slot.primary);
    const set = this.#uris.get(uri);
    if (set !== undefined) {
      set.delete(key);
      if (set.size === 0) this.#uris.delete(uri);
      let left = false;
      if (set.size > 0) for (const k of set) if (underPrimary(k, slot.primary)) left = true;
      if (!left) this.#vary.delete(slot.primary);
    }
    for (const t of slot.meta.tags) {
      const keys = this.#tags.get(t);
      if (keys !== undefined) {
        keys.delete(key);
        if (keys.size === 0) this.#tags.delete(t);
      }
    }
  }
}

/** The URI part of a primary key: up to the configured parts (" |consumer=..."), which follow a space. */
export function uriOf(primary: string): string {
  const i = primary.indexOf(' |');
  return i < 0 ? primary : primary.slice(0, i);
}

/** `full` is `primary` itself or one of its Vary variants. */
function underPrimary(full: string, primary: string): boolean {
  return full === primary || (full.length > primary.length && full.charCodeAt(primary.length) === 0 && full.startsWith(primary));
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** This worker's stores by zone name (module state of the worker thread, like its pools: it outlives a plan). */
const zones = new Map<string, L1Store>();

export function l1Zone(name: string, maxBytes: number): L1Store {
  let z = zones.get(name);
  if (z === undefined || z.maxBytes !== maxBytes) {
    z?.clear();
    zones.set(name, (z = new L1Store(maxBytes)));
  }
  return z;
}

/** Every zone of this worker (purges from the admin API, metrics). */
export function allZones(): ReadonlyMap<string, L1Store> {
  return zones;
}

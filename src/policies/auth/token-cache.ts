/**
 * A bounded map from a raw bearer token to what checking it produced, each entry with its own expiry. It is what
 * keeps the hot path of token authentication at one Map lookup: a signature check (or an introspection call) happens
 * once per token per worker, not once per request.
 *
 * Bounds: `maxEntries` entries and about `maxBytes` of token text (tokens may be up to maxTokenBytes long, so the
 * count alone could pin a lot of memory). Eviction is first-in first-out: Map keeps insertion order, so the oldest
 * entry is `keys().next()`; a hit does not reorder (no write on the hot path). An evicted token that is still in use
 * costs one more check, nothing else.
 */
export class TokenCache<V extends { readonly expiresAt: number }> {
  readonly #map = new Map<string, V>();
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  #bytes = 0;

  constructor(maxEntries: number, maxBytes = 16 * 1024 * 1024) {
    this.#maxEntries = maxEntries;
    this.#maxBytes = maxBytes;
  }

  get size(): number {
    return this.#map.size;
  }

  /** The live entry for `token`, or undefined (an expired entry is dropped on the way). */
  get(token: string, now: number): V | undefined {
    const v = this.#map.get(token);
    if (v === undefined) return undefined;
    if (v.expiresAt > now) return v;
    this.#map.delete(token);
    this.#bytes -= token.length;
    return undefined;
  }

  /** Stores an entry unless it is already expired or caching is off. */
  set(token: string, value: V, now: number): void {
    if (this.#maxEntries === 0 || value.expiresAt <= now) return;
    const old = this.#map.get(token);
    if (old !== undefined) this.#bytes -= token.length;
    else {
      while (this.#map.size >= this.#maxEntries || (this.#map.size > 0 && this.#bytes + token.length > this.#maxBytes)) this.#evictOldest();
    }
    this.#map.set(token, value);
    this.#bytes += token.length;
  }

  clear(): void {
    this.#map.clear();
    this.#bytes = 0;
  }

  #evictOldest(): void {
    const oldest = this.#map.keys().next();
    if (oldest.done) return;
    this.#map.delete(oldest.value);
    this.#bytes -= oldest.value.length;
  }
}

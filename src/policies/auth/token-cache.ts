/**
 * A bounded map from a raw bearer token to what checking it produced, each entry with its own expiry. It is what
 * keeps the hot path of token authentication at one Map lookup: a signature check (or an introspection call) happens
 * once per token per worker, not once per request.
 *
 * Keying by the token's tail (`keyTail` > 0, for JWTs): a Map lookup hashes its string key, and every request brings
 * a fresh string, so keying by a 600-character JWT hashes 600 characters per request (V8 caches a hash per string
 * object, not per content). The last 22 characters of a JWT are signature bytes (132 bits, unpredictable without the
 * key), so the Map is keyed by them and the entry keeps the whole token, compared with `===` (a length check and a
 * memcmp) before it counts as a hit. A different token with the same tail is a miss and goes through full
 * verification, so the tail only ever selects, it never vouches. bench/micro/auth-jwt.ts: 1.43 µs -> 0.22 µs per hit
 * for a 600-character token. Opaque tokens (introspection) are keyed whole: their tail may be a fixed suffix.
 *
 * Bounds: `maxEntries` entries and about `maxBytes` of token text (tokens may be up to maxTokenBytes long, so the
 * count alone could pin a lot of memory). Eviction is first-in first-out: Map keeps insertion order, so the oldest
 * entry is `keys().next()`; a hit does not reorder (no write on the hot path). An evicted token that is still in use
 * costs one more check, nothing else.
 */
class Slot<V> {
  constructor(
    readonly token: string,
    readonly value: V,
    readonly expiresAt: number,
  ) {}
}

export class TokenCache<V extends { readonly expiresAt: number }> {
  readonly #map = new Map<string, Slot<V>>();
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #keyTail: number;
  #bytes = 0;
  /**
   * The entry of the last hit: a client mostly sends the same token request after request, and comparing with it
   * (a length check and a memcmp) costs a third of the Map lookup, which hashes the key, a new string each request
   * (counted by native-bench/instructions.sh: about 900 instructions a request of the standard set saved).
   */
  #last: Slot<V> | null = null;

  constructor(maxEntries: number, opts: { maxBytes?: number; keyTail?: number } = {}) {
    this.#maxEntries = maxEntries;
    this.#maxBytes = opts.maxBytes ?? 16 * 1024 * 1024;
    this.#keyTail = opts.keyTail ?? 0;
  }

  get size(): number {
    return this.#map.size;
  }

  #key(token: string): string {
    const n = this.#keyTail;
    return n === 0 || token.length <= n ? token : token.slice(token.length - n);
  }

  /** The live entry for `token`, or undefined (an expired entry is dropped on the way). */
  get(token: string, now: number): V | undefined {
    const last = this.#last;
    if (last !== null && last.token === token && last.expiresAt > now) return last.value;
    const key = this.#key(token);
    const slot = this.#map.get(key);
    if (slot === undefined || slot.token !== token) return undefined;
    if (slot.expiresAt > now) {
      this.#last = slot;
      return slot.value;
    }
    this.#map.delete(key);
    this.#bytes -= token.length;
    if (this.#last === slot) this.#last = null;
    return undefined;
  }

  /** Stores an entry (replacing one with the same key) unless it is already expired or caching is off. */
  set(token: string, value: V, now: number): void {
    if (this.#maxEntries === 0 || value.expiresAt <= now) return;
    const key = this.#key(token);
    const old = this.#map.get(key);
    if (old !== undefined) {
      this.#map.delete(key);
      this.#bytes -= old.token.length;
      if (this.#last === old) this.#last = null;
    }
    while (this.#map.size >= this.#maxEntries || (this.#map.size > 0 && this.#bytes + token.length > this.#maxBytes)) this.#evictOldest();
    this.#map.set(key, new Slot(token, value, value.expiresAt));
    this.#bytes += token.length;
  }

  clear(): void {
    this.#map.clear();
    this.#bytes = 0;
    this.#last = null;
  }

  #evictOldest(): void {
    const oldest = this.#map.values().next();
    if (oldest.done) return;
    this.#map.delete(this.#key(oldest.value.token));
    this.#bytes -= oldest.value.token.length;
    if (this.#last === oldest.value) this.#last = null;
  }
}

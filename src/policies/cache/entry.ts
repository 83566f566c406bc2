/**
 * What the cache stores, as plain data: the L1 keeps it in each worker, the optional L2 (l2-redis.ts) packs it with
 * msgpackr. Everything the cache needs to decide about a stored response without re-reading its headers is in
 * `meta`, computed once when the response is stored (src/policies/cache/rfc9111.ts), so that a hit compares one
 * number with the clock instead of evaluating the RFC 9111 rules again.
 */
export interface StoredEntry {
  status: number;
  /** flat [name, value, name, value, ...], names lower-case, hop-by-hop already removed */
  headers: string[];
  body: Uint8Array;
  /** ms epoch when the response was received (RFC 9111 4.2.3 response_time) */
  storedAt: number;
  meta: Record<string, unknown>;
}

/** The cache's own part of an entry (StoredEntry.meta), plain data only. */
export interface CacheMeta {
  /** layout version of this object: an L2 entry written by another version is a miss, not a misread */
  v: 1;
  /** RFC 9111 4.2.3 corrected_initial_age, ms */
  initialAgeMs: number;
  /** freshness lifetime, ms (0: stale at once, e.g. no-cache or max-age=0) */
  lifetimeMs: number;
  /** stale-while-revalidate window after freshness, ms (0: none) */
  swrMs: number;
  /** stale-if-error window after freshness, ms (0: none) */
  sieMs: number;
  /** must-revalidate, proxy-revalidate or s-maxage: never served stale (RFC 9111 5.2.2.2, 5.2.2.8, 5.2.2.10) */
  mustRevalidate: boolean;
  /** response no-cache: every use is validated first (RFC 9111 5.2.2.4) */
  noCache: boolean;
  immutable: boolean;
  /** validators for revalidation and for clients' conditional requests */
  etag: string | null;
  lastModified: string | null;
  /** request header names of the response's Vary (lower-case, sorted), and the request's values for them */
  vary: string[];
  varyValues: string[];
  /** purge tags (from the configured tag header) */
  tags: string[];
  /** the freshness came from a heuristic or a route TTL override, not from the response */
  heuristic: boolean;
}

export const META_VERSION = 1;

export function metaOf(entry: StoredEntry): CacheMeta | null {
  const m = entry.meta as Partial<CacheMeta>;
  return m !== null && typeof m === 'object' && m.v === META_VERSION ? (m as CacheMeta) : null;
}

/** ms epoch until which the entry is fresh (RFC 9111 4.2: freshness_lifetime > current_age). */
export function freshUntil(entry: StoredEntry, meta: CacheMeta): number {
  return entry.storedAt + meta.lifetimeMs - meta.initialAgeMs;
}

/** Bytes an entry holds in memory, roughly: body, header text (2 bytes a char), a fixed overhead. */
export function entrySize(entry: StoredEntry): number {
  let n = entry.body.byteLength + 256;
  const h = entry.headers;
  for (let i = 0; i < h.length; i++) n += h[i].length * 2 + 16;
  return n;
}

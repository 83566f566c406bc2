import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { PolicyConfigError } from '../../pipeline/policy.js';

/** SHA-256 of a query text, lower-case hex (what Apollo's persisted query extension carries). */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

export const HASH = /^[0-9a-f]{64}$/;

/**
 * The allowlist file, read at config load: either `{ "<sha256>": "<query>", … }` or an Apollo persisted query
 * manifest (`{ "format": "apollo-persisted-query-manifest", "operations": [{ "id", "body" }, …] }`). Every hash is
 * checked against its query, so a list cannot let a different query in under a known hash.
 */
export function readAllowlist(path: string, where: string): Record<string, string> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new PolicyConfigError(where, `cannot read the allowlist ${path}: ${(e as Error).message}`, 'a JSON object of sha256 -> query, or an Apollo persisted query manifest');
  }
  const out: Record<string, string> = Object.create(null);
  const add = (hash: unknown, body: unknown, at: string) => {
    if (typeof hash !== 'string' || typeof body !== 'string') throw new PolicyConfigError(where, `${path}: ${at} is not a hash with a query text`);
    const h = hash.toLowerCase();
    if (!HASH.test(h)) throw new PolicyConfigError(where, `${path}: ${at}: "${hash}" is not a SHA-256 in hex`);
    if (sha256Hex(body) !== h) throw new PolicyConfigError(where, `${path}: ${at}: the hash is not the SHA-256 of its query`, 'recompute it: printf %s "$query" | sha256sum');
    out[h] = body;
  };
  if (raw !== null && typeof raw === 'object' && !Array.isArray(raw) && (raw as { format?: unknown }).format === 'apollo-persisted-query-manifest') {
    const ops = (raw as { operations?: unknown }).operations;
    if (!Array.isArray(ops)) throw new PolicyConfigError(where, `${path}: the manifest has no operations array`);
    ops.forEach((o: { id?: unknown; body?: unknown }, i) => add(o?.id, o?.body, `operations[${i}]`));
  } else if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) {
    for (const [h, q] of Object.entries(raw)) add(h, q, `"${h}"`);
  } else {
    throw new PolicyConfigError(where, `${path} is neither a hash -> query object nor an Apollo persisted query manifest`);
  }
  return out;
}

/**
 * Where automatic persisted queries are kept: an LRU per worker. A hash registered on one worker is unknown to the
 * others until a client sends its query there too (the client's usual retry after PersistedQueryNotFound), so the
 * cost of a miss is one extra round trip per worker and hash.
 */
export class PersistedStore {
  readonly #lru: LRUCache<string, string>;
  constructor(maxEntries: number) {
    this.#lru = new LRUCache<string, string>({ max: maxEntries });
  }
  get(hash: string): string | undefined {
    return this.#lru.get(hash);
  }
  set(hash: string, text: string): void {
    this.#lru.set(hash, text);
  }
}

/** The body clients expect for a hash the gateway does not know (Apollo clients then resend with the query). */
export const PERSISTED_NOT_FOUND = JSON.stringify({ errors: [{ message: 'PersistedQueryNotFound', extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' } }] });

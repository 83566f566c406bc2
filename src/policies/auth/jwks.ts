import { request } from 'undici';
import { algsForJwk, jwkProblem } from './jwt-algs.js';
import { KeySet, type KeyInput } from './jwt-keys.js';

/**
 * A JSON Web Key Set fetched from a URL, one per worker and source settings.
 *
 * Why each worker fetches for itself rather than the control plane fetching once and sharing: a token with an
 * unknown kid is seen by a worker, and that worker can refetch and answer the request without a round trip through
 * the main thread (and without new control-plane messages); the cost is one GET per worker per refresh (workers are
 * one per core, so a handful), which an identity provider serves from cache. Each worker keeps the last good set on
 * its own, so an endpoint outage is handled the same everywhere.
 *
 * Fetch rules:
 *   - the first fetch starts when a route using the source is created (warm before the first request);
 *   - an unknown kid triggers a refetch at most once per `refreshMs` (a stream of tokens with made-up kids cannot
 *     turn the gateway into a load generator against the identity provider); concurrent triggers share one fetch;
 *   - a set older than `maxAgeMs` is refreshed in the background on the next uncached token (keys removed by the
 *     provider stop verifying), whatever `refreshMs` says, at most one attempt a second;
 *   - a failed fetch (network, status, body, no usable key) keeps the last good set; with no set at all, a fetch is
 *     retried at most once per second and tokens get NG_ERR_AUTH_UNAVAILABLE meanwhile.
 */
export interface JwksOptions {
  readonly url: string;
  readonly refreshMs: number;
  readonly maxAgeMs: number;
  readonly timeoutMs: number;
  /** the algorithms a key of this set may verify */
  readonly algorithms: readonly string[];
}

/** least time between two attempts when there is no set yet, or when the set is past its age */
const RETRY_MS = 1000;
const MAX_JWKS_BYTES = 512 * 1024;
const MAX_KEYS = 100;

export class JwksSource {
  readonly opts: JwksOptions;
  /** the last good set, or null before the first successful fetch */
  keys: KeySet | null = null;
  fetchedAt = 0;
  fetches = 0;
  failures = 0;
  lastError = '';
  #attemptAt = -Infinity;
  #inflight: Promise<void> | null = null;

  constructor(opts: JwksOptions) {
    this.opts = opts;
  }

  get fetching(): boolean {
    return this.#inflight !== null;
  }

  /** May a fetch start now (unknown kid, or no set yet)? */
  mayFetch(now: number): boolean {
    const gap = this.keys === null ? Math.min(this.opts.refreshMs, RETRY_MS) : this.opts.refreshMs;
    return now - this.#attemptAt >= gap;
  }

  /** Is the set older than maxAgeMs, with no attempt in the last second (a failing endpoint is not hammered)? */
  stale(now: number): boolean {
    return this.keys !== null && now - this.fetchedAt >= this.opts.maxAgeMs && now - this.#attemptAt >= RETRY_MS;
  }

  /** Starts a fetch unless one is running; resolves when it is over. Never rejects. */
  refresh(): Promise<void> {
    if (this.#inflight !== null) return this.#inflight;
    this.#attemptAt = Date.now();
    this.fetches++;
    const p = this.#fetch().then(
      () => {
        this.#inflight = null;
      },
      (err: unknown) => {
        this.#inflight = null;
        this.failures++;
        this.lastError = err instanceof Error ? err.message : String(err);
      },
    );
    this.#inflight = p;
    return p;
  }

  async #fetch(): Promise<void> {
    const { url, timeoutMs } = this.opts;
    const res = await request(url, {
      method: 'GET',
      headers: { accept: 'application/jwk-set+json, application/json' },
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new Error(`JWKS endpoint answered ${res.statusCode}`);
    }
    let size = 0;
    const chunks: Buffer[] = [];
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_JWKS_BYTES) {
        res.body.destroy();
        throw new Error(`JWKS larger than ${MAX_JWKS_BYTES} bytes`);
      }
      chunks.push(chunk as Buffer);
    }
    const doc = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { keys?: unknown };
    if (doc === null || typeof doc !== 'object' || !Array.isArray(doc.keys)) throw new Error('JWKS without a "keys" array');
    const inputs: KeyInput[] = [];
    for (const jwk of doc.keys.slice(0, MAX_KEYS) as unknown[]) {
      if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) continue;
      const j = jwk as Record<string, unknown>;
      const algs = algsForJwk(j, this.opts.algorithms).filter((alg) => jwkProblem(j, alg) === null);
      if (algs.length === 0) continue;
      inputs.push({ kid: typeof j.kid === 'string' ? j.kid : null, algs, jwk: j });
    }
    const set = await KeySet.build(inputs);
    if (set.size === 0) throw new Error('JWKS holds no usable signing key');
    this.keys = set;
    this.fetchedAt = Date.now();
    this.lastError = '';
  }
}

/**
 * Sources by URL and settings, per worker (module state lives in the worker thread). Kept across config reloads so a
 * reload neither refetches nor loses the last good set; bounded by the number of distinct sources configured.
 */
const SOURCES = new Map<string, JwksSource>();
const MAX_SOURCES = 256;

export function jwksSource(opts: JwksOptions): JwksSource {
  const key = JSON.stringify([opts.url, opts.refreshMs, opts.maxAgeMs, opts.timeoutMs, opts.algorithms]);
  let src = SOURCES.get(key);
  if (src === undefined) {
    if (SOURCES.size >= MAX_SOURCES) SOURCES.delete(SOURCES.keys().next().value!);
    src = new JwksSource(opts);
    SOURCES.set(key, src);
  }
  return src;
}

/**
 * The response cache's per-request decisions, ours (src/policies/cache/rfc9111.ts: freshness computed once when a
 * response is stored, a hit compares a precomputed "fresh until" with the clock) against http-cache-semantics
 * (a CachePolicy per stored response; each hit builds the request object it asks for and calls
 * satisfiesWithoutRevalidation, then responseHeaders for the Age it writes). Both are given the same stored
 * response and the same request (a browser-like header set of 8 fields).
 *
 *   hit:   key + L1 lookup + reuse decision (+ the Age value)         vs  request object + satisfies + responseHeaders
 *   store: storable() on a response head                             vs  new CachePolicy + storable()
 */
import CachePolicy from 'http-cache-semantics';
import { defineSuite, consume, type MicroCase } from '../../src/bench/micro-api.js';
import { parseCacheControl } from '../../src/policies/cache/directives.js';
import { currentAgeMs, reuse, storable, type FreshnessSettings } from '../../src/policies/cache/rfc9111.js';
import { primaryKey, type KeySpec } from '../../src/policies/cache/key.js';
import { L1Store } from '../../src/policies/cache/store.js';
import type { CacheMeta } from '../../src/policies/cache/entry.js';

const S: FreshnessSettings = { heuristic: true, heuristicFraction: 0.1, heuristicMaxMs: 86_400_000, defaultTtlMs: 0, staleIfErrorMs: 0, staleWhileRevalidateMs: 0, tagHeader: null, storeSetCookie: true };
const SPEC: KeySpec = { consumer: false, plan: false, headers: [], queryMode: 'all', params: [], sortQuery: false };
const REQ_NAMES = ['host', 'user-agent', 'accept', 'accept-language', 'accept-encoding', 'referer', 'cookie', 'x-request-id'];
const REQ_VALUES = ['api.example.com', 'Mozilla/5.0 (X11; Linux x86_64)', 'application/json', 'en-US,en;q=0.9', 'gzip, br', 'https://app.example.com/', 'sid=abc', 'r-1'];
const RESP = ['content-type', 'application/json', 'cache-control', 'public, max-age=60', 'etag', '"v1"', 'last-modified', 'Wed, 01 Jan 2025 00:00:00 GMT', 'vary', 'accept-encoding'];

class Ctx {
  method = 'GET';
  path = '/items/12345';
  query = 'page=2';
  hostHeader = 'api.example.com';
  consumerId: string | null = null;
  consumerPlan: string | null = null;
  header(name: string): string | undefined {
    for (let i = 0; i < REQ_NAMES.length; i++) if (REQ_NAMES[i] === name) return REQ_VALUES[i];
    return undefined;
  }
}

export default defineSuite({
  name: 'cache',
  description: 'response cache: a hit decision and a store decision, ours (precomputed freshness) vs http-cache-semantics',
  cases(): MicroCase[] {
    const ctx = new Ctx();
    const now = Date.now();
    const store = new L1Store(64 * 1024 * 1024);
    const req = { method: 'GET', cc: parseCacheControl(undefined), authorized: false };
    const m = storable(S, req, 200, RESP, now, now, NaN, (n) => ctx.header(n) ?? '') as CacheMeta;
    const key = primaryKey(ctx, SPEC, false);
    store.set(key, { status: 200, headers: RESP, body: new Uint8Array(512), storedAt: now, meta: m as unknown as Record<string, unknown> }, m);

    const respObj: Record<string, string> = {};
    for (let i = 0; i < RESP.length; i += 2) respObj[RESP[i]] = RESP[i + 1];
    const reqObj = () => {
      const headers: Record<string, string> = {};
      for (let i = 0; i < REQ_NAMES.length; i++) headers[REQ_NAMES[i]] = REQ_VALUES[i];
      return { method: 'GET', url: '/items/12345?page=2', headers };
    };
    const policy = new CachePolicy(reqObj(), { status: 200, headers: respObj }, { shared: true });
    const hcsMap = new Map<string, CachePolicy>([[key, policy]]);
    const reps = 16;
    return [
      {
        name: 'hit: ours (key + L1 get + fresh check + Age)',
        ops: reps,
        fn: () => {
          for (let i = 0; i < reps; i++) {
            const k = primaryKey(ctx, SPEC, false);
            const vary = store.varyOf(k);
            const full = vary === undefined ? k : k + '\0' + vary.map((n) => ctx.header(n) ?? '').join('\0');
            const slot = store.get(full)!;
            const t = Date.now();
            consume(reuse(slot.entry, slot.meta, slot.freshUntil, t, null));
            consume(Math.floor(currentAgeMs(slot.entry, slot.meta, t) / 1000));
          }
        },
      },
      {
        name: 'hit: http-cache-semantics (key + Map get + request object + satisfies + responseHeaders)',
        ops: reps,
        fn: () => {
          for (let i = 0; i < reps; i++) {
            const k = primaryKey(ctx, SPEC, false);
            const p = hcsMap.get(k)!;
            const r = reqObj();
            consume(p.satisfiesWithoutRevalidation(r));
            consume(p.responseHeaders());
          }
        },
      },
      {
        name: 'store decision: ours',
        ops: reps,
        fn: () => {
          for (let i = 0; i < reps; i++) consume(storable(S, req, 200, RESP, now, now, NaN, (n) => ctx.header(n) ?? ''));
        },
      },
      {
        name: 'store decision: http-cache-semantics',
        ops: reps,
        fn: () => {
          for (let i = 0; i < reps; i++) {
            const p = new CachePolicy(reqObj(), { status: 200, headers: respObj }, { shared: true });
            consume(p.storable());
            consume(p.timeToLive());
          }
        },
      },
    ];
  },
});

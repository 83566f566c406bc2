import { CONTINUE, PENDING, PRIORITY, RESPOND, PolicyConfigError, type BackgroundSink, type BodySink, type CompileContext, type HookResult, type PolicyContext, type PolicyHooks, type PolicyModule, type ResponseBodyFilter } from '../../pipeline/policy.js';
import { CacheSchema, type CacheConfig } from './schema.js';
import { CacheControl, parseCacheControl } from './directives.js';
import { freshUntil, metaOf, META_VERSION, type CacheMeta, type StoredEntry } from './entry.js';
import { L2_REGION_BYTES, workerL2, type CacheL2, type L2Data } from './l2-redis.js';
import type { RedisConfig } from '../../shared/redis-config.js';
import { byteRange, currentAgeMs, httpDate, ifRangeMatches, UNSATISFIABLE, notModified, reuse, storable, unstoredFields, updatedHeaders, usableOnError, USE_FRESH, USE_STALE_REVALIDATE, VALIDATE, type FreshnessSettings, type NotStored } from './rfc9111.js';
import { primaryKey, unkeyedParams, varyValue, normalizeHost, normalizeEscapes, type KeySpec } from './key.js';
import { l1Zone, type L1Store, type Slot } from './store.js';
import { Flights, type Waiter } from './coalesce.js';
import { BYPASS, BYTES, COALESCED, HITS, MAX_WORKERS, MISSES, REGION_BYTES, REVALIDATED, ROW_CELLS, STALE, STALE_ERROR, STORES } from './metrics.js';
import { broadcastPurge, purgeGeneration } from './purge-local.js';

/**
 * The response cache: an RFC 9111 shared cache in front of a route's upstream (docs/caching.md).
 *
 *   access (lowest priority, after authentication and limits): key -> L1 lookup -> fresh: RESPOND with the stored
 *          response (it then passes the response phase like an upstream one: headers, CORS, compression);
 *          not in L1 and an L2 configured and reachable: PENDING for one Redis lookup (l2-redis.ts), whose entry
 *          goes into L1 and is then used as if it had been there (Cache-Status says detail=l2);
 *          stale with validators: the request goes upstream conditional (If-None-Match / If-Modified-Since);
 *          miss: one request per key goes upstream (coalescing), the others wait (PENDING) for its answer
 *   answer (the upstream's head, or its failure): a 304 to a revalidation refreshes the stored headers and answers
 *          from the store; a failure or a 500/502/503/504 answers with a stale response inside stale-if-error
 *   response: decides storability (rfc9111.ts storable, once per response), writes Cache-Status (RFC 9211);
 *          a successful unsafe request invalidates the target and its Location / Content-Location
 *   responseBody: an observing filter copies the body while it streams to the client (bounded by maxObjectBytes;
 *          larger ones are dropped mid-way and not stored) and stores it at its end
 *   log:   a leader that did not store releases its waiters (whatever ended the request)
 *
 * Cache-Status values written: `hit; ttl=N` (fresh or stale hit), `fwd=uri-miss|vary-miss|stale|request|method|bypass`
 * with `fwd-status`, `stored`, `collapsed` and `detail` parameters where they apply.
 */

const UNSAFE = new Set(['POST', 'PUT', 'DELETE', 'PATCH']);
/** Cache-Control for `Pragma: no-cache` without Cache-Control (RFC 9111 5.4) */
const PRAGMA_NO_CACHE: CacheControl = Object.assign(new CacheControl(), { noCache: true });
/** response fields a 304 from the cache carries (RFC 9110 15.4.5) */
const FIELDS_304 = new Set(['cache-control', 'content-location', 'etag', 'expires', 'vary', 'last-modified']);
/** response fields never stored: regenerated (Age), or bound to one client */
const NOT_STORED_FIELDS = new Set(['age', 'cache-status', 'x-request-id', 'via']);

export interface CacheData {
  readonly zone: string;
  readonly maxBytes: number;
  readonly maxObjectBytes: number;
  readonly settings: FreshnessSettings;
  readonly spec: KeySpec;
  readonly tls: boolean;
  readonly coalesce: boolean;
  readonly coalesceTimeoutMs: number;
  readonly passMs: number;
  readonly bypass: readonly string[];
  readonly name: string;
  /** this zone's metrics region (metrics.ts) */
  readonly region: SharedArrayBuffer;
  /** the shared L2 in Redis (cache.l2), or null */
  readonly l2: L2Data | null;
  /**
   * a Range request may be answered with a 206 cut from a stored full response: false on a route whose responses a
   * transform changes (the client's byte positions would count the transformed body, which is made after the cut)
   */
  readonly ranges: boolean;
}

/** Roles of a request in its key's flight */
const NONE = 0;
const LEADER = 1;
const WAITER = 2;

/** One request's cache state (ctx.slots[slot]), only on routes with this policy. */
class CacheRequest implements Waiter {
  readonly ctx: PolicyContext;
  readonly hooks: CacheHooks;
  primary = '';
  /** the key looked up (and the flight's key) */
  full = '';
  reqCC: CacheControl | null = null;
  authorized = false;
  range = false;
  /** RFC 9211 fwd parameter; '' for a hit */
  fwd = '';
  detail = '';
  role = NONE;
  landed = false;
  /** waited for another request already (a second wait would serialise) */
  released = false;
  collapsed = false;
  /** answered from the store (hit, 304, stale) */
  hit = false;
  /** the L2 was asked (once per request) */
  l2Tried = false;
  /** what L1 holds for this request came from the L2 just now */
  fromL2 = false;
  /** purgeGeneration() when the request started: what it fetches is not stored after a purge came meanwhile */
  gen = 0;
  /** a stored response seen at lookup (for revalidation and stale-if-error) */
  slot: Slot | null = null;
  revalidating = false;
  /** a response may be stored (a GET that was looked up) */
  candidate = false;
  /** the response is being stored: meta and headers decided at its head */
  meta: CacheMeta | null = null;
  headers: string[] | null = null;
  status = 0;
  requestTime = 0;
  responseTime = 0;
  invalidate = false;

  constructor(ctx: PolicyContext, hooks: CacheHooks) {
    this.ctx = ctx;
    this.hooks = hooks;
  }

  wake(stored: boolean): void {
    this.hooks.woken(this, stored);
  }
}

/** Copies the body while it streams to the client; stores it when complete. */
class StoreFilter implements ResponseBodyFilter {
  readonly changesLength = false;
  readonly #req: CacheRequest;
  readonly #max: number;
  readonly #expected: number;
  #parts: Buffer[] | null = [];
  #bytes = 0;

  constructor(req: CacheRequest, max: number, expected: number) {
    this.#req = req;
    this.#max = max;
    this.#expected = expected;
  }

  onChunk(chunk: Buffer, sink: BodySink): boolean {
    const parts = this.#parts;
    if (parts !== null) {
      this.#bytes += chunk.length;
      if (this.#bytes > this.#max) {
        this.#parts = null;
        this.#req.hooks.dropped(this.#req, 'too-large');
      } else parts.push(Buffer.from(chunk));
    }
    sink.push(chunk);
    return true;
  }

  onEnd(sink: BodySink): void {
    sink.end();
    const parts = this.#parts;
    this.#parts = null;
    if (parts === null) return;
    if (this.#expected >= 0 && this.#bytes !== this.#expected) return this.#req.hooks.dropped(this.#req, 'incomplete');
    const body = parts.length === 1 ? parts[0] : Buffer.concat(parts, this.#bytes);
    this.#req.hooks.store(this.#req, new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
  }

  onClose(): void {
    if (this.#parts !== null) {
      this.#parts = null;
      this.#req.hooks.dropped(this.#req, 'incomplete');
    }
  }
}

/**
 * The answer of a background refresh (stale-while-revalidate): a 304 updates the stored headers, a storable
 * response replaces the entry once its body is complete; anything else leaves the stale entry as it is.
 */
class RefreshSink implements BackgroundSink {
  readonly #hooks: CacheHooks;
  readonly #req: CacheRequest;
  readonly #old: Slot;
  #decided: { meta: CacheMeta; fields: string[] } | null = null;
  #status = 0;
  #at = 0;
  #parts: Buffer[] | null = null;
  #bytes = 0;

  constructor(hooks: CacheHooks, req: CacheRequest, old: Slot) {
    this.#hooks = hooks;
    this.#req = req;
    this.#old = old;
  }

  head(status: number, headers: readonly string[], length: number, date?: string): boolean {
    const now = Date.now();
    if (status === 304) {
      this.#hooks.landRefresh(this.#req.full, this.#hooks.revalidated(this.#req, this.#old, headers, now, httpDate(date)) !== null);
      return false;
    }
    const d = this.#hooks.decide(this.#req, status, headers, length, now, httpDate(date));
    if (typeof d === 'string') {
      this.#hooks.landRefresh(this.#req.full, false);
      return false;
    }
    this.#decided = d;
    this.#status = status;
    this.#at = now;
    this.#parts = [];
    return true;
  }

  chunk(chunk: Buffer): void {
    if (this.#parts === null) return;
    this.#bytes += chunk.length;
    if (this.#bytes > this.#hooks.maxObjectBytes) this.#parts = null;
    else this.#parts.push(Buffer.from(chunk));
  }

  end(): void {
    const parts = this.#parts;
    const d = this.#decided;
    if (parts === null || d === null) return this.#hooks.landRefresh(this.#req.full, false);
    const body = Buffer.concat(parts, this.#bytes);
    const ok = this.#hooks.put(this.#req, this.#status, d.fields, new Uint8Array(body.buffer, body.byteOffset, body.byteLength), this.#at, d.meta);
    this.#hooks.landRefresh(this.#req.full, ok);
  }

  failed(): void {
    this.#hooks.landRefresh(this.#req.full, false);
  }
}

/** A route's cache hooks: one object per route and worker, holding the compiled settings and the zone's store. */
class CacheHooks implements PolicyHooks {
  readonly #d: CacheData;
  readonly #slot: number;
  readonly #store: L1Store;
  readonly #flights: Flights;
  readonly #cells: Int32Array;
  readonly #row: number;
  /** this worker's client of the zone's L2, or null without one */
  readonly #l2: CacheL2 | null;

  constructor(d: CacheData, slot: number, workerIndex: number) {
    this.#d = d;
    this.#l2 = d.l2 === null ? null : workerL2(d.l2, workerIndex);
    this.#slot = slot;
    this.#store = l1Zone(d.zone, d.maxBytes);
    this.#flights = new Flights(d.coalesceTimeoutMs, d.passMs);
    this.#cells = new Int32Array(d.region);
    this.#row = (workerIndex % MAX_WORKERS) * ROW_CELLS;
    this.#store.gauges = this.#cells;
    this.#store.gaugeBase = this.#row + BYTES;
  }

  #count(cell: number): void {
    Atomics.add(this.#cells, this.#row + cell, 1);
  }

  // ------------------------------------------------------------------------------------------------ request side

  readonly access = (ctx: PolicyContext): HookResult => {
    const r = new CacheRequest(ctx, this);
    r.gen = purgeGeneration();
    ctx.slots[this.#slot] = r;
    const d = this.#d;
    const method = ctx.method;
    if (method !== 'GET' && method !== 'HEAD') {
      r.invalidate = UNSAFE.has(method);
      r.fwd = 'method';
      this.#count(BYPASS);
      return CONTINUE;
    }
    // a body on a GET could change the answer without being in the key
    const cl = ctx.header('content-length');
    if ((cl !== undefined && cl !== '0') || ctx.header('transfer-encoding') !== undefined) return this.#bypass(r, 'request-body');
    for (let i = 0; i < d.bypass.length; i++) if (ctx.header(d.bypass[i]) !== undefined) return this.#bypass(r, 'header');
    if (d.spec.queryMode !== 'all') {
      const drop = unkeyedParams(ctx.query, d.spec);
      if (drop !== null) for (const p of drop) ctx.removeUpstreamQueryParam(p);
    }
    const ccText = ctx.header('cache-control');
    r.reqCC = ccText !== undefined ? parseCacheControl(ccText) : ctx.header('pragma')?.toLowerCase().includes('no-cache') ? PRAGMA_NO_CACHE : null;
    r.authorized = ctx.header('authorization') !== undefined;
    r.range = ctx.header('range') !== undefined;
    r.primary = primaryKey(ctx, d.spec, d.tls);
    return this.#lookup(r, true);
  };

  #bypass(r: CacheRequest, detail: string): HookResult {
    r.fwd = 'bypass';
    r.detail = detail;
    this.#count(BYPASS);
    return CONTINUE;
  }

  #fullKey(r: CacheRequest): string {
    const vary = this.#store.varyOf(r.primary);
    if (vary === undefined) return r.primary;
    let k = r.primary;
    for (let i = 0; i < vary.length; i++) k += '\0' + varyValue(r.ctx, vary[i]);
    return k;
  }

  #lookup(r: CacheRequest, mayWait: boolean): HookResult {
    const ctx = r.ctx;
    r.full = this.#fullKey(r);
    const slot = this.#store.get(r.full);
    if (slot === undefined && this.#l2 !== null && !r.l2Tried && this.#l2.available) {
      r.l2Tried = true;
      this.#fromL2(r, this.#l2, mayWait);
      return PENDING;
    }
    const now = Date.now();
    if (slot !== undefined) {
      const use = reuse(slot.entry, slot.meta, slot.freshUntil, now, r.reqCC);
      if (use !== VALIDATE) {
        this.#count(use === USE_FRESH ? HITS : STALE);
        if (use === USE_STALE_REVALIDATE) this.#refresh(r, slot, now);
        this.#answer(r, slot, now, '');
        return RESPOND;
      }
      r.slot = slot;
      r.fwd = r.reqCC !== null && (r.reqCC.noCache || r.reqCC.maxAge >= 0) ? 'request' : 'stale';
      if (slot.meta.etag !== null || slot.meta.lastModified !== null) {
        // validate the stored response with its own validators
        r.revalidating = true;
        this.#conditional(ctx, slot);
      }
    } else {
      r.fwd = this.#store.varyOf(r.primary) !== undefined ? 'vary-miss' : 'uri-miss';
    }
    if (r.reqCC !== null && r.reqCC.onlyIfCached) {
      // RFC 9111 5.2.1.7: nothing usable is stored, and the client forbids going to the origin
      r.fwd = '';
      ctx.respondProblem('NG_ERR_CACHE_NOT_CACHED', 'no stored response can answer this request', ['cache-status', `${this.#d.name}; fwd=miss; detail=only-if-cached`]);
      return RESPOND;
    }
    this.#count(MISSES);
    r.requestTime = now;
    // a Range request that misses goes upstream as it is, and its (partial) answer is not stored
    if (r.range && !r.revalidating) {
      r.detail = 'range';
      return CONTINUE;
    }
    if (r.reqCC !== null && r.reqCC.noStore) return CONTINUE;
    if (ctx.method === 'GET') {
      r.candidate = true;
      if (this.#d.coalesce && mayWait && !r.released) {
        const lead = this.#flights.lead(r.full, now);
        if (lead === true) r.role = LEADER;
        else if (lead === false && this.#flights.join(r.full, r)) {
          r.role = WAITER;
          r.collapsed = true;
          this.#count(COALESCED);
          return PENDING;
        }
      }
    }
    return CONTINUE;
  }

  /**
   * L1 missed: the L2's entry at the primary key (for a Vary'd URI the newest variant, which names the fields), and
   * when this request needs another variant, that one too; whatever came back goes into L1, then the lookup runs
   * again and finds it there (or misses, and goes on as before: coalescing, upstream).
   */
  #fromL2(r: CacheRequest, l2: CacheL2, mayWait: boolean): void {
    const land = (e: StoredEntry | null, meta: CacheMeta | null) => {
      if (e === null || meta === null || purgeGeneration() !== r.gen) return false;
      return this.#store.set(r.primary, e, meta) !== null;
    };
    l2.get(r.primary)
      .then((e) => {
        const meta = e === null ? null : metaOf(e);
        if (meta === null || meta.vary.length === 0) return land(e, meta);
        let want = r.primary;
        for (let i = 0; i < meta.vary.length; i++) want += '\0' + varyValue(r.ctx, meta.vary[i]);
        const have = land(e, meta);
        if (want === r.primary + '\0' + meta.varyValues.join('\0')) return have;
        return l2.get(want).then((v) => land(v, v === null ? null : metaOf(v)));
      })
      // l2.get never rejects; anything else that fails here makes it a miss, never a request left waiting
      .catch(() => false)
      .then((landed) => {
        const ctx = r.ctx;
        if (ctx.aborted) return;
        if (landed) {
          r.fromL2 = true;
          this.#store.publish();
        }
        const res = this.#lookup(r, mayWait);
        if (res !== PENDING) ctx.resume(res);
      });
  }

  /** Writes an entry to the L2 (fire and forget) for as long as the cache could use it: freshness + stale windows. */
  #toL2(r: CacheRequest, key: string, entry: StoredEntry, meta: CacheMeta): void {
    const l2 = this.#l2;
    if (l2 === null || purgeGeneration() !== r.gen) return;
    const ttl = freshUntil(entry, meta) - Date.now() + Math.max(meta.swrMs, meta.sieMs);
    if (ttl >= 1) l2.set(key, entry, ttl, meta.tags);
  }

  /** A waiter's leader is done (or its wait timed out): look again, or go upstream; never wait a second time. */
  woken(r: CacheRequest, stored: boolean): void {
    const ctx = r.ctx;
    if (ctx.aborted) return;
    r.released = true;
    r.role = NONE;
    if (stored) {
      const res = this.#lookup(r, false);
      ctx.resume(res === RESPOND ? RESPOND : CONTINUE);
    } else ctx.resume(CONTINUE);
  }

  /** Answers from a stored response: 304 for a matching conditional request, else the stored status and body. */
  #answer(r: CacheRequest, slot: Slot, now: number, fwd: string): void {
    const ctx = r.ctx;
    const e = slot.entry;
    const m = slot.meta;
    r.hit = true;
    const age = Math.floor(currentAgeMs(e, m, now) / 1000);
    const ttl = Math.floor((slot.freshUntil - now) / 1000);
    const status = fwd === '' ? `${this.#d.name}; hit; ttl=${ttl}${r.collapsed ? '; collapsed' : ''}${r.fromL2 ? '; detail=l2' : ''}` : `${this.#d.name}; ${fwd}; ttl=${ttl}`;
    const inm = ctx.header('if-none-match');
    const ims = ctx.header('if-modified-since');
    if ((inm !== undefined || ims !== undefined) && e.status === 200 && notModified(m, inm, ims, e)) {
      const h: string[] = [];
      for (let i = 0; i < e.headers.length; i += 2) if (FIELDS_304.has(e.headers[i])) h.push(e.headers[i], e.headers[i + 1]);
      h.push('age', String(age), 'cache-status', status);
      ctx.respond(304, h);
      return;
    }
    const h = e.headers.slice();
    h.push('age', String(age), 'cache-status', status);
    if (r.range && this.#d.ranges && e.status === 200 && ctx.method === 'GET' && ifRangeMatches(ctx.header('if-range'), m)) {
      // RFC 9110 14: one byte range of the stored full response; the stored response itself is never a 206
      const size = e.body.byteLength;
      const range = byteRange(ctx.header('range')!, size);
      if (range === UNSATISFIABLE) {
        h.push('content-range', `bytes */${size}`);
        ctx.respond(416, h, '');
        return;
      }
      if (range !== null) {
        h.push('content-range', `bytes ${range[0]}-${range[1]}/${size}`);
        ctx.respond(206, h, e.body.subarray(range[0], range[1] + 1));
        return;
      }
    }
    if (ctx.method === 'HEAD') {
      h.push('content-length', String(e.body.byteLength));
      ctx.respond(e.status, h);
    } else if (e.body.byteLength === 0) ctx.respond(e.status, h, e.status === 204 || e.status === 304 ? undefined : '');
    else ctx.respond(e.status, h, e.body);
  }

  // ------------------------------------------------------------------------------------------------ response side

  /** The upstream answered (ctx.status) or failed (status 0): a revalidation's 304, or stale-if-error. */
  readonly answer = (ctx: PolicyContext): boolean => {
    const r = ctx.slots[this.#slot] as CacheRequest | undefined;
    if (r === undefined || r.hit || r.slot === null) return false;
    const st = ctx.status;
    const now = Date.now();
    if (st === 304 && r.revalidating) {
      const old = r.slot;
      const slot = this.revalidated(r, old, ctx.responseHeaders(), now, httpDate(ctx.responseDate));
      this.#land(r, slot !== null);
      this.#answer(r, slot ?? old, now, 'fwd=stale; fwd-status=304');
      return true;
    }
    if ((st === 0 || st === 500 || st === 502 || st === 503 || st === 504) && usableOnError(r.slot.meta, r.slot.freshUntil, now)) {
      this.#count(STALE_ERROR);
      this.#land(r, false);
      this.#answer(r, r.slot, now, `fwd=stale; fwd-status=${st === 0 ? 503 : st}; detail=stale-if-error`);
      return true;
    }
    return false;
  };

  /**
   * A 304 to a revalidation: the stored headers are updated with the 304's (RFC 9111 4.3.4) and the freshness is
   * decided again. Returns the new slot, or null when the response is no longer storable (it is then removed).
   */
  revalidated(r: CacheRequest, old: Slot, from304: readonly string[], now: number, date = NaN): Slot | null {
    const updated = updatedHeaders(old.entry.headers, storedFields(from304, []));
    // the updated Cache-Control may name fields (no-cache="set-cookie") that are then no longer kept
    const headers = unstoredFields(updated) === null ? updated : storedFields(updated);
    // the stored Age is not kept: the 304's own Age (if any) is the new initial age
    const age = field304(from304, 'age');
    const meta = storable(this.#d.settings, { method: 'GET', cc: r.reqCC ?? NO_CC, authorized: r.authorized }, old.entry.status, age === undefined ? headers : [...headers, 'age', age], r.requestTime, now, date, (n) => varyValue(r.ctx, n));
    this.#count(REVALIDATED);
    if (typeof meta === 'string') {
      this.#store.delete(old.key);
      this.#store.publish();
      return null;
    }
    const entry: StoredEntry = { status: old.entry.status, headers, body: old.entry.body, storedAt: now, meta: meta as unknown as Record<string, unknown> };
    // a purge came while the validation was on its way: the entry it refreshes is gone, and stays gone
    if (purgeGeneration() !== r.gen) return null;
    const slot = this.#store.set(r.primary, entry, meta);
    this.#store.publish();
    this.#toL2(r, old.key, entry, meta);
    return slot;
  }

  /** The freshness and the fields to store of a response head, or why it is not stored. */
  decide(r: CacheRequest, status: number, all: readonly string[], length: number, now: number, date = NaN): { meta: CacheMeta; fields: string[] } | string {
    const meta = storable(this.#d.settings, { method: 'GET', cc: r.reqCC ?? NO_CC, authorized: r.authorized }, status, all, r.requestTime, now, date, (n) => varyValue(r.ctx, n));
    if (typeof meta === 'string') return meta;
    if (length > this.#d.maxObjectBytes) return 'too-large';
    return { meta, fields: storedFields(all) };
  }

  /** Puts a complete response into the store; true when it is there. */
  put(r: CacheRequest, status: number, headers: string[], body: Uint8Array, storedAt: number, meta: CacheMeta): boolean {
    // a purge came while this response was on its way: it may be what the purge removed, so it is not stored
    if (purgeGeneration() !== r.gen) return false;
    const entry: StoredEntry = { status, headers, body, storedAt, meta: meta as unknown as Record<string, unknown> };
    const slot = this.#store.set(r.primary, entry, meta);
    if (slot !== null) this.#count(STORES);
    this.#store.publish();
    this.#toL2(r, meta.vary.length === 0 ? r.primary : r.primary + '\0' + meta.varyValues.join('\0'), entry, meta);
    return slot !== null;
  }

  get maxObjectBytes(): number {
    return this.#d.maxObjectBytes;
  }

  /** Ends a background refresh's flight. */
  landRefresh(key: string, stored: boolean): void {
    if (stored) this.#flights.forget(key);
    this.#flights.land(key, stored, Date.now());
  }

  /**
   * stale-while-revalidate: the stale answer goes out now, and one request per key refreshes the entry in the
   * background (conditional when the entry has validators). A second stale hit while it runs does not send another.
   */
  #refresh(r: CacheRequest, slot: Slot, now: number): void {
    if (this.#flights.lead(r.full, now) !== true) return;
    const ctx = r.ctx;
    r.slot = slot;
    r.requestTime = now;
    this.#conditional(ctx, slot);
    if (!ctx.refresh(new RefreshSink(this, r, slot))) this.#flights.land(r.full, false, now);
  }

  /** The request goes upstream conditional on the stored validators (the client's own conditionals are ours to answer). */
  #conditional(ctx: PolicyContext, slot: Slot): void {
    for (const h of ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range', 'range']) ctx.removeUpstreamHeader(h);
    if (slot.meta.etag !== null) ctx.setUpstreamHeader('if-none-match', slot.meta.etag);
    if (slot.meta.lastModified !== null) ctx.setUpstreamHeader('if-modified-since', slot.meta.lastModified);
  }

  readonly response = (ctx: PolicyContext): void => {
    const r = ctx.slots[this.#slot] as CacheRequest | undefined;
    if (r === undefined || r.hit) return;
    const d = this.#d;
    const status = ctx.status;
    if (r.invalidate) {
      if (status >= 200 && status < 400 && ctx.errorCode === null) this.#invalidate(ctx);
      ctx.addResponseHeader('cache-status', `${d.name}; fwd=method`);
      return;
    }
    if (r.fwd === '') return; // answered by this policy already (only-if-cached)
    let stored = false;
    if (r.candidate && ctx.errorCode === null && status > 0) {
      const now = Date.now();
      const decided = this.decide(r, status, ctx.responseHeaders(), ctx.responseLength, now, httpDate(ctx.responseDate));
      if (typeof decided === 'string') {
        r.detail = decided;
        this.#land(r, false);
      } else {
        r.meta = decided.meta;
        r.headers = decided.fields;
        r.status = status;
        r.responseTime = now;
        stored = true;
        // no body follows (204, a zero length): stored now; else by the body filter at the body's end
        if (ctx.responseLength === 0 || status === 204) this.store(r, new Uint8Array(0));
      }
    }
    let cs = `${d.name}; fwd=${r.fwd}`;
    if (status > 0 && ctx.errorCode === null) cs += `; fwd-status=${status}`;
    if (stored) cs += '; stored';
    if (r.collapsed) cs += '; collapsed';
    if (r.detail !== '') cs += `; detail=${r.detail}`;
    ctx.addResponseHeader('cache-status', cs);
  };

  readonly responseBody = (ctx: PolicyContext): ResponseBodyFilter | null => {
    const r = ctx.slots[this.#slot] as CacheRequest | undefined;
    if (r === undefined || r.meta === null || r.hit) return null;
    return new StoreFilter(r, this.#d.maxObjectBytes, ctx.responseLength);
  };

  readonly log = (ctx: PolicyContext): void => {
    const r = ctx.slots[this.#slot] as CacheRequest | undefined;
    if (r !== undefined && r.role === LEADER && !r.landed) this.#land(r, false);
  };

  /** The body filter's end: the response goes into the store. */
  store(r: CacheRequest, body: Uint8Array): void {
    const meta = r.meta;
    if (meta === null) return;
    r.meta = null;
    const stored = this.put(r, r.status, r.headers!, body, r.responseTime, meta);
    this.#flights.forget(r.full);
    this.#land(r, stored);
  }

  dropped(r: CacheRequest, _why: string): void {
    r.meta = null;
    this.#land(r, false);
  }

  #land(r: CacheRequest, stored: boolean): void {
    if (r.role !== LEADER || r.landed) return;
    r.landed = true;
    this.#flights.land(r.full, stored, Date.now());
  }

  /** RFC 9111 4.4: a successful unsafe request invalidates the target URI and same-origin Location / Content-Location. */
  #invalidate(ctx: PolicyContext): void {
    const d = this.#d;
    const host = normalizeHost(ctx.hostHeader, d.tls);
    const keys = [primaryKey(keyView(ctx), { ...d.spec, consumer: false, plan: false, headers: [] }, d.tls)];
    for (const name of ['location', 'content-location']) {
      const v = ctx.responseHeader(name);
      if (v === undefined) continue;
      const k = sameOriginKey(v, host, d.tls);
      if (k !== null) keys.push(k);
    }
    for (const k of keys) {
      // every variant and every consumer's copy of the URI, here and (through the control plane) in the other workers
      this.#store.purgeKey(k);
      this.#flights.forget(k);
      broadcastPurge('key', k);
    }
    this.#store.publish();
  }
}

const NO_CC = parseCacheControl('');

function field304(list: readonly string[], lower: string): string | undefined {
  for (let i = 0; i < list.length; i += 2) if (list[i].toLowerCase() === lower) return list[i + 1];
  return undefined;
}

function keyView(ctx: PolicyContext) {
  return { method: ctx.method, path: ctx.path, query: ctx.query, hostHeader: ctx.hostHeader, consumerId: null, consumerPlan: null, header: () => undefined };
}

/** The cache key of a Location / Content-Location value when it names the same origin (RFC 9111 4.4), else null. */
function sameOriginKey(value: string, host: string, tls: boolean): string | null {
  let url: URL;
  try {
    url = new URL(value, `${tls ? 'https' : 'http'}://${host}`);
  } catch {
    return null;
  }
  if (normalizeHost(url.host, tls) !== host) return null;
  return 'GET ' + host + normalizeEscapes(url.pathname) + (url.search.length > 1 ? url.search : '');
}

/**
 * The response fields as stored: names lower-case, per-client and regenerated fields left out, and the fields its
 * Cache-Control names in no-cache="..." or private="..." (`cc`, the Cache-Control that decides: the response's, or
 * after a 304 the updated one).
 */
function storedFields(list: readonly string[], cc: readonly string[] = list): string[] {
  const named = unstoredFields(cc);
  const out: string[] = [];
  for (let i = 0; i < list.length; i += 2) {
    const n = list[i].toLowerCase();
    if (!NOT_STORED_FIELDS.has(n) && (named === null || !named.includes(n))) out.push(n, list[i + 1]);
  }
  return out;
}

/** Every cache policy of the config with its zone, for the zone checks (a zone has one size). */
function cachePolicies(config: unknown): { where: string; cfg: CacheConfig }[] {
  const c = config as { policies?: { cache?: CacheConfig }; routes?: { name?: string; policies?: { cache?: CacheConfig } }[] };
  const out: { where: string; cfg: CacheConfig }[] = [];
  if (c?.policies?.cache) out.push({ where: 'policies.cache', cfg: c.policies.cache });
  (c?.routes ?? []).forEach((r, i) => {
    if (r.policies?.cache) out.push({ where: `routes[${i}].policies.cache`, cfg: r.policies.cache });
  });
  return out;
}

/** The route of this cache has a transform of response bodies (its own, or the global one it inherits). */
function transformsResponses(cc: CompileContext): boolean {
  type T = { response?: { body?: unknown }; versions?: unknown } | undefined;
  const c = cc.config as { policies?: { transform?: T }; routes?: { name?: string; policies?: { transform?: T } }[] } | null;
  const route = cc.routeName === null ? undefined : c?.routes?.find((r) => r.name === cc.routeName);
  const t = route?.policies?.transform ?? c?.policies?.transform;
  return t !== undefined && t !== null && (t.response?.body !== undefined || t.versions !== undefined);
}

/** The L2 namespace a cache policy's config uses, or null without an L2. */
function namespaceOf(cfg: CacheConfig): string | null {
  return cfg.l2 === undefined ? null : cfg.l2.namespace ?? cfg.zone ?? 'default';
}

/**
 * cache.l2 resolved with the top-level redis: section. A zone is one store in each worker, so it has one L2 (or
 * none) wherever it is used; a namespace belongs to one zone (two zones in one namespace would read each other's
 * entries under the same keys).
 */
function compileL2(config: CacheConfig, cc: CompileContext): L2Data | null {
  const ns = namespaceOf(config);
  for (const other of cachePolicies(cc.config)) {
    const zone = other.cfg.zone ?? 'default';
    const theirs = namespaceOf(other.cfg);
    if (zone === config.zone && theirs !== ns) {
      throw new PolicyConfigError('l2', `zone "${config.zone}" has ${ns === null ? 'no L2' : `L2 namespace "${ns}"`} here and ${theirs === null ? 'no L2' : `namespace "${theirs}"`} at ${other.where}`, 'a zone is one store: give it the same l2 block wherever it is used, or use another zone name');
    }
    if (ns !== null && theirs === ns && zone !== config.zone) {
      throw new PolicyConfigError('l2.namespace', `L2 namespace "${ns}" is used by zone "${config.zone}" here and by zone "${zone}" at ${other.where}`, 'give each zone its own namespace (the default is the zone name)');
    }
  }
  if (config.l2 === undefined || ns === null) return null;
  const redis = (cc.config as { redis?: RedisConfig } | null)?.redis;
  if (redis === undefined) {
    throw new PolicyConfigError('l2', 'the L2 lives in Redis, but the config has no top-level redis: section', 'add redis: { url: redis://127.0.0.1:6379 } or remove l2');
  }
  const l2 = config.l2;
  return {
    redis,
    namespace: ns,
    timeoutMs: l2.timeoutMs,
    compression: l2.compression,
    compressAboveBytes: l2.compressAboveBytes,
    maxBodyBytes: l2.maxBodyBytes,
    purgeAckTimeoutMs: l2.purgeAckTimeoutMs,
    region: cc.shared(`cache-l2:${ns}`, L2_REGION_BYTES),
  };
}

export const cachePolicy: PolicyModule<CacheConfig, CacheData> = {
  name: 'cache',
  // after authentication, authorization and rate limits (a hit is still counted and checked); as a body filter
  // nearer the upstream than transform and compression (see PRIORITY.cache)
  priority: PRIORITY.cache,
  schema: CacheSchema,
  description: 'RFC 9111 shared response cache: per-worker L1, request coalescing, purge by key, prefix or tag',
  compile(config, cc: CompileContext) {
    if (config.maxObjectBytes > config.maxBytes) {
      throw new PolicyConfigError('maxObjectBytes', `${config.maxObjectBytes} is larger than maxBytes (${config.maxBytes}): no such response could be stored`, 'make maxObjectBytes at most maxBytes');
    }
    for (const other of cachePolicies(cc.config)) {
      const zone = other.cfg.zone ?? 'default';
      const bytes = other.cfg.maxBytes ?? 67_108_864;
      if (zone === config.zone && bytes !== config.maxBytes) {
        throw new PolicyConfigError('maxBytes', `zone "${config.zone}" has maxBytes ${config.maxBytes} here and ${bytes} at ${other.where}`, 'a zone is one store: give it one size, or use another zone name');
      }
    }
    const l2 = compileL2(config, cc);
    const lowerHeaders = config.key.headers.map((h) => h.toLowerCase());
    if ((config.key.query === 'include' || config.key.query === 'exclude') && config.key.params.length === 0) {
      throw new PolicyConfigError('key.params', `key.query is "${config.key.query}" but no params are named`, 'list the parameter names, or use query: all / none');
    }
    const listen = (cc.config as { listen?: { tls?: unknown } } | null)?.listen;
    return {
      zone: config.zone,
      maxBytes: config.maxBytes,
      maxObjectBytes: config.maxObjectBytes,
      settings: {
        heuristic: config.heuristic.enabled,
        heuristicFraction: config.heuristic.fraction,
        heuristicMaxMs: config.heuristic.maxSeconds * 1000,
        defaultTtlMs: config.ttl * 1000,
        staleIfErrorMs: config.staleIfError * 1000,
        staleWhileRevalidateMs: config.staleWhileRevalidate * 1000,
        tagHeader: config.tagHeader === null ? null : config.tagHeader.toLowerCase(),
        storeSetCookie: config.setCookie === 'store',
      },
      spec: { consumer: config.key.consumer, plan: config.key.plan, headers: lowerHeaders, queryMode: config.key.query, params: config.key.params, sortQuery: config.key.sortQuery },
      tls: listen?.tls !== undefined && listen?.tls !== null,
      coalesce: config.coalesce.enabled,
      coalesceTimeoutMs: config.coalesce.timeoutMs,
      passMs: config.coalesce.passSeconds * 1000,
      bypass: config.bypassHeaders.map((h) => h.toLowerCase()).filter((h) => !lowerHeaders.includes(h)),
      name: config.name,
      region: cc.shared(`zone:${config.zone}`, REGION_BYTES),
      l2,
      ranges: !transformsResponses(cc),
    };
  },
  create(data, env) {
    return new CacheHooks(data, env.slot, env.workerIndex);
  },
};

export { META_VERSION };
export type { NotStored };

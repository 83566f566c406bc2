import { createHmac, timingSafeEqual } from 'node:crypto';
import type { PlanTargetRule, PlanTraffic } from './compile.js';
import { SCHEDULE_SLOTS, SplitState } from './split-state.js';
import type { ConsumerLookup } from '../identity/consumers.js';

/**
 * A worker's runtime of one route's `traffic`: which version a request goes to, and the record of how it went.
 * Built once per plan and route (src/worker/runtime.ts); `pick` runs once per request, after the access phase
 * (the consumer is known), from Exchange.start. Order of the decision:
 *
 *   1. targeting rules, first match wins (a header value, the consumer's id, plan, roles or subscription)
 *   2. the affinity cookie, when it is ours (signature), not expired, and names a version that has weight
 *   3. stickiness: a hash of the key (consumer, header, cookie, client address) into 0..999, mapped by cumulative
 *      weight ranges in config order, so raising the last version 5 % -> 25 % moves only the keys of the new range
 *   4. the schedule: slot (shared counter mod 1000) of a 1000-slot smooth-weighted-round-robin table
 *
 * Steps 3 and 4 read per-mille weights the control plane writes into the shared region; both tables are rebuilt
 * here when the region's generation changes (a rollout step, an admin PUT, a reload with new weights), not per
 * request. A decision by 3 or 4 sets the affinity cookie when one is configured and the request had none valid.
 */

/** What pick reads of a request (the Exchange). */
export interface SplitRequest {
  header(name: string): string | undefined;
  readonly clientIp: string;
  readonly consumerId: string | null;
  readonly consumerIndex: number;
  readonly consumerPlan: string | null;
  readonly roles: readonly string[] | null;
  addResponseHeader(name: string, value: string): void;
}

/** How a version was chosen, for tests and the admin API's wording. */
export const BY_TARGETING = 1, BY_AFFINITY = 2, BY_STICKY = 3, BY_WEIGHT = 4;

/** Verified affinity cookies kept per worker, so a returning client costs a map lookup rather than an HMAC. */
const VERIFIED_CACHE_MAX = 4096;

export class TrafficSplit {
  readonly plan: PlanTraffic;
  readonly state: SplitState;
  readonly names: readonly string[];
  /** the upstream runtime of each version (plan order); the caller's type */
  readonly upstreams: readonly unknown[];
  /** the handler must copy request facts (a header, a cookie or the address is read) */
  readonly needsFacts: boolean;
  /** how the last pick decided (BY_*): read right after pick() */
  lastBy = 0;

  /** schedule slot -> version, and sticky hash bucket -> version; Uint8Array: at most 16 versions */
  readonly #schedule = new Uint8Array(SCHEDULE_SLOTS);
  readonly #ranges = new Uint8Array(SCHEDULE_SLOTS);
  readonly #weights: Int32Array;
  #generation = -1;
  readonly #targeting: readonly PlanTargetRule[] | null;
  readonly #lookup: ConsumerLookup | null;
  readonly #sticky: number;
  readonly #stickyName: string;
  // affinity
  readonly #cookie: string | null;
  readonly #cookiePrefix: string;
  readonly #ttl: number;
  readonly #secret: Buffer | null;
  readonly #routeName: string;
  readonly #cookieAttrs: string;
  readonly #verified = new Map<string, number>();
  /** the signed cookie value per version and the second it expires at, reused for assignments in the same second */
  readonly #signed: string[];
  readonly #signedExp: number[];

  constructor(plan: PlanTraffic, routeName: string, upstreams: readonly unknown[], lookup: ConsumerLookup | null, tls: boolean) {
    this.plan = plan;
    this.state = new SplitState(plan.region, plan.versions.length);
    this.names = plan.versions.map((v) => v.name);
    this.upstreams = upstreams;
    this.#weights = new Int32Array(plan.versions.length);
    this.#targeting = plan.targeting;
    this.#lookup = lookup;
    const s = plan.sticky;
    this.#sticky = s === null ? 0 : s.by === 'consumer' ? STICKY_CONSUMER : s.by === 'header' ? STICKY_HEADER : s.by === 'cookie' ? STICKY_COOKIE : STICKY_IP;
    this.#stickyName = s?.name ?? '';
    const a = plan.affinity;
    this.#cookie = a?.cookie ?? null;
    this.#cookiePrefix = a === null ? '' : a.cookie + '=';
    this.#ttl = a?.ttlSeconds ?? 0;
    this.#secret = a === null ? null : Buffer.from(a.secret);
    this.#routeName = routeName;
    this.#cookieAttrs = a === null ? '' : `; Path=/; Max-Age=${a.ttlSeconds}; HttpOnly; SameSite=Lax${tls ? '; Secure' : ''}`;
    this.#signed = this.names.map(() => '');
    this.#signedExp = this.names.map(() => 0);
    this.needsFacts =
      this.#sticky === STICKY_HEADER || this.#sticky === STICKY_COOKIE || this.#sticky === STICKY_IP || a !== null || (plan.targeting ?? []).some((r) => r.kind === 'header');
    this.#refresh(true);
  }

  /** The version (index into names/upstreams) for this request. */
  pick(req: SplitRequest): number {
    const g = this.state.generation();
    if (g !== this.#generation) this.#refresh(false);
    const rules = this.#targeting;
    if (rules !== null) {
      for (let i = 0; i < rules.length; i++) {
        if (this.#matches(rules[i], req)) {
          this.lastBy = BY_TARGETING;
          return rules[i].version;
        }
      }
    }
    let cookieHeader: string | undefined;
    if (this.#cookie !== null) {
      cookieHeader = req.header('cookie');
      if (cookieHeader !== undefined) {
        const v = this.#affinityVersion(cookieHeader);
        if (v >= 0) {
          this.lastBy = BY_AFFINITY;
          return v;
        }
      }
    }
    let v = -1;
    if (this.#sticky !== 0) {
      const b = this.#stickyBucket(req);
      if (b >= 0) {
        v = this.#ranges[b];
        this.lastBy = BY_STICKY;
      }
    }
    if (v < 0) {
      v = this.#schedule[this.state.nextSlot()];
      this.lastBy = BY_WEIGHT;
    }
    if (this.#cookie !== null) req.addResponseHeader('set-cookie', this.#cookieValue(v));
    return v;
  }

  /** A request that went to version `v` ended. */
  record(v: number, status: number, error: boolean, latencyUs: number): void {
    this.state.record(v, status, latencyUs, error);
  }

  // ------------------------------------------------------------------ tables

  /** Rebuilds the schedule and the sticky ranges from the region's weights (only when its generation moved). */
  #refresh(first: boolean): void {
    const w = this.#weights;
    const g = this.state.readWeights(w);
    if (g < 0) {
      // a write is under way: keep the tables (the first build falls back to the configured weights)
      if (!first) return;
      for (let v = 0; v < w.length; v++) w[v] = this.plan.weights[v];
    }
    let sum = 0;
    for (let v = 0; v < w.length; v++) sum += w[v];
    if (sum <= 0) {
      // a region nothing has written to yet: the configured weights
      for (let v = 0; v < w.length; v++) w[v] = this.plan.weights[v];
      sum = SCHEDULE_SLOTS;
    }
    buildSchedule(w, sum, this.#schedule);
    buildRanges(w, sum, this.#ranges);
    this.#generation = g;
  }

  // ------------------------------------------------------------------ targeting

  #matches(r: PlanTargetRule, req: SplitRequest): boolean {
    if (r.kind === 'header') return req.header(r.name) === r.value;
    const id = req.consumerId;
    if (id === null) return false;
    if (r.ids !== null && r.ids.includes(id)) return true;
    if (r.plans !== null && req.consumerPlan !== null && r.plans.includes(req.consumerPlan)) return true;
    if (r.roles !== null && req.roles !== null) {
      const have = req.roles;
      for (let i = 0; i < have.length; i++) if (r.roles.includes(have[i])) return true;
    }
    if (r.subscription !== null && req.consumerIndex >= 0 && this.#lookup !== null) {
      const s = r.subscription;
      return s.environment === null ? this.#lookup.subscribed(req.consumerIndex, s.api) : this.#lookup.subscribed(req.consumerIndex, s.api, s.environment);
    }
    return false;
  }

  // ------------------------------------------------------------------ stickiness

  /** The key's bucket 0..999, or -1 when the request has no key. */
  #stickyBucket(req: SplitRequest): number {
    switch (this.#sticky) {
      case STICKY_CONSUMER: {
        const id = req.consumerId;
        return id === null ? -1 : bucketOf(id, 0, id.length);
      }
      case STICKY_HEADER: {
        const v = req.header(this.#stickyName);
        return v === undefined || v.length === 0 ? -1 : bucketOf(v, 0, v.length);
      }
      case STICKY_IP: {
        const ip = req.clientIp;
        return ip.length === 0 ? -1 : bucketOf(ip, 0, ip.length);
      }
      case STICKY_COOKIE: {
        const c = req.header('cookie');
        if (c === undefined) return -1;
        const start = cookieStart(c, this.#stickyName);
        if (start < 0) return -1;
        const end = cookieEnd(c, start);
        return end === start ? -1 : bucketOf(c, start, end);
      }
    }
    return -1;
  }

  // ------------------------------------------------------------------ affinity

  /** The version named by a valid affinity cookie in the Cookie header, else -1 (forged, expired, unknown, weight 0). */
  #affinityVersion(cookies: string): number {
    const start = cookieStart(cookies, this.#cookie!);
    if (start < 0) return -1;
    const value = cookies.slice(start, cookieEnd(cookies, start));
    const now = Math.floor(Date.now() / 1000);
    const known = this.#verified.get(value);
    let v: number, exp: number;
    if (known !== undefined) {
      v = known % 16;
      exp = (known - v) / 16;
    } else {
      // version names may hold dots (v2.1.0): the expiry and the signature are the last two fields
      const d2 = value.lastIndexOf('.');
      const d1 = d2 <= 0 ? -1 : value.lastIndexOf('.', d2 - 1);
      if (d1 < 0) return -1;
      v = this.names.indexOf(value.slice(0, d1));
      exp = Number(value.slice(d1 + 1, d2));
      if (v < 0 || !Number.isInteger(exp)) return -1;
      const given = Buffer.from(value.slice(d2 + 1), 'base64url');
      const want = this.#sign(v, exp);
      if (given.length !== want.length || !timingSafeEqual(given, want)) return -1;
      if (this.#verified.size >= VERIFIED_CACHE_MAX) this.#verified.clear();
      this.#verified.set(value, exp * 16 + v);
    }
    if (exp < now) return -1;
    // a version the weights have taken to 0 (a rollback) no longer holds its clients
    if (this.#weights[v] === 0) return -1;
    return v;
  }

  #sign(v: number, exp: number): Buffer {
    // the route name is signed too: a cookie of another route's split does not pass here
    return createHmac('sha256', this.#secret!).update(`${this.#routeName}\n${this.names[v]}\n${exp}`).digest();
  }

  /** The Set-Cookie value for an assignment to `v`: signed once per version and second, not per request. */
  #cookieValue(v: number): string {
    const exp = Math.floor(Date.now() / 1000) + this.#ttl;
    if (this.#signedExp[v] !== exp) {
      this.#signed[v] = `${this.#cookiePrefix}${this.names[v]}.${exp}.${this.#sign(v, exp).toString('base64url')}${this.#cookieAttrs}`;
      this.#signedExp[v] = exp;
    }
    return this.#signed[v];
  }
}

const STICKY_CONSUMER = 1, STICKY_HEADER = 2, STICKY_COOKIE = 3, STICKY_IP = 4;

/**
 * A key's bucket 0..999: FNV-1a over the UTF-16 code units of s[start, end) (no substring, no allocation), then
 * murmur3's finaliser so that the low digits the modulo keeps depend on every character.
 */
export function bucketOf(s: string, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) % SCHEDULE_SLOTS;
}

/** Where the value of cookie `name` starts in a Cookie header (RFC 6265 5.4: "a=1; b=2"), or -1. */
export function cookieStart(header: string, name: string): number {
  let from = 0;
  for (;;) {
    const at = header.indexOf(name, from);
    if (at < 0) return -1;
    const after = at + name.length;
    const before = at === 0 ? 32 : header.charCodeAt(at - 1);
    // at the start, or after "; " (or ";"), and followed by "="
    if ((at === 0 || before === 32 || before === 59) && header.charCodeAt(after) === 61) return after + 1;
    from = at + 1;
  }
}

/** The end (exclusive) of a cookie value that starts at `start`. */
export function cookieEnd(header: string, start: number): number {
  const semi = header.indexOf(';', start);
  let end = semi < 0 ? header.length : semi;
  while (end > start && header.charCodeAt(end - 1) === 32) end--;
  return end;
}

/**
 * Smooth weighted round robin (nginx's) over one period of SCHEDULE_SLOTS picks: each version gets exactly its
 * weight's share of the slots, spread evenly, so any run of consecutive slots (cyclically) is as close to the
 * weights as whole requests allow. Ties go to the earlier version.
 */
export function buildSchedule(weights: ArrayLike<number>, sum: number, out: Uint8Array): void {
  const n = weights.length;
  const current = new Float64Array(n);
  for (let s = 0; s < out.length; s++) {
    let best = -1;
    for (let v = 0; v < n; v++) {
      if (weights[v] <= 0) continue;
      current[v] += (weights[v] * out.length) / sum;
      if (best < 0 || current[v] > current[best]) best = v;
    }
    current[best] -= out.length;
    out[s] = best;
  }
}

/** Sticky ranges: bucket b belongs to the version whose cumulative range (config order) holds it. */
export function buildRanges(weights: ArrayLike<number>, sum: number, out: Uint8Array): void {
  let v = 0;
  let upTo = (weights[0] * out.length) / sum;
  for (let b = 0; b < out.length; b++) {
    while (b >= upTo && v < weights.length - 1) {
      v++;
      upTo += (weights[v] * out.length) / sum;
    }
    out[b] = v;
  }
}

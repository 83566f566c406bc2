import type { PlanUpstream } from '../config/plan.js';
import type { ErrorCode } from '../errors/codes.js';
import type { UpstreamConnection, UpstreamExchange } from '../upstream/exchange.js';
import { H1Pool, type PoolSettings } from '../upstream/h1-pool.js';
import { UndiciNodePool } from '../upstream/undici-pool.js';
import { H2NodePool } from '../upstream/h2-pool.js';
import { BODY_NONE } from '../upstream/h1-parse.js';
import { clock } from '../shared/clock.js';
import { checkHeaders, checkQuery, type MatchInput, type NodePool } from '../worker/runtime.js';
import type { PlanMirror } from './mirror-compile.js';
import { M_DROPPED_FULL, M_ERROR, M_IN_FLIGHT, M_OK, M_SAMPLER, M_SENT, M_SKIPPED_BODY, M_SKIPPED_MATCH, M_TIMEOUT } from './mirror-layout.js';

/**
 * Request mirroring on the worker: a copy of a sampled share of a route's requests goes to a shadow upstream, and
 * its answer is read and dropped. The copy is a fire-and-forget client of its own, apart from everything the real
 * request touches:
 *
 *   Exchange.start ── dispatch to the route's pool ──> the real request (unchanged)
 *        └── MirrorRoute.offer ── queue ── setImmediate ──> MirrorPools (own H1Pool per shadow node) ──> dropped
 *
 * - Not on the client's path: the copy is only queued when the real request has been handed to its pool, and sent
 *   from one setImmediate per event-loop turn, after that turn's real writes (h1-pool.ts flushes its pipelined
 *   batches in a setImmediate scheduled earlier, so those leave first too).
 * - No effect on the real request: copies use pools of their own (even when the shadow upstream is the route's own
 *   upstream), never an Attempt, so the cluster (health, outlier detection, circuit breakers, retry budget, in-flight
 *   counts, balancer) and the route's metrics never hear of them. Their failures end in a counter.
 * - Bounded: at most maxInFlight copies per route and worker (beyond it the copy is dropped and counted), each
 *   abandoned after timeoutMs; a body is copied only when the gateway held it whole anyway (no extra buffering).
 * - Sampling is a schedule, not a draw: a counter shared by the workers (mirror-layout.ts SAMPLER) numbers the
 *   matching requests, and request k is copied when floor((k+1)·p/1000) > floor(k·p/1000) for p in tenths of a
 *   percent, so every 1000 consecutive matching requests of the gateway hold exactly p copies.
 * - Off costs nothing: a route without `mirror` has RouteRuntime.mirror === null, one null check in the handler and
 *   one in Exchange.start.
 */

/** What a copy is made of, taken from the Exchange at its first dispatch (implemented by worker/exchange.ts). */
export interface MirrorSource {
  readonly headLine: string;
  readonly hostLine: string | null;
  readonly upstreamExtra: string;
  readonly headRest: string;
  readonly isHeadRequest: boolean;
  readonly requestBodyKind: number;
  readonly idempotent: boolean;
  readonly clientBodyDone: boolean;
  readonly bodyBytes: number;
}

/** The shadow upstream's pools for copies on one worker: one pool per node, never shared with real traffic. */
export class MirrorPools {
  readonly name: string;
  readonly urls: readonly string[];
  readonly protocol: PlanUpstream['protocol'];
  readonly maxConcurrentStreams: number;
  readonly pools: NodePool[];
  /** "host: node:port\r\n" per node, for routes with hostHeader: upstream */
  readonly hostLines: readonly string[];
  /** nodes with a weight above 0, taken in turn (the shadow cluster's balancer is not consulted) */
  readonly #order: Int32Array;
  #next = 0;

  constructor(u: PlanUpstream) {
    this.name = u.name;
    this.urls = u.nodes.map((n) => n.url);
    // Pipelining off: a copy never shares a connection, so a slow shadow answer holds back nothing but itself.
    const settings: PoolSettings = { ...u, pipelining: 1, pipeliningProbe: false, pipeliningMaxWaitMs: 0, pipeliningSlowNodeMs: 0 };
    this.protocol = u.protocol;
    this.maxConcurrentStreams = u.maxConcurrentStreams;
    this.pools = u.nodes.map((n) => (u.protocol !== 'http1' ? new H2NodePool(n, u) : n.tls ? new UndiciNodePool(n, { ...u, ...settings }) : new H1Pool(n, settings)));
    this.hostLines = u.nodes.map((n) => `host: ${n.authority}\r\n`);
    this.#order = Int32Array.from(u.nodes.flatMap((n, i) => (n.weight > 0 ? [i] : [])));
  }

  /** the next node, or -1 when every node has weight 0 */
  pick(): number {
    const order = this.#order;
    if (order.length === 0) return -1;
    if (this.#next >= order.length) this.#next = 0;
    return order[this.#next++];
  }

  /** Same shadow nodes and pool settings: a reload keeps these pools and their warm connections. */
  sameAs(u: PlanUpstream): boolean {
    if (u.name !== this.name || u.protocol !== this.protocol || u.maxConcurrentStreams !== this.maxConcurrentStreams || u.nodes.length !== this.urls.length || u.nodes.some((n, i) => n.url !== this.urls[i])) return false;
    return this.pools.every((p) => !(p instanceof H1Pool) || p.sameSettings({ ...u, pipelining: 1, pipeliningProbe: false, pipeliningMaxWaitMs: 0, pipeliningSlowNodeMs: 0 }));
  }
}

/** Every MirrorPools of one runtime (one per shadow upstream that some route mirrors to). */
export class MirrorSet {
  readonly all: MirrorPools[] = [];
  readonly #byUpstream = new Map<number, MirrorPools>();
  readonly #plan: readonly PlanUpstream[];
  readonly #previous: MirrorSet | null;

  constructor(upstreams: readonly PlanUpstream[], previous: MirrorSet | null) {
    this.#plan = upstreams;
    this.#previous = previous;
  }

  /** The pools of shadow upstream `index`, made on first use (kept from the previous runtime when unchanged). */
  for(index: number): MirrorPools {
    let p = this.#byUpstream.get(index);
    if (p === undefined) {
      const u = this.#plan[index];
      p = this.#previous?.all.find((old) => old.sameAs(u)) ?? new MirrorPools(u);
      this.#byUpstream.set(index, p);
      this.all.push(p);
    }
    return p;
  }

  pools(): NodePool[] {
    return this.all.flatMap((m) => m.pools);
  }

  sweep(now: number): void {
    const all = this.all;
    for (let m = 0; m < all.length; m++) for (let i = 0; i < all[m].pools.length; i++) all[m].pools[i].sweep(now);
  }
}

/** One route's mirror on one worker: the match, the schedule, the in-flight bound and the counters. */
export class MirrorRoute {
  readonly plan: PlanMirror;
  readonly pools: MirrorPools;
  readonly cells: Int32Array;
  /** copies of this route in flight on this worker (queued, waiting for a connection, or sent) */
  inFlight = 0;

  constructor(plan: PlanMirror, pools: MirrorPools) {
    this.plan = plan;
    this.pools = pools;
    this.cells = new Int32Array(plan.cells);
  }

  /** In the handler, while the request's headers are at hand: this route's mirror when the request matches, else null. */
  admit(input: MatchInput): MirrorRoute | null {
    const p = this.plan;
    if ((p.headers === null || checkHeaders(p.headers, input)) && (p.query === null || checkQuery(p.query, input.query))) return this;
    Atomics.add(this.cells, M_SKIPPED_MATCH, 1);
    return null;
  }

  /**
   * At the real request's first dispatch (it has been handed to its pool): sample, check the body and the bound,
   * and queue a copy. `body` is the request body as the gateway holds it (its own copies, never written to again).
   */
  offer(src: MirrorSource, body: Buffer[] | null): void {
    const p = this.plan;
    const cells = this.cells;
    // unsigned, so the schedule runs on past 2^31 (it slips once, at 2^32, which is not a multiple of 1000)
    if (p.perMille < 1000 && !sampled(Atomics.add(cells, M_SAMPLER, 1) >>> 0, p.perMille)) return;
    if (src.requestBodyKind !== BODY_NONE && (!src.clientBodyDone || src.bodyBytes > p.maxBodyBytes)) {
      Atomics.add(cells, M_SKIPPED_BODY, 1);
      return;
    }
    if (this.inFlight >= p.maxInFlight) {
      Atomics.add(cells, M_DROPPED_FULL, 1);
      return;
    }
    this.inFlight++;
    Atomics.add(cells, M_IN_FLIGHT, 1);
    queued.push(new MirrorCopy(this, src, body));
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushCopies);
    }
  }
}

/**
 * The schedule: whether matching request number `k` (counted from 0 across workers) is copied at `perMille` tenths of
 * a percent. Request k is copied when floor((k+1)·p/1000) > floor(k·p/1000): every 1000 consecutive requests hold
 * exactly p copies, at most ceil(1000/p) apart. Only k mod 1000 matters (k·p/1000 and (k+1)·p/1000 differ from
 * (k mod 1000)·p/1000 by the same whole number), which keeps the products small integers.
 */
export function sampled(k: number, perMille: number): boolean {
  const r = k % 1000;
  return (((r + 1) * perMille) / 1000 | 0) !== ((r * perMille) / 1000 | 0);
}

/** Copies offered in this event-loop turn, sent by one setImmediate after the turn's real requests have left. */
const queued: MirrorCopy[] = [];
let flushScheduled = false;

function flushCopies(): void {
  flushScheduled = false;
  // a copy's dispatch may run callbacks that offer more; they join this loop
  for (let i = 0; i < queued.length; i++) queued[i].send();
  queued.length = 0;
}

/** Copies sent and not over, checked every clock tick against their deadline (a hanging shadow node). */
const live = new Set<MirrorCopy>();
let sweepRegistered = false;

function sweepCopies(now: number): void {
  for (const copy of live) if (now > copy.deadline) copy.expire();
}

/**
 * One copy on its way: what the pools see (an UpstreamExchange) and nothing more. Its response is read and dropped;
 * its end, failure or timeout is counted once.
 */
class MirrorCopy implements UpstreamExchange {
  readonly owner: MirrorRoute;
  requestHead = '';
  readonly isHeadRequest: boolean;
  readonly requestBodyKind: number;
  /** may be sent again on a fresh connection when a reused one turns out dead (no body, idempotent method) */
  readonly replayable: boolean;
  readonly pipelinable = false;
  readonly acceptsTrailers = false;
  readonly readTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly #headLine: string;
  readonly #hostLine: string | null;
  /** what follows the Host line: the policies' extra headers, the marker, the forwarded headers */
  readonly #rest: string;
  readonly #body: Buffer[] | null;
  node = -1;
  /** clock.now after which the copy is abandoned */
  deadline = 0;
  conn: UpstreamConnection | null = null;
  over = false;

  constructor(owner: MirrorRoute, src: MirrorSource, body: Buffer[] | null) {
    this.owner = owner;
    this.isHeadRequest = src.isHeadRequest;
    this.requestBodyKind = src.requestBodyKind;
    this.replayable = src.requestBodyKind === BODY_NONE && src.idempotent;
    const p = owner.plan;
    this.readTimeoutMs = p.timeoutMs;
    this.connectTimeoutMs = p.timeoutMs;
    this.#headLine = src.headLine;
    this.#hostLine = src.hostLine;
    this.#rest = src.upstreamExtra + p.headerLine + src.headRest;
    this.#body = src.requestBodyKind === BODY_NONE ? null : body;
  }

  send(): void {
    const pools = this.owner.pools;
    const i = pools.pick();
    if (i < 0) return this.#over(M_ERROR);
    this.node = i;
    this.requestHead = this.#headLine + (this.#hostLine ?? pools.hostLines[i]) + this.#rest;
    this.deadline = clock.now + this.readTimeoutMs;
    live.add(this);
    if (!sweepRegistered) {
      sweepRegistered = true;
      clock.register(sweepCopies);
    }
    Atomics.add(this.owner.cells, M_SENT, 1);
    pools.pools[i].dispatch(this);
  }

  onConnected(conn: UpstreamConnection): void {
    if (this.over) return conn.abort(this);
    this.conn = conn;
    const body = this.#body;
    if (body !== null) for (let i = 0; i < body.length; i++) conn.writeBody(body[i]);
    conn.endBody();
  }

  onHead(): void {}

  onBody(): boolean {
    return true;
  }

  onTrailers(): void {}

  onEnd(): void {
    this.conn = null;
    this.#over(M_OK);
  }

  onUpstreamDrain(): void {}

  onError(code: ErrorCode): void {
    this.conn = null;
    this.#over(code === 'NG_ERR_UPSTREAM_TIMEOUT' ? M_TIMEOUT : M_ERROR);
  }

  batch(fn: () => void): void {
    fn();
  }

  /** Past its deadline: the connection (or the wait for one) is given up. */
  expire(): void {
    if (this.over) return;
    this.#over(M_TIMEOUT);
    const conn = this.conn;
    this.conn = null;
    if (conn !== null) conn.abort(this);
    else this.owner.pools.pools[this.node].cancel(this);
  }

  #over(cell: number): void {
    if (this.over) return;
    this.over = true;
    live.delete(this);
    const owner = this.owner;
    owner.inFlight--;
    Atomics.sub(owner.cells, M_IN_FLIGHT, 1);
    Atomics.add(owner.cells, cell, 1);
  }
}

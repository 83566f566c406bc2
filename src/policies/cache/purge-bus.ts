import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Cluster, Redis } from 'ioredis';
import type { RedisConfig } from '../../shared/redis-config.js';
import type { PromWriter } from '../../observe/prometheus.js';
import { connectL2Redis, createCacheL2, l2KeyBase, L2_CELLS, L2_COUNTER_NAMES, L2_REGION_WORKERS, L2_UP, redisWhere, type CacheL2, type L2Data, type L2Logger } from './l2-redis.js';

/**
 * Purges across the nodes that share a cache L2 (runs on the control plane only; workers never subscribe).
 *
 * A purge on one node (admin API) goes: this node's workers (the caller's fan-out) -> Redis L2 (CacheL2.purge) ->
 * this bus, which publishes it on `ng:cache:<namespace>:purge`. Every other node's bus hands it to `deliver` (the
 * control plane's fan-out to its workers, as for an admin purge) and answers on the sender's own ack channel
 * (`...:purge-ack:<node id>`) once its workers have dropped the entries. The sender waits for as many acks as
 * PUBLISH reported receivers (itself included: it acks its own message without delivering it), up to
 * ackTimeoutMs, and reports how many confirmed. So when a purge call returns with confirmed = nodes, no L1 of any
 * subscribed node and no L2 entry serves the purged keys any more; a node that did not confirm in time is named by
 * the count, and serves them at most until its bus hears the purge (milliseconds) or, cut off from Redis, until it
 * is back (below).
 *
 * Redis pub/sub delivers only to those connected at the time, so two gaps are closed explicitly:
 * - a node cut off from Redis misses purges meanwhile. Every purge takes a number from the hash
 *   `ng:cache:<namespace>:purge-seq` (fields n: HINCRBY, epoch: a random value set when the hash is created, so a
 *   Redis that lost its data cannot count from 0 to the same number unnoticed) and carries both; a node remembers
 *   the newest it has seen and, when its subscription comes back, reads the hash: if it moved, purges were missed
 *   and the node drops its whole L1 (deliver('prefix', '')). Its L1 may have served purged entries during the
 *   outage, never after it is back.
 * - a purge made on a node while Redis is away cannot reach the L2 or the bus: it is kept (up to MAX_QUEUED,
 *   deduplicated) and replayed on the L2 and the bus as soon as Redis answers again.
 */

export type PurgeKind = 'key' | 'prefix' | 'tag';

export interface PurgeBusConfig {
  readonly redis: RedisConfig;
  readonly namespace: string;
  /** how long a purge waits for the other nodes to confirm (ms) */
  readonly ackTimeoutMs: number;
  /** the bound of Redis commands (ms) */
  readonly commandTimeoutMs: number;
}

/** What a purge did beyond this node's workers. */
export interface ClusterPurgeResult {
  /** entries removed from the L2; null when the L2 could not be reached (the purge is queued for replay) */
  l2Removed: number | null;
  /** gateway nodes subscribed when the purge was published (this one included); 0 when not published */
  nodes: number;
  /** of them, how many confirmed that their workers dropped the entries within ackTimeoutMs */
  confirmed: number;
  /** the purge waits for Redis (queued: replayed on the L2 and to the other nodes when Redis is back) */
  queued: boolean;
}

/** Called with a purge from another node; resolves when this node's workers have applied it. */
export type DeliverPurge = (kind: PurgeKind, value: string) => Promise<unknown>;

/** the longest a purge key, prefix or tag may be on the bus (the admin API refuses longer ones first) */
export const MAX_PURGE_VALUE = 8192;
/** purges kept while Redis is away; older ones beyond this are dropped (logged) */
export const MAX_QUEUED = 10_000;
const RETRY_MS = 1000;

interface PurgeMessage {
  /** sender's node id */
  n: string;
  /** its number and epoch from purge-seq */
  s: number;
  e: string;
  k: PurgeKind;
  v: string;
}

const KINDS: ReadonlySet<string> = new Set(['key', 'prefix', 'tag']);

/** Takes the next purge number: [epoch, n] (the epoch is made when the hash is, see the module comment). */
const NEXT_SEQ = `
redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1])
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
return { redis.call('HGET', KEYS[1], 'epoch'), n }
`;

type BusRedis = (Redis | Cluster) & { ngCachePurgeSeq(key: string, epoch: string): Promise<[string, number]> };

function parsePurge(text: string): PurgeMessage | null {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return null;
  }
  if (m === null || typeof m !== 'object') return null;
  const { n, s, e, k, v } = m as Record<string, unknown>;
  if (typeof n !== 'string' || !Number.isSafeInteger(s) || typeof e !== 'string' || typeof k !== 'string' || !KINDS.has(k) || typeof v !== 'string' || v.length > MAX_PURGE_VALUE) return null;
  return { n, s: s as number, e, k: k as PurgeKind, v };
}

export class PurgeBus {
  /** this node on the bus: host, pid and a random part (two gateways in one process differ) */
  readonly nodeId = `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
  readonly #cfg: PurgeBusConfig;
  readonly #log: L2Logger;
  readonly #deliver: DeliverPurge;
  readonly #l2: CacheL2 | null;
  readonly #pub: BusRedis;
  readonly #sub: Redis | Cluster;
  readonly #channel: string;
  readonly #ackChannel: string;
  readonly #seqKey: string;
  readonly #where: string;
  /** the newest purge number seen (published or received) and its epoch; null until the first sync */
  #seen: { epoch: string | null; n: number } | null = null;
  #subscribed = false;
  /** the subscription was lost since it was last made: on its return, check for missed purges */
  #lost = false;
  /** #seen when the subscription was lost: what the counter must still say on return if nothing was missed */
  #seenAtLoss: { epoch: string | null; n: number } | null = null;
  /** acks awaited by purge number */
  readonly #waiting = new Map<string, { want: number; got: number; done: () => void }>();
  /** purges that could not reach Redis, by kind + value, in arrival order */
  readonly #queue = new Map<string, { kind: PurgeKind; value: string }>();
  #replaying = false;
  /** retries the queue every RETRY_MS while it is not empty (the L2's connection may come back after the bus's) */
  #retry: NodeJS.Timeout | null = null;
  #closed = false;
  readonly #counts = { subscriptions: 0, published: 0, received: 0, missedResyncs: 0, queuedTotal: 0, dropped: 0, replayed: 0 };

  constructor(cfg: PurgeBusConfig, log: L2Logger, deliver: DeliverPurge, l2: CacheL2 | null) {
    this.#cfg = cfg;
    this.#log = log;
    this.#deliver = deliver;
    this.#l2 = l2;
    const base = l2KeyBase(cfg.namespace);
    this.#channel = base + 'purge';
    this.#ackChannel = `${base}purge-ack:${this.nodeId}`;
    this.#seqKey = base + 'purge-seq';
    this.#where = redisWhere(cfg.redis);
    this.#pub = connectL2Redis(cfg.redis, cfg.commandTimeoutMs) as unknown as BusRedis;
    this.#pub.defineCommand('ngCachePurgeSeq', { numberOfKeys: 1, lua: NEXT_SEQ });
    this.#sub = connectL2Redis(cfg.redis, cfg.commandTimeoutMs);
    this.#pub.on('error', () => {});
    this.#pub.on('ready', () => this.#replay());
    this.#sub.on('error', () => {});
    this.#sub.on('ready', () => void this.#subscribe());
    this.#sub.on('close', () => this.#unsubscribed());
    this.#sub.on('message', (channel: string, text: string) => this.#onMessage(channel, text));
  }

  /** true while this node hears purges from the others */
  get subscribed(): boolean {
    return this.#subscribed;
  }

  status(): Record<string, unknown> {
    return { node: this.nodeId, subscribed: this.#subscribed, seen: this.#seen, queued: this.#queue.size, ...this.#counts };
  }

  async #subscribe(): Promise<void> {
    try {
      await this.#sub.subscribe(this.#channel, this.#ackChannel);
    } catch (err) {
      this.#log.warn({ redis: this.#where, reason: (err as Error).message }, 'cache purge bus: subscribe failed; retrying when the connection is ready again');
      return;
    }
    this.#subscribed = true;
    this.#counts.subscriptions++;
    const wasLost = this.#lost;
    this.#lost = false;
    // Subscribed first, then the counter: a purge between the two is both heard and counted, never missed.
    let now: { epoch: string | null; n: number } | null;
    try {
      const [epoch, n] = await this.#pub.hmget(this.#seqKey, 'epoch', 'n');
      now = { epoch, n: Number(n ?? 0) };
    } catch {
      now = null; // the command connection is not back yet: unknown
    }
    // Compared with what was known when the subscription went: a purge heard between subscribing and reading the
    // counter would otherwise hide one missed before (it may count as missed itself: a drop too many, never too few).
    const seen = wasLost ? this.#seenAtLoss : this.#seen;
    if (seen === null) {
      this.#seen = now ?? { epoch: null, n: 0 };
      this.#log.info({ redis: this.#where, node: this.nodeId }, 'cache purge bus: subscribed');
    } else if (now === null || now.epoch !== seen.epoch || now.n !== seen.n) {
      this.#counts.missedResyncs++;
      const missed = now !== null && now.epoch === seen.epoch ? now.n - seen.n : 'unknown';
      this.#log.warn({ redis: this.#where, missed }, 'cache purge bus: purges may have been made while this node could not hear them; its L1 is dropped');
      if (now !== null) this.#seen = now;
      await this.#deliver('prefix', '').catch(() => {});
    } else if (wasLost) this.#log.warn({ redis: this.#where }, 'cache purge bus: subscribed again; no purge was missed');
    this.#replay();
  }

  /** a purge number seen: the newest of its epoch, or the first of a new one */
  #saw(epoch: string, n: number): void {
    const seen = this.#seen;
    if (seen === null || seen.epoch !== epoch) this.#seen = { epoch, n };
    else if (n > seen.n) seen.n = n;
  }

  #unsubscribed(): void {
    if (!this.#subscribed || this.#closed) return;
    this.#subscribed = false;
    this.#lost = true;
    this.#seenAtLoss = this.#seen === null ? null : { ...this.#seen };
    this.#log.error({ redis: this.#where }, 'cache purge bus: lost its subscription; purges from other nodes cannot reach this node until Redis is back');
  }

  #onMessage(channel: string, text: string): void {
    if (channel === this.#ackChannel) {
      const w = this.#waiting.get(text);
      if (w !== undefined && ++w.got >= w.want) w.done();
      return;
    }
    if (channel !== this.#channel) return;
    const m = parsePurge(text);
    if (m === null) return;
    this.#saw(m.e, m.s);
    const ack = () => this.#pub.publish(`${l2KeyBase(this.#cfg.namespace)}purge-ack:${m.n}`, `${m.e}:${m.s}`).catch(() => {});
    if (m.n === this.nodeId) return void ack(); // our own: the caller already purged this node's workers
    this.#counts.received++;
    this.#deliver(m.k, m.v).then(ack, (err: Error) => this.#log.error({ kind: m.k, reason: err.message }, 'cache purge bus: a purge from another node failed on this node'));
  }

  /**
   * A purge beyond this node's workers, in three steps: the L2 first (so that no worker refills its L1 from it),
   * then `local` (this node's workers, the caller's fan-out) while the other nodes are told and confirm, then the
   * L2 once more, for what a worker wrote there from a response fetched before the purge (a worker that has applied
   * a purge stores nothing fetched before it: purge-local.ts purgeGeneration). Never throws: what Redis could not
   * take is queued and replayed (see the module comment); `local` runs whatever Redis does.
   */
  async purge(kind: PurgeKind, value: string, local?: () => Promise<unknown>): Promise<ClusterPurgeResult> {
    const result: ClusterPurgeResult = { l2Removed: null, nodes: 0, confirmed: 0, queued: false };
    let localRun: Promise<unknown> | null = null;
    const runLocal = () => (localRun ??= local === undefined ? Promise.resolve() : local());
    try {
      let removed = this.#l2 === null ? 0 : await this.#l2.purge(kind, value);
      const [, { nodes, confirmed }] = await Promise.all([runLocal(), this.#publish(kind, value)]);
      result.nodes = nodes;
      result.confirmed = confirmed;
      if (this.#l2 !== null) removed += await this.#l2.purge(kind, value);
      result.l2Removed = this.#l2 === null ? null : removed;
    } catch (err) {
      result.queued = true;
      this.#enqueue(kind, value, (err as Error).message);
      await runLocal();
    }
    return result;
  }

  async #publish(kind: PurgeKind, value: string): Promise<{ nodes: number; confirmed: number }> {
    const [epoch, seq] = await this.#pub.ngCachePurgeSeq(this.#seqKey, randomBytes(8).toString('hex'));
    this.#saw(epoch, seq);
    const id = `${epoch}:${seq}`;
    const message: PurgeMessage = { n: this.nodeId, s: seq, e: epoch, k: kind, v: value };
    // Register before publishing: acks can come back before PUBLISH's own reply.
    let done!: () => void;
    const settled = new Promise<void>((resolve) => (done = resolve));
    const w = { want: Number.MAX_SAFE_INTEGER, got: 0, done };
    this.#waiting.set(id, w);
    const timer = setTimeout(done, this.#cfg.ackTimeoutMs);
    try {
      const nodes = await this.#pub.publish(this.#channel, JSON.stringify(message));
      w.want = nodes;
      if (w.got >= nodes) done();
      await settled;
      this.#counts.published++;
      return { nodes, confirmed: Math.min(w.got, nodes) };
    } finally {
      clearTimeout(timer);
      this.#waiting.delete(id);
    }
  }

  #enqueue(kind: PurgeKind, value: string, reason: string): void {
    const id = `${kind}\u0000${value}`;
    this.#queue.delete(id);
    this.#queue.set(id, { kind, value });
    this.#counts.queuedTotal++;
    if (this.#queue.size > MAX_QUEUED) {
      this.#queue.delete(this.#queue.keys().next().value!);
      this.#counts.dropped++;
      this.#log.error({ max: MAX_QUEUED }, 'cache purge bus: too many purges waiting for Redis; the oldest was dropped and will not reach the L2 or the other nodes');
    }
    if (this.#retry === null) {
      this.#retry = setInterval(() => this.#replay(), RETRY_MS);
      this.#retry.unref();
    }
    if (this.#queue.size === 1) this.#log.warn({ redis: this.#where, kind, reason }, 'cache purge bus: redis unreachable; purges are kept and replayed on the L2 and the other nodes when it is back');
  }

  /** Sends the purges queued during an outage, oldest first; stops at the first failure (the next 'ready' resumes). */
  #replay(): void {
    if (this.#replaying || this.#queue.size === 0 || this.#closed) return;
    this.#replaying = true;
    void (async () => {
      let sent = 0;
      try {
        for (const [id, { kind, value }] of this.#queue) {
          if (this.#l2 !== null) await this.#l2.purge(kind, value);
          await this.#publish(kind, value);
          this.#queue.delete(id);
          sent++;
        }
      } catch {
        // Redis went away again: what is left stays queued
      } finally {
        this.#replaying = false;
        this.#counts.replayed += sent;
        if (this.#queue.size === 0 && this.#retry !== null) {
          clearInterval(this.#retry);
          this.#retry = null;
        }
        if (sent > 0) this.#log.warn({ replayed: sent, left: this.#queue.size }, 'cache purge bus: purges made during the outage were replayed');
      }
    })();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#subscribed = false;
    if (this.#retry !== null) clearInterval(this.#retry);
    for (const w of this.#waiting.values()) w.done();
    await Promise.all([this.#pub.quit().catch(() => this.#pub.disconnect()), this.#sub.quit().catch(() => this.#sub.disconnect())]);
  }
}

// ------------------------------------------------------------------------------------------ the control plane

/** What the control plane needs of a compiled cache policy: its L2 settings (CacheData.l2). */
interface PlanL2 {
  readonly l2: L2Data | null;
}

/** One namespace's purge side on the control plane: its bus and the L2 client that purges in Redis. */
interface Namespace {
  readonly settings: string;
  readonly bus: PurgeBus;
  readonly l2: CacheL2;
}

/** A purge's outcome in one L2 namespace. */
export interface NamespacePurge extends ClusterPurgeResult {
  namespace: string;
}

/**
 * The cache's side of many nodes on the control plane: per L2 namespace of the current plan, a PurgeBus with its own
 * L2 client (for purges in Redis). Made from each plan that is applied (prepare), like the rate-limit service:
 * namespaces that appear get their bus, those whose settings change get a new one, those no longer used close.
 * Purges from other nodes are handed to `deliver` (the node's fan-out to its workers).
 */
export class CacheCluster {
  readonly #log: L2Logger;
  readonly #deliver: DeliverPurge;
  readonly #namespaces = new Map<string, Namespace>();
  /** the workers' L2 counters per namespace (L2Data.region) */
  readonly #regions = new Map<string, SharedArrayBuffer>();

  constructor(log: L2Logger, deliver: DeliverPurge) {
    this.#log = log;
    this.#deliver = deliver;
  }

  /** true when some cache zone of the current plan has an L2 */
  get active(): boolean {
    return this.#namespaces.size > 0;
  }

  prepare(routes: readonly { readonly policies: readonly { readonly name: string; readonly data: unknown }[] | null }[]): void {
    const want = new Map<string, L2Data>();
    for (const r of routes) {
      for (const p of r.policies ?? []) {
        if (p.name !== 'cache') continue;
        const d = (p.data as PlanL2).l2;
        if (d !== null && !want.has(d.namespace)) want.set(d.namespace, d);
      }
    }
    this.#regions.clear();
    for (const [ns, d] of want) this.#regions.set(ns, d.region);
    for (const [ns, have] of this.#namespaces) {
      const d = want.get(ns);
      if (d === undefined || settingsOf(d) !== have.settings) {
        this.#namespaces.delete(ns);
        void have.bus.close().then(() => have.l2.close());
      }
    }
    for (const [ns, d] of want) {
      if (this.#namespaces.has(ns)) continue;
      const log = tagged(this.#log, ns);
      // purges run SCAN loops: they get the redis: section's command bound, not the lookups' short one
      const l2 = createCacheL2({ ...d, timeoutMs: Math.max(d.timeoutMs, d.redis.commandTimeoutMs) }, log);
      const bus = new PurgeBus({ redis: d.redis, namespace: ns, ackTimeoutMs: d.purgeAckTimeoutMs, commandTimeoutMs: d.redis.commandTimeoutMs }, log, this.#deliver, l2);
      this.#namespaces.set(ns, { settings: settingsOf(d), bus, l2 });
    }
  }

  /**
   * A purge this node made (admin API, invalidation): `local` is this node's fan-out to its workers, run once,
   * after each namespace's L2 purge (PurgeBus.purge); resolves with its result and each namespace's outcome.
   */
  async purge<T>(kind: PurgeKind, value: string, local: () => Promise<T>): Promise<{ local: T; namespaces: NamespacePurge[] }> {
    let run: Promise<T> | null = null;
    const once = () => (run ??= local());
    const namespaces = await Promise.all([...this.#namespaces].map(async ([namespace, n]) => ({ namespace, ...(await n.bus.purge(kind, value, once)) })));
    return { local: await once(), namespaces };
  }

  status(): Record<string, unknown>[] {
    return [...this.#namespaces].map(([namespace, n]) => ({ namespace, l2: n.l2.available ? 'up' : 'down', ...n.bus.status() }));
  }

  /** The scrape's L2 and purge-bus families, per namespace: read from the workers' cells and the buses. */
  render(out: PromWriter): void {
    if (this.#regions.size === 0) return;
    for (const [, name, help] of L2_COUNTER_NAMES) out.help(`nanogate_cache_l2_${name}_total`, 'counter', help);
    out.help('nanogate_cache_l2_connected_workers', 'gauge', 'workers whose L2 client reaches Redis (0 during an outage: the cache serves from L1 and upstream)');
    out.help('nanogate_cache_purge_bus_subscribed', 'gauge', '1 while this node hears purges from the other nodes');
    out.help('nanogate_cache_purge_bus_messages_total', 'counter', 'purges published to the other nodes (sent) and heard from them (received)');
    out.help('nanogate_cache_purge_bus_l1_drops_total', 'counter', 'times this node dropped its L1 because it may have missed purges while cut off from Redis');
    out.help('nanogate_cache_purge_bus_queued', 'gauge', 'purges waiting for Redis to come back, to be replayed on the L2 and the other nodes');
    out.help('nanogate_cache_purge_bus_dropped_total', 'counter', 'queued purges dropped because too many waited (they did not reach the L2 or the other nodes)');
    for (const [namespace, region] of this.#regions) {
      const cells = new Int32Array(region);
      const sum = (cell: number) => {
        let n = 0;
        for (let w = 0; w < L2_REGION_WORKERS; w++) n += Atomics.load(cells, w * L2_CELLS + cell) >>> 0;
        return n;
      };
      const l = out.labels('namespace', namespace);
      for (const [cell, name] of L2_COUNTER_NAMES) out.sample(`nanogate_cache_l2_${name}_total`, l, sum(cell));
      out.sample('nanogate_cache_l2_connected_workers', l, sum(L2_UP));
      const bus = this.#namespaces.get(namespace);
      if (bus === undefined) continue;
      const st = bus.bus.status() as { subscribed: boolean; published: number; received: number; missedResyncs: number; queued: number; dropped: number };
      out.sample('nanogate_cache_purge_bus_subscribed', l, st.subscribed ? 1 : 0);
      out.sample('nanogate_cache_purge_bus_messages_total', out.labels('namespace', namespace, 'direction', 'sent'), st.published);
      out.sample('nanogate_cache_purge_bus_messages_total', out.labels('namespace', namespace, 'direction', 'received'), st.received);
      out.sample('nanogate_cache_purge_bus_l1_drops_total', l, st.missedResyncs);
      out.sample('nanogate_cache_purge_bus_queued', l, st.queued);
      out.sample('nanogate_cache_purge_bus_dropped_total', l, st.dropped);
    }
  }

  async close(): Promise<void> {
    const all = [...this.#namespaces.values()];
    this.#namespaces.clear();
    await Promise.all(all.map(async (n) => {
      await n.bus.close();
      await n.l2.close();
    }));
  }
}

function settingsOf(d: L2Data): string {
  return JSON.stringify([d.redis, d.purgeAckTimeoutMs, d.timeoutMs]);
}

function tagged(log: L2Logger, namespace: string): L2Logger {
  return {
    info: (o, m) => log.info({ namespace, ...o }, m),
    warn: (o, m) => log.warn({ namespace, ...o }, m),
    error: (o, m) => log.error({ namespace, ...o }, m),
  };
}

import type { Logger } from 'pino';
import { EtcdError, type EtcdClient, type EtcdKv, type WatchMessage } from './etcd-client.js';

/**
 * A watched view of every key under one etcd prefix: the first list, then a watch from the list's revision + 1, with
 * the rules of tikv/pd, cilium's kvstore and APISIX (#13721):
 * - the revision advances only on what etcd sent: an event's mod_revision, or a progress notification's header
 *   (etcd's promise that every event up to it was sent). A timeout, a `created` message (whose header is the store
 *   revision before the backlog is replayed) or an error never moves it;
 * - a watch refused as compacted re-lists the prefix at one revision and replaces the whole view (keys that vanished
 *   meanwhile are deletes), then watches from that revision + 1;
 * - a periodic check (a keys-only range) finds a watch that is alive but silent: a key whose mod_revision the view
 *   has not seen, still missing at the next check, means the watch stalled: it is restarted with a re-list;
 * - etcd away: the view stays as it was (its owner keeps serving what it applied), the watch retries with a backoff
 *   up to 2 s, and on return resumes from its revision (or re-lists if that was compacted).
 * The config source (etcd-source.ts) and the consumer registry (etcd-consumers.ts) each own one.
 */

export interface EtcdWatchOptions {
  /** how often the view is checked against a range; default 5000 */
  checkIntervalMs: number;
  /** per request, and for a watch to be created; default 3000 */
  requestTimeoutMs: number;
  /** called after each periodic check (the config source writes the node's report then) */
  afterCheck?: () => void;
}

/** How the watch is doing, as every node reports it: ok, stalled (found behind by a check), away (etcd lost). */
export type WatchState = 'ok' | 'stalled' | 'away';

const MAX_BACKOFF_MS = 2000;

export class EtcdWatch {
  readonly prefix: string;
  readonly #client: EtcdClient;
  readonly #log: Logger;
  readonly #onChange: () => Promise<void>;
  readonly #opts: EtcdWatchOptions;
  #kvs = new Map<string, EtcdKv>();
  /** the revision up to which the view holds every change under the prefix */
  revision = 0;
  /**
   * the revision of the newest change in the view: what nodes compare (the store revision also moves with writes
   * outside the prefix, such as the nodes' own reports)
   */
  viewRevision = 0;
  up = false;
  watchRestarts = 0;
  readonly relists = { compacted: 0, stalled: 0 };
  #stopped = false;
  #abort: AbortController | null = null;
  #relist = false;
  #checkTimer: NodeJS.Timeout | null = null;
  /** a revision a check saw that the view had not reached; still behind at the next check = stalled */
  #behindAt = 0;
  #dirty = false;
  #applying: Promise<void> | null = null;
  #loop: Promise<void> | null = null;

  constructor(client: EtcdClient, prefix: string, log: Logger, opts: EtcdWatchOptions, onChange: () => Promise<void>) {
    this.#client = client;
    this.prefix = prefix;
    this.#log = log;
    this.#opts = opts;
    this.#onChange = onChange;
  }

  /** The first list. Throws when etcd cannot be read; run() then starts with a re-list. */
  async load(): Promise<void> {
    try {
      await this.#list();
    } catch (err) {
      this.#relist = true;
      throw err;
    }
  }

  /** The keys of the view, in byte order. */
  entries(): EtcdKv[] {
    return [...this.#kvs.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  get state(): WatchState {
    return !this.up ? 'away' : this.#behindAt !== 0 || this.#relist ? 'stalled' : 'ok';
  }

  /** Starts the watch and the periodic check. */
  run(): void {
    if (this.#loop || this.#stopped) return;
    this.#loop = this.#watchLoop();
    this.#checkTimer = setInterval(() => void this.#check(), this.#opts.checkIntervalMs);
    this.#checkTimer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#checkTimer) clearInterval(this.#checkTimer);
    this.#abort?.abort();
    await this.#loop?.catch(() => {});
    await this.#applying?.catch(() => {});
  }

  /** Reads the whole prefix at one revision and replaces the view; a change is applied. */
  async #list(): Promise<void> {
    const r = await this.#client.rangePrefix(this.prefix, this.#opts.requestTimeoutMs);
    const next = new Map(r.kvs.map((kv) => [kv.key, kv]));
    const changed = next.size !== this.#kvs.size || [...next].some(([k, kv]) => this.#kvs.get(k)?.modRevision !== kv.modRevision);
    // A key that vanished was deleted at a revision the list does not tell: its own revision bounds it.
    const deleted = [...this.#kvs.keys()].some((k) => !next.has(k));
    if (changed || this.viewRevision === 0) this.viewRevision = deleted ? r.revision : Math.max(0, ...r.kvs.map((kv) => kv.modRevision));
    this.#kvs = next;
    this.revision = r.revision;
    this.#behindAt = 0;
    if (changed && this.#loop) this.#changed();
  }

  async #watchLoop(): Promise<void> {
    let backoff = 100;
    while (!this.#stopped) {
      if (this.#relist) {
        try {
          await this.#list();
          this.#relist = false;
        } catch (err) {
          this.#down(err as Error);
          await sleep(backoff);
          backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
          continue;
        }
      }
      const ac = new AbortController();
      this.#abort = ac;
      // a watch that etcd does not confirm in time (etcd hung, a proxy that holds the request) is given up
      const created = setTimeout(() => ac.abort(), this.#opts.requestTimeoutMs);
      let err: Error | null = null;
      try {
        await this.#client.watch(this.prefix, this.revision + 1, (m) => {
          if (m.created) {
            clearTimeout(created);
            backoff = 100;
            if (!this.up) this.#log.info({ revision: this.revision, restarts: this.watchRestarts }, 'etcd watch established');
            this.up = true;
          }
          this.#onMessage(m, ac);
        }, ac.signal);
        err = new EtcdError('etcd closed the watch stream');
      } catch (e) {
        err = e as Error;
      } finally {
        clearTimeout(created);
      }
      if (this.#stopped) return;
      this.watchRestarts++;
      if (this.#relist) continue; // compacted or stalled: re-list at once
      this.#down(err);
      await sleep(backoff);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  }

  #down(err: Error): void {
    if (this.up) this.#log.warn({ err: err.message, revision: this.revision }, 'etcd watch lost; serving the last applied copy and retrying');
    this.up = false;
  }

  #onMessage(m: WatchMessage, ac: AbortController): void {
    if (m.compactRevision > 0 || m.canceled) {
      this.relists.compacted++;
      this.#log.warn({ revision: this.revision, compactRevision: m.compactRevision }, 'etcd watch revision was compacted; re-listing');
      this.#relist = true;
      ac.abort();
      return;
    }
    if (m.events.length === 0) {
      // a progress notification: every event up to its revision was sent (a `created` header promises nothing)
      if (!m.created && m.revision > this.revision) this.revision = m.revision;
      return;
    }
    // Every event of one transaction carries the same mod_revision: compare with the revision before this message,
    // or the second key of a multi-key write would be taken for a replay and lost.
    const before = this.revision;
    for (const e of m.events) {
      if (e.kv.modRevision <= before) continue; // replayed after a restart
      if (e.type === 'DELETE') this.#kvs.delete(e.kv.key);
      else this.#kvs.set(e.kv.key, e.kv);
      this.revision = e.kv.modRevision;
      this.viewRevision = e.kv.modRevision;
    }
    this.#changed();
  }

  /** Applies the view; changes that come while an apply runs are coalesced into one more apply after it. */
  #changed(): void {
    this.#dirty = true;
    if (this.#applying) return;
    this.#applying = (async () => {
      while (this.#dirty && !this.#stopped) {
        this.#dirty = false;
        await this.#onChange().catch(() => {});
      }
      this.#applying = null;
    })();
  }

  /** The periodic check: is the view behind what a range sees? */
  async #check(): Promise<void> {
    if (this.#stopped) return;
    if (!this.up || this.#relist) {
      this.#opts.afterCheck?.();
      return;
    }
    const seen = this.revision;
    let r;
    try {
      r = await this.#client.rangePrefix(this.prefix, this.#opts.requestTimeoutMs, true);
    } catch (err) {
      // etcd does not answer while the watch looks alive (hung, partitioned): restart it
      this.#down(err as Error);
      this.#abort?.abort();
      return;
    }
    if (this.revision !== seen) {
      // the watch delivered meanwhile: it is alive, and the range may be older than the view
      this.#opts.afterCheck?.();
      return;
    }
    // A key the view holds at another mod_revision than the store, though the view claims to be complete past it,
    // is a view that is wrong (not late): re-listed at once. A newer change is late; late at two checks = stalled.
    let behind = r.kvs.length !== this.#kvs.size;
    let wrong = false;
    for (const kv of r.kvs) {
      if (this.#kvs.get(kv.key)?.modRevision === kv.modRevision) continue;
      if (kv.modRevision > this.revision) behind = true;
      else wrong = true;
    }
    if (wrong || (behind && this.#behindAt !== 0 && this.revision < this.#behindAt)) {
      this.relists.stalled++;
      this.#log.error({ revision: this.revision, storeRevision: r.revision }, 'etcd watch is stalled (changes seen by a range never came through it); re-listing');
      this.#relist = true;
      this.#abort?.abort();
    } else if (!behind) this.#behindAt = 0;
    else if (this.#behindAt === 0 || this.revision >= this.#behindAt) this.#behindAt = r.revision; // (again) late since this check
    this.#opts.afterCheck?.();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

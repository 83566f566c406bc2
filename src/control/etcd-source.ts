import type { Logger } from 'pino';
import type { ConfigSource } from '../config/sources.js';
import type { PromWriter } from '../observe/prometheus.js';
import { EtcdClient, EtcdError, type EtcdKv, type WatchMessage } from './etcd-client.js';

/**
 * Config from etcd v3: every key under `<prefix>config/` is one config file (its text YAML or JSON), merged after the
 * node's own `--config` files by the rules of a multi-file config (src/config/sources.ts), keys in byte order. The
 * node's file holds what is per node (listen, admin, status); the keys hold what all nodes share (routes, upstreams,
 * policies, consumers). Each change goes through the same load → validate → compile → two-step swap as a file reload;
 * the etcd revision the node's view was complete at is its config revision.
 *
 *   <prefix>config/<name>   config files, written by PUT /etcd/config on any node (validated first) or etcdctl
 *   <prefix>nodes/<node>    each node's applied revision and when it last said so (GET /etcd/nodes)
 *
 * The watch follows the rules of tikv/pd, cilium's kvstore and APISIX (#13721):
 * - the revision advances only on what etcd sent: an event's mod_revision, or a progress notification's header
 *   (etcd's promise that every event up to it was sent). A timeout, a `created` message (whose header is the store
 *   revision before the backlog is replayed) or an error never moves it;
 * - a watch refused as compacted re-lists the prefix at one revision and replaces the whole view (keys that vanished
 *   meanwhile are deletes), then watches from that revision + 1;
 * - a periodic check (a keys-only range) finds a watch that is alive but silent: a key whose mod_revision the view
 *   has not seen, still missing at the next check, means the watch stalled: it is restarted with a re-list;
 * - etcd away: the node keeps serving its last applied config, says so (log, nanogate_etcd_up 0), retries with a
 *   backoff up to 2 s, and on return resumes the watch from its revision (or re-lists if that was compacted).
 */

export interface EtcdSourceOptions {
  endpoints: readonly string[];
  /** the key prefix of this gateway's cluster, e.g. "/nanogate/" */
  prefix: string;
  /** this node's name under <prefix>nodes/ */
  node: string;
  /** how often the view is checked against a range (and the node's status written); default 5000 */
  checkIntervalMs?: number;
  /** per request, and for a watch to be created; default 3000 */
  requestTimeoutMs?: number;
}

export interface EtcdNodeStatus {
  node: string;
  revision: number;
  version: number;
  at: string;
}

const MAX_BACKOFF_MS = 2000;

export class EtcdConfigSource {
  readonly client: EtcdClient;
  readonly configPrefix: string;
  readonly nodesPrefix: string;
  readonly node: string;
  readonly #log: Logger;
  readonly #onChange: () => Promise<void>;
  readonly #checkMs: number;
  readonly #timeoutMs: number;
  #kvs = new Map<string, EtcdKv>();
  /** the revision up to which the view holds every change under the prefix */
  revision = 0;
  /**
   * the revision of the newest change in the view: what nodes compare (the store revision also moves with writes
   * outside the prefix, such as the nodes' own reports)
   */
  configRevision = 0;
  /** the config revision this node serves */
  appliedRevision = 0;
  /** the newest revision refused (invalid config), 0 if none since the last applied one */
  refusedRevision = 0;
  lastError: string | null = null;
  up = false;
  watchRestarts = 0;
  readonly relists = { compacted: 0, stalled: 0 };
  refusals = 0;
  #version = 0;
  #stopped = false;
  #abort: AbortController | null = null;
  #relist = false;
  #checkTimer: NodeJS.Timeout | null = null;
  /** a revision a check saw that the view had not reached; still behind at the next check = stalled */
  #behindAt = 0;
  #dirty = false;
  #applying: Promise<void> | null = null;
  #loop: Promise<void> | null = null;

  constructor(options: EtcdSourceOptions, log: Logger, onChange: () => Promise<void>) {
    const prefix = options.prefix.endsWith('/') ? options.prefix : `${options.prefix}/`;
    this.client = new EtcdClient(options.endpoints);
    this.configPrefix = `${prefix}config/`;
    this.nodesPrefix = `${prefix}nodes/`;
    this.node = options.node;
    this.#log = log.child({ etcd: this.client.endpoints.map((e) => e.host).join(','), prefix: this.configPrefix });
    this.#onChange = onChange;
    this.#checkMs = options.checkIntervalMs ?? 5000;
    this.#timeoutMs = options.requestTimeoutMs ?? 3000;
  }

  /** The first list, before the gateway starts: an etcd that cannot be reached fails the start. */
  async load(): Promise<void> {
    try {
      await this.#list();
    } catch (err) {
      throw new EtcdError(`cannot read the config from etcd (${this.client.endpoints.map((e) => e.href).join(', ')}): ${(err as Error).message}`);
    }
    // `up` says the watch is established: it becomes true when etcd confirms it (run())
  }

  /** The config files of the current view, in key order (file names are "etcd:<key>" in every message). */
  sources(): ConfigSource[] {
    return [...this.#kvs.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).map((kv) => ({ file: `etcd:${kv.key}`, text: kv.value }));
  }

  /** Starts the watch and the periodic check (after the gateway serves the first config). */
  run(): void {
    if (this.#loop || this.#stopped) return;
    this.#loop = this.#watchLoop();
    this.#checkTimer = setInterval(() => void this.#check(), this.#checkMs);
    this.#checkTimer.unref();
  }

  /** The gateway applied the view at `revision` as config version `version`. */
  applied(revision: number, version: number): void {
    this.appliedRevision = Math.max(this.appliedRevision, revision);
    if (this.refusedRevision <= revision) this.refusedRevision = 0;
    this.lastError = null;
    this.#version = version;
    void this.#report();
  }

  /** The gateway refused the view at `revision`: the previous config keeps serving. */
  refused(revision: number, message: string): void {
    this.refusedRevision = revision;
    this.refusals++;
    this.lastError = message;
    this.#log.error({ revision, appliedRevision: this.appliedRevision, err: message }, 'config in etcd refused; the previous config keeps serving');
  }

  /**
   * Writes config files under <prefix>config/ in one transaction: each as <prefix>config/<name>; keys not named are
   * deleted, so the files sent are the whole shared config. Returns the revision written.
   */
  async write(files: readonly { name: string; text: string }[]): Promise<number> {
    const puts = files.map((f) => ({ key: `${this.configPrefix}${f.name}`, value: f.text }));
    const keep = new Set(puts.map((p) => p.key));
    const { kvs } = await this.client.rangePrefix(this.configPrefix, this.#timeoutMs, true);
    return this.client.txn(puts, kvs.map((kv) => kv.key).filter((k) => !keep.has(k)), this.#timeoutMs);
  }

  /** Every node's last report under <prefix>nodes/. */
  async nodes(): Promise<EtcdNodeStatus[]> {
    const { kvs } = await this.client.rangePrefix(this.nodesPrefix, this.#timeoutMs);
    const out: EtcdNodeStatus[] = [];
    for (const kv of kvs) {
      try {
        out.push(JSON.parse(kv.value) as EtcdNodeStatus);
      } catch {
        // not written by a node: left out
      }
    }
    return out;
  }

  /** Resolves once the applied revision reaches `revision` (or false after `timeoutMs`). */
  async waitApplied(revision: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.appliedRevision < revision && this.refusedRevision < revision) {
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.appliedRevision >= revision;
  }

  status() {
    return {
      endpoints: this.client.endpoints.map((e) => e.href),
      prefix: this.configPrefix,
      node: this.node,
      up: this.up,
      revision: this.revision,
      configRevision: this.configRevision,
      appliedRevision: this.appliedRevision,
      refusedRevision: this.refusedRevision || null,
      lastError: this.lastError,
      watchRestarts: this.watchRestarts,
      relists: { ...this.relists },
    };
  }

  render(out: PromWriter): void {
    out.help('nanogate_etcd_up', 'gauge', '1 while the etcd watch is established, 0 while etcd is away (the last applied config keeps serving)');
    out.sample('nanogate_etcd_up', '', this.up ? 1 : 0);
    out.help('nanogate_etcd_revision', 'gauge', 'the etcd revision up to which this node has seen every config change');
    out.sample('nanogate_etcd_revision', '', this.revision);
    out.help('nanogate_etcd_applied_revision', 'gauge', 'the etcd revision of the newest config change this node serves (equal on nodes that agree)');
    out.sample('nanogate_etcd_applied_revision', '', this.appliedRevision);
    out.help('nanogate_etcd_watch_restarts_total', 'counter', 'etcd watches that ended (etcd away, stream closed, stalled, compacted) and were started again');
    out.sample('nanogate_etcd_watch_restarts_total', '', this.watchRestarts);
    out.help('nanogate_etcd_relists_total', 'counter', 'full re-reads of the config prefix, by reason (compacted: the watch revision was compacted; stalled: the periodic check found the watch behind)');
    for (const reason of ['compacted', 'stalled'] as const) out.sample('nanogate_etcd_relists_total', out.labels('reason', reason), this.relists[reason]);
    out.help('nanogate_etcd_refused_total', 'counter', 'config revisions read from etcd and refused (the previous config kept serving)');
    out.sample('nanogate_etcd_refused_total', '', this.refusals);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#checkTimer) clearInterval(this.#checkTimer);
    this.#abort?.abort();
    await this.#loop?.catch(() => {});
    await this.#applying?.catch(() => {});
    this.client.close();
  }

  // ------------------------------------------------------------------------------------------------ internals

  /** Reads the whole prefix at one revision and replaces the view; a change is applied. */
  async #list(): Promise<void> {
    const r = await this.client.rangePrefix(this.configPrefix, this.#timeoutMs);
    const next = new Map(r.kvs.map((kv) => [kv.key, kv]));
    const changed = next.size !== this.#kvs.size || [...next].some(([k, kv]) => this.#kvs.get(k)?.modRevision !== kv.modRevision);
    // A key that vanished was deleted at a revision the list does not tell: its own revision bounds it.
    const deleted = [...this.#kvs.keys()].some((k) => !next.has(k));
    if (changed || this.configRevision === 0) this.configRevision = deleted ? r.revision : Math.max(0, ...r.kvs.map((kv) => kv.modRevision));
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
      const created = setTimeout(() => ac.abort(), this.#timeoutMs);
      let err: Error | null = null;
      try {
        await this.client.watch(this.configPrefix, this.revision + 1, (m) => {
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
    if (this.up) this.#log.warn({ err: err.message, revision: this.revision, appliedRevision: this.appliedRevision }, 'etcd watch lost; serving the last applied config and retrying');
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
    for (const e of m.events) {
      if (e.kv.modRevision <= this.revision) continue; // replayed after a restart
      if (e.type === 'DELETE') this.#kvs.delete(e.kv.key);
      else this.#kvs.set(e.kv.key, e.kv);
      this.revision = e.kv.modRevision;
      this.configRevision = e.kv.modRevision;
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

  /** The periodic check: is the view behind what a range sees? Then it reports this node's status. */
  async #check(): Promise<void> {
    if (this.#stopped || !this.up || this.#relist) return;
    let r;
    try {
      r = await this.client.rangePrefix(this.configPrefix, this.#timeoutMs, true);
    } catch (err) {
      // etcd does not answer while the watch looks alive (hung, partitioned): restart it
      this.#down(err as Error);
      this.#abort?.abort();
      return;
    }
    const newest = Math.max(0, ...r.kvs.map((kv) => kv.modRevision));
    const behind = newest > this.revision || r.kvs.length !== this.#kvs.size;
    if (!behind) this.#behindAt = 0;
    else if (this.#behindAt === 0) this.#behindAt = r.revision;
    else if (this.revision < this.#behindAt) {
      this.relists.stalled++;
      this.#log.error({ revision: this.revision, storeRevision: r.revision }, 'etcd watch is stalled (changes seen by a range never came through it); re-listing');
      this.#relist = true;
      this.#abort?.abort();
    }
    void this.#report();
  }

  /** Writes this node's applied revision under <prefix>nodes/ (best effort: etcd may be away). */
  async #report(): Promise<void> {
    if (this.#stopped) return;
    const status: EtcdNodeStatus = { node: this.node, revision: this.appliedRevision, version: this.#version, at: new Date().toISOString() };
    try {
      await this.client.txn([{ key: `${this.nodesPrefix}${this.node}`, value: JSON.stringify(status) }], [], this.#timeoutMs);
    } catch {
      // etcd away: the next check writes it
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

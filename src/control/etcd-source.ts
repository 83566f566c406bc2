import type { Logger } from 'pino';
import type { ConfigSource } from '../config/sources.js';
import type { PromWriter } from '../observe/prometheus.js';
import { EtcdClient, EtcdError, type EtcdKv } from './etcd-client.js';
import { EtcdWatch, type WatchState } from './etcd-watch.js';

/**
 * Config from etcd v3: every key under `<prefix>config/` is one config file (its text YAML or JSON), merged after the
 * node's own `--config` files by the rules of a multi-file config (src/config/sources.ts), keys in byte order. The
 * node's file holds what is per node (listen, admin, status); the keys hold what all nodes share (routes, upstreams,
 * policies, consumers). Each change goes through the same load → validate → compile → two-step swap as a file reload;
 * the etcd revision the node's view was complete at is its config revision.
 *
 *   <prefix>config/<name>      config files, written by PUT /etcd/config on any node (validated first) or etcdctl
 *   <prefix>consumers/<name>   consumer registry documents, when the config says consumerRegistry: { etcd: true }
 *                              (etcd-consumers.ts), written by PUT /etcd/consumers
 *   <prefix>nodes/<node>       each node's report: what it applied, when, and how its watches are (GET /etcd/nodes)
 *
 * The watch rules (revision, compaction, stall check, etcd away) are those of EtcdWatch (etcd-watch.ts). While etcd
 * is away the node keeps serving its last applied config and says so (log, nanogate_etcd_up 0).
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

/** The consumer registry's side of a node report (etcd-consumers.ts fills it). */
export interface EtcdConsumersReport {
  revision: number;
  appliedAt: string | null;
  refusedRevision: number | null;
  state: WatchState;
}

/** What a node writes under <prefix>nodes/<node> at each apply and periodic check. */
export interface EtcdNodeStatus {
  node: string;
  /** the listen address (host:port) and the admin API's, as this node binds them */
  address: string | null;
  admin: string | null;
  /** the config revision it serves, and the gateway's config version for it */
  revision: number;
  version: number;
  appliedAt: string | null;
  refusedRevision: number | null;
  /** the node's config watch */
  state: WatchState;
  consumers: EtcdConsumersReport | null;
  /** how often it writes this report: a report older than 3 intervals means the node is away */
  checkIntervalMs: number;
  at: string;
}

export class EtcdConfigSource {
  readonly client: EtcdClient;
  readonly prefix: string;
  readonly configPrefix: string;
  readonly consumersPrefix: string;
  readonly nodesPrefix: string;
  readonly node: string;
  readonly log: Logger;
  readonly checkIntervalMs: number;
  readonly requestTimeoutMs: number;
  readonly #watch: EtcdWatch;
  /** the config revision this node serves */
  appliedRevision = 0;
  appliedAt: string | null = null;
  /** the newest revision refused (invalid config), 0 if none since the last applied one */
  refusedRevision = 0;
  lastError: string | null = null;
  refusals = 0;
  /** the consumer registry from etcd, while the config names it; its state goes into the node report */
  consumers: { report(): EtcdConsumersReport } | null = null;
  #address: string | null = null;
  #admin: string | null = null;
  #version = 0;
  #stopped = false;

  constructor(options: EtcdSourceOptions, log: Logger, onChange: () => Promise<void>) {
    const prefix = options.prefix.endsWith('/') ? options.prefix : `${options.prefix}/`;
    this.client = new EtcdClient(options.endpoints);
    this.prefix = prefix;
    this.configPrefix = `${prefix}config/`;
    this.consumersPrefix = `${prefix}consumers/`;
    this.nodesPrefix = `${prefix}nodes/`;
    this.node = options.node;
    this.checkIntervalMs = options.checkIntervalMs ?? 5000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 3000;
    this.log = log.child({ etcd: this.client.endpoints.map((e) => e.host).join(','), prefix: this.configPrefix });
    this.#watch = new EtcdWatch(this.client, this.configPrefix, this.log, { checkIntervalMs: this.checkIntervalMs, requestTimeoutMs: this.requestTimeoutMs, afterCheck: () => void this.report() }, onChange);
  }

  get revision(): number {
    return this.#watch.revision;
  }
  get configRevision(): number {
    return this.#watch.viewRevision;
  }
  get up(): boolean {
    return this.#watch.up;
  }
  get watchRestarts(): number {
    return this.#watch.watchRestarts;
  }
  get relists(): { compacted: number; stalled: number } {
    return this.#watch.relists;
  }

  /** The first list, before the gateway starts: an etcd that cannot be reached fails the start. */
  async load(): Promise<void> {
    try {
      await this.#watch.load();
    } catch (err) {
      throw new EtcdError(`cannot read the config from etcd (${this.client.endpoints.map((e) => e.href).join(', ')}): ${(err as Error).message}`);
    }
    // `up` says the watch is established: it becomes true when etcd confirms it (run())
  }

  /** The config files of the current view, in key order (file names are "etcd:<key>" in every message). */
  sources(): ConfigSource[] {
    return this.#watch.entries().map((kv) => ({ file: `etcd:${kv.key}`, text: kv.value }));
  }

  /** Where this node serves, for its report (the gateway tells once it listens). */
  describe(address: string, admin: string): void {
    this.#address = address;
    this.#admin = admin;
  }

  /** Starts the watch and the periodic check (after the gateway serves the first config). */
  run(): void {
    if (this.#stopped) return;
    this.#watch.run();
  }

  /** The gateway applied the view at `revision` as config version `version`. */
  applied(revision: number, version: number): void {
    this.appliedRevision = Math.max(this.appliedRevision, revision);
    this.appliedAt = new Date().toISOString();
    if (this.refusedRevision <= revision) this.refusedRevision = 0;
    this.lastError = null;
    this.#version = version;
    void this.report();
  }

  /** The gateway refused the view at `revision`: the previous config keeps serving. */
  refused(revision: number, message: string): void {
    this.refusedRevision = revision;
    this.refusals++;
    this.lastError = message;
    this.log.error({ revision, appliedRevision: this.appliedRevision, err: message }, 'config in etcd refused; the previous config keeps serving');
    void this.report();
  }

  /**
   * Writes files under `dir` (<prefix>config/ or <prefix>consumers/) in one transaction: each as <dir><name>; keys
   * under `dir` not named are deleted, so the files sent are the whole set. Returns the revision written.
   */
  async write(files: readonly { name: string; text: string }[], dir = this.configPrefix): Promise<number> {
    const puts = files.map((f) => ({ key: `${dir}${f.name}`, value: f.text }));
    const keep = new Set(puts.map((p) => p.key));
    const { kvs } = await this.client.rangePrefix(dir, this.requestTimeoutMs, true);
    return this.client.txn(puts, kvs.map((kv) => kv.key).filter((k) => !keep.has(k)), this.requestTimeoutMs);
  }

  /** Every node's last report under <prefix>nodes/. */
  async nodes(): Promise<EtcdNodeStatus[]> {
    const { kvs } = await this.client.rangePrefix(this.nodesPrefix, this.requestTimeoutMs);
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

  /**
   * The store as it is now: its revision, and the newest change under config/ and consumers/ (a keys-only range
   * each). A delete leaves no key behind, so the cluster view also takes the newest revision any node applied.
   */
  async storeRevisions(): Promise<{ revision: number; config: number; consumers: number }> {
    const [c, u] = await Promise.all([
      this.client.rangePrefix(this.configPrefix, this.requestTimeoutMs, true),
      this.client.rangePrefix(this.consumersPrefix, this.requestTimeoutMs, true),
    ]);
    const newest = (kvs: readonly EtcdKv[]) => Math.max(0, ...kvs.map((kv) => kv.modRevision));
    return { revision: Math.max(c.revision, u.revision), config: newest(c.kvs), consumers: newest(u.kvs) };
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
      state: this.#watch.state,
      revision: this.revision,
      configRevision: this.configRevision,
      appliedRevision: this.appliedRevision,
      appliedAt: this.appliedAt,
      refusedRevision: this.refusedRevision || null,
      lastError: this.lastError,
      watchRestarts: this.watchRestarts,
      relists: { ...this.relists },
      consumers: this.consumers?.report() ?? null,
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
    const consumers = this.consumers?.report();
    if (consumers) {
      out.help('nanogate_etcd_consumers_applied_revision', 'gauge', 'the etcd revision of the newest consumer registry change this node serves');
      out.sample('nanogate_etcd_consumers_applied_revision', '', consumers.revision);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#watch.stop();
    this.client.close();
  }

  /** Writes this node's report under <prefix>nodes/ (best effort: etcd may be away; the next check writes it). */
  async report(): Promise<void> {
    if (this.#stopped) return;
    const status: EtcdNodeStatus = {
      node: this.node,
      address: this.#address,
      admin: this.#admin,
      revision: this.appliedRevision,
      version: this.#version,
      appliedAt: this.appliedAt,
      refusedRevision: this.refusedRevision || null,
      state: this.#watch.state,
      consumers: this.consumers?.report() ?? null,
      checkIntervalMs: this.checkIntervalMs,
      at: new Date().toISOString(),
    };
    try {
      await this.client.txn([{ key: `${this.nodesPrefix}${this.node}`, value: JSON.stringify(status) }], [], this.requestTimeoutMs);
    } catch {
      // etcd away: the next check writes it
    }
  }
}

import { performance } from 'node:perf_hooks';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { loadSources, locateIssues, type LoadedConfig } from '../config/load.js';
import { baseDirOf, readConfigSources, sourcesLabel, type ConfigSource } from '../config/sources.js';
import { compileConfig } from '../config/compile.js';
import { applyConfiguredWeights } from '../traffic/compile.js';
import { SplitState } from '../traffic/split-state.js';
import { ConfigError, type ConfigIssue } from '../config/errors.js';
import { HealthChecker } from './health-checker.js';
import { DiscoveryManager } from './discovery-manager.js';
import { ClusterWatch } from './cluster-watch.js';
import { renderClusterMetrics } from '../observe/cluster-metrics.js';
import { renderCacheMetrics, type ZoneRegion } from '../policies/cache/metrics.js';
import { renderMirrorMetrics } from '../traffic/mirror-metrics.js';
import { AdminFlags, nodeBases, type AdminSwitches } from '../shared/admin-flags.js';
import { AuditLog, type AuditEntry } from './audit.js';
import { ConfigWatcher } from './config-watch.js';
import { TlsWatch } from '../tls/watch.js';
import { ConfigSchema, type Config } from '../config/schema.js';
import { scrub, secretValues } from '../config/secrets.js';
import type { Plan } from '../config/plan.js';
import { diffConfigs } from '../config/diff.js';
import type { ConfigChange } from '../config/diff-format.js';
import { createCounters, CounterReader, MAX_WORKERS } from '../shared/counters.js';
import type { FromWorker, NodeError, ToWorker } from './messages.js';
import { AdminServer } from './admin.js';
import { DemoUpstream } from '../demo/upstream.js';
import { MetricsHub } from '../observe/metrics-hub.js';
import { renderWebSocketMetrics } from '../websocket/metrics.js';
import { GraphqlMetrics } from '../policies/graphql/metrics.js';
import { renderApqMetrics } from '../policies/graphql/persisted-redis.js';
import { ProcessMetrics } from '../observe/process-metrics.js';
import { ReloadStats, renderBuildInfo, type ReloadAction } from '../observe/control-metrics.js';
import { PromWriter, type ExpositionFormat } from '../observe/prometheus.js';
import { StatusListener } from './status-listener.js';
import { ConsumerService } from '../identity/service.js';
import { SharedRegistry } from '../shared/registry.js';
import { RateLimitService } from '../policies/rate-limit/service.js';
import { NoRolloutError, RolloutController, RolloutStateError, type RolloutCommand } from '../traffic/rollout-controller.js';
import { TrafficMetrics } from '../observe/traffic-metrics.js';
import { CacheCluster, type NamespacePurge } from '../policies/cache/purge-bus.js';
import { EtcdConfigSource, type EtcdSourceOptions } from './etcd-source.js';
import { EtcdRegistrySource } from './etcd-consumers.js';
import { keepBuiltinPrototypesFast } from '../shared/fast-prototypes.js';

// every module of the control plane is loaded now (ioredis among them): see src/shared/fast-prototypes.ts
keepBuiltinPrototypesFast();

const WORKER_FILE = fileURLToPath(new URL('../worker/worker.js', import.meta.url));

export interface GatewayOptions {
  /** the config file, or a directory of them */
  configFile: string;
  /** several files or directories, merged (src/config/sources.ts); configFile is then the first of them */
  configFiles?: readonly string[];
  /** overrides the config's `workers` */
  workers?: number;
  logger: Logger;
  /** enables POST /_fault/crash-worker on the admin port (tests of supervision) */
  faultInjection?: boolean;
  /** shared config from etcd, merged after the config files (src/control/etcd-source.ts) */
  etcd?: EtcdSourceOptions;
  /** called once every worker serves, before 'nanogate is serving' (the CLI collects start-up garbage here) */
  beforeServing?: () => void;
}

/** Who asked for a change, for the audit log: a token fingerprint, "anonymous", "file-watch", "SIGHUP". */
export interface Actor {
  who: string;
  from?: string;
}

/** One applied config version. */
export interface HistoryEntry {
  version: number;
  at: string;
  source: string;
  /** start, reload, apply, rollback */
  action: string;
  who: string;
  routes: number;
  /** rolled back from this version */
  rollbackOf?: number;
}

/**
 * How a change may be made. `allowInsecureAdmin`: the change may remove admin.token from the running admin API
 * (refused otherwise: afterwards anyone who can reach the admin port could change the gateway). Only the admin API
 * can say so (?allowInsecureAdmin=1, docs/admin-api.md); a file reload (SIGHUP, file watch) never does.
 */
export interface ApplyOptions {
  allowInsecureAdmin?: boolean;
}

/** What PUT /config?dryRun=1 answers: the running version, what would change, and the compile's warnings. */
export interface DryRunResult {
  version: number;
  changes: ConfigChange[];
  warnings: string[];
}

export interface ApplyResult {
  version: number;
  warnings: string[];
  /** where the time went: compile on the control plane, prepare and commit in the workers */
  timings?: { compileMs: number; prepareMs: number; commitMs: number };
}

/** A compiled config that a worker could not take (a policy's create() threw): nothing was applied. */
export class ApplyFailedError extends Error {
  override readonly name = 'ApplyFailedError';
}

/** stop() was called while start() was still running: start gives up at its next step, and nothing serves. */
export class StartAbortedError extends Error {
  override readonly name = 'StartAbortedError';
}

/** A switch named something the current plan does not have. */
export class UnknownTargetError extends Error {
  override readonly name = 'UnknownTargetError';
  constructor(readonly kind: 'route' | 'upstream' | 'node' | 'version', message: string) {
    super(message);
  }
}

/** How long a worker may take to build a prepared plan (a 10,000-route plan takes well under a second). */
const PREPARE_TIMEOUT_MS = 60_000;

interface WorkerSlot {
  index: number;
  worker: Worker | null;
  listening: boolean;
  stopping: boolean;
  restarts: number;
  lastStart: number;
}

/**
 * The control plane of one gateway node: loads and compiles config, owns shared memory, spawns and supervises the
 * worker threads, runs the admin API and the demo upstream, and applies new plans to every worker.
 */
export class Gateway {
  readonly options: GatewayOptions;
  readonly log: Logger;
  readonly counters = createCounters();
  readonly reader = new CounterReader(this.counters);
  config!: Config;
  plan!: Plan;
  port = 0;
  /** the node:http2 listener's port (listen.http2), 0 without one */
  http2Port = 0;
  readonly slots: WorkerSlot[] = [];
  admin: AdminServer | null = null;
  demo: DemoUpstream | null = null;
  /** the always-on metrics region and its Prometheus rendering (src/observe/) */
  metrics: MetricsHub | null = null;
  /** process_* and nodejs_* for the scrape; made at start */
  #processMetrics: ProcessMetrics | null = null;
  /** config changes by action and outcome, for the scrape */
  readonly reloads = new ReloadStats();
  /** `status: { host, port }`: /health, /ready and /metrics without the admin token */
  statusListener: StatusListener | null = null;
  history: HistoryEntry[] = [];
  audit: AuditLog | null = null;
  /** applied configs by version, the last `admin.history` of them, for rollback */
  readonly #kept = new Map<number, Config>();
  /** route-disabled and node-drained switches by name; written into every plan's flag region */
  #switches: AdminSwitches = { disabledRoutes: new Set(), drainedNodes: new Map() };
  /** the flag region of the current plan, and of a plan being prepared (switches go to both) */
  #flags: { flags: AdminFlags; plan: Plan }[] = [];
  /** applies run one at a time (file watch, SIGHUP and the API may ask at once) */
  #applyChain: Promise<unknown> = Promise.resolve();
  #planListeners = new Set<(worker: Worker, msg: FromWorker) => void>();
  #loadRequests = 0;
  #purgeRequests = 0;
  #watcher: ConfigWatcher | null = null;
  /** listener certificates: reload on file change, expiry warnings and gauge (src/tls/watch.ts) */
  readonly #tlsWatch: TlsWatch;
  /** digest of the config files' text last read, so a watch event without a content change does nothing */
  #fileDigest = '';
  #stopping = false;
  /** start() while it runs, so that a stop during start-up waits for it to give up before tearing down */
  #starting: Promise<void> | null = null;
  #pollTimer: NodeJS.Timeout | null = null;
  #waiters = new Map<string, Array<(msg: FromWorker) => void>>();

  /** the consumer table (config + registry) and its swaps */
  readonly consumers: ConsumerService;
  /** shared-memory regions of policies (rate-limit buckets…), the same buffers across reloads */
  readonly shared = new SharedRegistry();
  /** cluster-scope rate limits: the node's Redis connection and lease refills */
  readonly rateLimits: RateLimitService;
  /** the response cache across nodes: per L2 namespace, purges in Redis and the purge bus to the other nodes */
  readonly cacheCluster: CacheCluster;
  /** active health checks of upstream nodes, written into each upstream's shared region */
  readonly health: HealthChecker;
  /** logs passive ejections and panic mode once per change, decays ejection multipliers */
  readonly clusterWatch: ClusterWatch;
  /** discovery sources of upstreams that have one; a new node set is applied like a reload */
  readonly discovery: DiscoveryManager;
  /** canary rollouts of routes with traffic.rollout: evaluated here, weights written into the split regions */
  readonly rollouts: RolloutController;
  /** per-version traffic and rollout state for the scrape */
  readonly #trafficMetrics = new TrafficMetrics();
  readonly #graphqlMetrics = new GraphqlMetrics();
  /** the etcd config source, when started with one */
  readonly etcd: EtcdConfigSource | null;

  constructor(options: GatewayOptions) {
    this.options = options;
    this.log = options.logger;
    this.#tlsWatch = new TlsWatch(this.log, () =>
      this.reload({ who: 'certificate-watch' }).then(
        ({ version }) => this.log.info({ version }, 'reloaded after a certificate file change: new connections get the new certificates'),
        (err) => this.log.error({ err: (err as Error).message }, 'certificate change refused; the previous certificates keep serving'),
      ),
    );
    this.rateLimits = new RateLimitService(this.log);
    // a purge from another node is applied like an admin purge, in this node's workers only
    this.cacheCluster = new CacheCluster(this.log, (kind, value) => this.purgeCache(kind, value, 'bus'));
    this.health = new HealthChecker(this.log);
    this.clusterWatch = new ClusterWatch(this.log);
    this.discovery = new DiscoveryManager(this.log, () => this.#applyDiscovered());
    this.rollouts = new RolloutController(this.log);
    this.etcd = options.etcd ? new EtcdConfigSource(options.etcd, this.log, () => this.#applyEtcd()) : null;
    const etcd = this.etcd;
    this.consumers = new ConsumerService(this.log, baseDirOf(options.configFile), (table, generation) => this.#publishConsumers(table, generation), etcd ? (sink) => new EtcdRegistrySource(etcd, sink) : null);
  }

  /** Sends a new consumer table to every worker (shared, not copied); resolves when each uses it or has exited. */
  #publishConsumers(table: SharedArrayBuffer, generation: number): Promise<void> {
    const targets = this.slots.map((s) => s.worker).filter((w): w is Worker => w !== null);
    return new Promise((resolve) => {
      const waiting = new Set(targets);
      const done = () => {
        clearTimeout(timer);
        this.#planListeners.delete(listener);
        resolve();
      };
      const listener = (worker: Worker, m: FromWorker) => {
        if (!waiting.has(worker)) return;
        if (m.type === 'exited' || (m.type === 'consumers-applied' && m.generation >= generation)) waiting.delete(worker);
        if (waiting.size === 0) done();
      };
      const timer = setTimeout(done, 10_000);
      timer.unref();
      this.#planListeners.add(listener);
      for (const w of targets) w.postMessage({ type: 'consumers', table, generation } satisfies ToWorker);
      if (waiting.size === 0) done();
    });
  }

  get workerCount(): number {
    const w = this.options.workers ?? this.config.workers;
    return Math.min(MAX_WORKERS, w === 'auto' ? availableParallelism() : w);
  }

  get ready(): boolean {
    return !this.#stopping && this.slots.length > 0 && this.slots.every((s) => s.listening);
  }

  /**
   * Loads, compiles and starts serving. A stop() that comes meanwhile (SIGTERM during start-up) makes start throw
   * StartAbortedError at its next step; stop() then tears down whatever had been started.
   */
  start(): Promise<void> {
    this.#starting = this.#start();
    return this.#starting;
  }

  /** Throws when a stop came during start-up: every await in #start is followed by this. */
  #stillStarting(): void {
    if (this.#stopping) throw new StartAbortedError('stopped during start-up');
  }

  async #start(): Promise<void> {
    await this.etcd?.load();
    this.#stillStarting();
    const etcdRevision = this.etcd?.configRevision ?? 0;
    const loaded = this.#loadConfigFiles();
    this.config = loaded.config;
    const secrets = secretValues(this.config, ConfigSchema);
    let compiled;
    try {
      compiled = compileConfig(this.config, loaded.label, 1, this.shared, null, this.discovery.discovered);
    } catch (err) {
      throw scrubbed(locateIssues(err, loaded.origins), secrets);
    }
    const etcdIssue = this.#etcdRegistryIssue(this.config);
    if (etcdIssue) throw new ConfigError(loaded.label, [etcdIssue]);
    const warnings = compiled.warnings.map((w) => scrub(w, secrets));
    for (const w of warnings) this.log.warn(w);
    const flags = AdminFlags.forPlan(compiled.plan, this.#switches);
    const plan: Plan = { ...compiled.plan, adminFlags: flags.buffer };
    this.metrics = new MetricsHub(this.workerCount);
    this.metrics.attach(plan);
    this.#processMetrics = new ProcessMetrics();
    this.#flags = [{ flags, plan }];
    this.audit = new AuditLog(this.config.admin.auditLog, this.log);
    if (this.config.demo?.enabled) {
      this.demo = new DemoUpstream();
      await this.demo.listen(this.config.demo.host, this.config.demo.port);
      this.#stillStarting();
      this.log.info({ url: `http://${this.config.demo.host}:${this.demo.port}` }, 'demo upstream listening');
    }
    this.consumers.prepare(this.config, plan);
    this.rateLimits.prepare(this.config, plan);
    this.cacheCluster.prepare(plan.routes);
    await this.consumers.settle(true); // a registry's first fetch, so its consumers are served from the start
    this.#stillStarting();
    this.plan = plan;
    this.health.update(plan);
    this.clusterWatch.update(plan);
    this.rollouts.update(plan);
    this.#trafficMetrics.attach(plan);
    this.#graphqlMetrics.attach(plan);
    this.history.push({ version: 1, at: plan.createdAt, source: plan.source, action: 'start', who: 'control-plane', routes: plan.routes.length });
    this.#kept.set(1, this.config);
    this.admin = new AdminServer(this);
    await this.admin.listen(this.config.admin.host, this.config.admin.port);
    this.#stillStarting();
    if (this.config.status) {
      this.statusListener = new StatusListener(this);
      await this.statusListener.listen(this.config.status.host, this.config.status.port);
      this.#stillStarting();
    }

    // uSockets sets SO_REUSEPORT only for a non-zero port, so "port 0" is resolved here to a free port first;
    // then every worker binds that same port and the kernel spreads connections between them.
    if (this.plan.listen.port === 0) this.port = await freePort(this.plan.listen.host);
    else if (!this.plan.listen.reusePort) await refuseTakenPort(this.plan.listen.host, this.plan.listen.port);
    this.#stillStarting();
    await this.#spawn(0);
    this.#stillStarting();
    const rest = [];
    for (let i = 1; i < this.workerCount; i++) rest.push(this.#spawn(i));
    await Promise.all(rest);
    this.#stillStarting();
    this.#pollTimer = setInterval(() => this.reader.poll(), 1000);
    this.#pollTimer.unref();
    this.#configureWatch();
    // Discovery starts once every worker serves: its first answer is applied like a reload.
    this.discovery.update(plan);
    if (this.etcd) {
      this.etcd.describe(`${this.plan.listen.host}:${this.port}`, `${this.config.admin.host}:${this.admin.port}`);
      this.etcd.applied(etcdRevision, 1);
      this.etcd.run();
    }
    this.options.beforeServing?.();
    this.log.info({ port: this.port, ...(this.http2Port !== 0 ? { http2: this.http2Port } : {}), admin: this.admin.port, ...(this.statusListener ? { status: this.statusListener.port } : {}), workers: this.workerCount, routes: plan.routes.length }, 'nanogate is serving');
  }

  #spawn(index: number): Promise<void> {
    let slot = this.slots[index];
    if (!slot) slot = this.slots[index] = { index, worker: null, listening: false, stopping: false, restarts: 0, lastStart: 0 };
    let plan = this.port && this.plan.listen.port === 0 ? { ...this.plan, listen: { ...this.plan.listen, port: this.port } } : this.plan;
    // a restarted worker 0 binds the HTTP/2 port it had ("port: 0" is resolved once)
    const h2 = plan.listen.http2;
    if (h2 !== null && h2.port === 0 && this.http2Port !== 0) plan = { ...plan, listen: { ...plan.listen, http2: { ...h2, port: this.http2Port } } };
    const worker = new Worker(WORKER_FILE, { workerData: { index, workers: this.workerCount, plan, counters: this.counters } });
    slot.worker = worker;
    slot.listening = false;
    slot.lastStart = Date.now();
    return new Promise((resolve, reject) => {
      let settled = false;
      worker.on('message', (msg: FromWorker) => {
        if (msg.type === 'listening') {
          slot.listening = true;
          if (!this.port) this.port = msg.port;
          if (msg.http2Port !== undefined) this.http2Port = msg.http2Port;
          if (!settled) { settled = true; resolve(); }
        } else if (msg.type === 'metrics-plan') {
          this.metrics?.onPlanLabel(msg.index, msg.slot, msg.name);
        } else if (msg.type === 'cache-invalidate') {
          // an invalidation in one worker reaches the others, the L2 and the other nodes
          void this.purgeCacheEverywhere(msg.kind, msg.value, 'invalidation');
        } else if (msg.type === 'log') {
          this.log[msg.level]({ worker: index, ...msg.fields }, msg.msg);
        } else if (msg.type === 'internal-error') {
          this.log.error({ worker: index, err: { message: msg.message, stack: msg.stack } }, 'request failed with an internal error');
        } else if (msg.type === 'listen-failed') {
          if (!settled) { settled = true; reject(new Error(msg.reason)); }
        }
        if (this.#planListeners.size > 0) for (const l of this.#planListeners) l(worker, msg);
        const key = `${msg.type}:${msg.index}`;
        const list = this.#waiters.get(key);
        if (list) { this.#waiters.delete(key); for (const f of list) f(msg); }
      });
      worker.on('error', (err) => {
        this.log.error({ worker: index, err: { message: err.message, stack: err.stack } }, 'worker crashed');
      });
      worker.on('exit', (code) => {
        // An apply waiting on this worker stops waiting: its replacement starts with the plan current by then.
        for (const l of this.#planListeners) l(worker, { type: 'exited', index, inFlight: 0 });
        slot.listening = false;
        if (slot.worker === worker) slot.worker = null;
        if (!settled) { settled = true; reject(new Error(`worker ${index} exited during start (code ${code})`)); return; }
        if (this.#stopping || slot.stopping) return;
        // Unplanned exit: the other workers keep serving; this one comes back (slower if it keeps crashing).
        slot.restarts++;
        const delay = Date.now() - slot.lastStart < 5000 ? Math.min(5000, 100 * 2 ** Math.min(slot.restarts, 6)) : 0;
        this.log.error({ worker: index, code, restarts: slot.restarts, delayMs: delay }, 'worker exited unexpectedly; restarting');
        setTimeout(() => {
          if (this.#stopping) return;
          this.#spawn(index).catch((err) => this.log.error({ worker: index, err: err.message }, 'worker restart failed'));
        }, delay).unref();
      });
    });
  }

  #waitFor(type: FromWorker['type'], index: number): Promise<FromWorker> {
    return new Promise((resolve) => {
      const key = `${type}:${index}`;
      const list = this.#waiters.get(key) ?? [];
      list.push(resolve);
      this.#waiters.set(key, list);
    });
  }

  post(index: number, msg: ToWorker): void {
    this.slots[index]?.worker?.postMessage(msg);
  }

  // ------------------------------------------------------------------------------------------- reload and apply

  /** The config paths as given: files and directories. */
  get configPaths(): readonly string[] {
    return this.options.configFiles?.length ? this.options.configFiles : [this.options.configFile];
  }

  /** Reads every config file (a directory's files as they are now) and remembers their digest (for the file watch). */
  #readConfigSources(): ConfigSource[] {
    try {
      const sources = readConfigSources(this.configPaths);
      this.#fileDigest = sourcesDigest(sources);
      return sources;
    } catch (err) {
      this.#fileDigest = '';
      throw err;
    }
  }

  /** Reads and validates the config files; relative paths in them are read from the first one's directory. */
  #loadConfigFiles(): LoadedConfig {
    const files = this.#readConfigSources();
    return loadSources(this.etcd ? [...files, ...this.etcd.sources()] : files, process.env, this.etcd ? baseDirOf(this.options.configFile) : undefined);
  }

  /** `consumerRegistry: { etcd: true }` needs the etcd this node was started with. */
  #etcdRegistryIssue(config: Config): ConfigIssue | null {
    if (config.consumerRegistry?.etcd !== true || this.etcd) return null;
    return { path: 'consumerRegistry.etcd', message: 'this node was started without --etcd, so there is no etcd to read consumers from', hint: 'start it with --etcd URL, or name a file or url registry' };
  }

  /** Applies the etcd view as it is now, like a reload; the source is told which revision was applied or refused. */
  #applyEtcd(): Promise<void> {
    const etcd = this.etcd!;
    let revision = etcd.configRevision;
    return this.#audited({ who: 'etcd' }, 'reload', `etcd revision ${revision}`, () => {
      revision = etcd.configRevision; // the view when this apply runs, after any before it
      const loaded = this.#loadConfigFiles();
      return this.#apply(loaded.config, `${loaded.label} @${revision}`, 'etcd', { who: 'etcd' }, undefined, {}, loaded);
    }).then(
      (r) => {
        etcd.applied(revision, r.version);
        this.log.info({ version: r.version, revision }, 'config from etcd applied');
      },
      (err) => etcd.refused(revision, (err as Error).message),
    );
  }

  /** Applies the running config again with the node sets discovery found (DiscoveryManager calls it). */
  #applyDiscovered(): void {
    if (this.#stopping) return;
    const actor: Actor = { who: 'discovery' };
    void this.#audited(actor, 'discovery', this.plan.source, () => this.#apply(this.config, this.plan.source, 'discovery', actor)).then(
      (r) => this.log.info({ version: r.version }, 'discovered node sets applied'),
      (err) => this.log.error({ err: (err as Error).message }, 'discovered node sets refused; the previous nodes keep serving'),
    );
  }

  /**
   * Loads the config file again and applies it to every worker, or throws (ConfigError: the old plan keeps
   * serving). SIGHUP, POST /reload and the file watch all come here.
   */
  reload(actor: Actor = { who: 'control-plane' }, options: ApplyOptions = {}): Promise<ApplyResult> {
    return this.#audited(actor, 'reload', sourcesLabel(this.configPaths), () => {
      const loaded = this.#loadConfigFiles();
      return this.#apply(loaded.config, loaded.label, 'reload', actor, undefined, options, loaded);
    });
  }

  /** A config sent as text (PUT /config): YAML or JSON, `${ENV}` interpolated, checked like `nanogate validate`. */
  applyText(text: string, source: string, actor: Actor, options: ApplyOptions = {}): Promise<ApplyResult> {
    return this.applySources([{ file: source, text }], source, actor, options);
  }

  /**
   * Config files sent whole (PUT /config; several are merged like `--config a --config b`). A relative
   * `${file:PATH}` in them is read from the directory of the gateway's own config.
   */
  applySources(sources: readonly ConfigSource[], source: string, actor: Actor, options: ApplyOptions = {}): Promise<ApplyResult> {
    return this.#audited(actor, 'config.apply', source, () => {
      const loaded = loadSources(sources, process.env, baseDirOf(this.options.configFile));
      return this.#apply(loaded.config, source, 'apply', actor, undefined, options, loaded);
    });
  }

  /**
   * What applying these files would do, without applying anything (PUT /config?dryRun=1): the same load, compile
   * and checks as an apply, then the difference from the running config. Throws what an apply would throw.
   */
  async checkSources(sources: readonly ConfigSource[], source: string, actor: Actor, options: ApplyOptions = {}): Promise<DryRunResult> {
    // after any apply in progress, so the difference is from the config that will be running
    const run = async (): Promise<DryRunResult> => {
      const current = this.config;
      const secrets = secretValues(current, ConfigSchema);
      let loaded: LoadedConfig;
      try {
        loaded = loadSources(sources, process.env, baseDirOf(this.options.configFile));
      } catch (err) {
        throw scrubbed(err, secrets);
      }
      const all = [...new Set([...secrets, ...secretValues(loaded.config, ConfigSchema)])].sort((a, b) => b.length - a.length);
      try {
        const { warnings } = compileConfig(loaded.config, source, this.plan.version + 1, undefined, null, this.discovery.discovered);
        const issues = this.#changeIssues(loaded.config, actor, options);
        if (issues.length) throw new ConfigError(source, issues);
        return { version: this.plan.version, changes: diffConfigs(current, loaded.config), warnings: warnings.map((w) => scrub(w, all)) };
      } catch (err) {
        throw scrubbed(locateIssues(err, loaded.origins), all);
      }
    };
    const p = this.#applyChain.then(run, run);
    this.#applyChain = p.catch(() => {});
    return p;
  }

  /** Applies an already validated config. */
  apply(config: Config, source: string, actor: Actor = { who: 'control-plane' }): Promise<ApplyResult> {
    return this.#audited(actor, 'config.apply', source, () => this.#apply(config, source, 'apply', actor));
  }

  /** Applies a kept earlier config again, as a new version. */
  rollback(version: number, actor: Actor, options: ApplyOptions = {}): Promise<ApplyResult> {
    return this.#audited(actor, 'config.rollback', `v${version}`, () => {
      const config = this.#kept.get(version);
      if (!config) {
        const kept = [...this.#kept.keys()].join(', ');
        throw new UnknownTargetError('version', `version ${version} is not kept (kept: ${kept || 'none'})`);
      }
      const source = this.history.find((h) => h.version === version)?.source ?? `v${version}`;
      return this.#apply(config, source, 'rollback', actor, version, options);
    });
  }

  /** Versions still kept for rollback, newest last. */
  keptVersions(): number[] {
    return [...this.#kept.keys()];
  }

  keptConfig(version: number): Config | undefined {
    return this.#kept.get(version);
  }

  /** Runs `fn` after every earlier apply has finished, and records the outcome in the audit log. */
  #audited(actor: Actor, action: string, target: string, fn: () => Promise<ApplyResult>): Promise<ApplyResult> {
    const run = async (): Promise<ApplyResult> => {
      const fromVersion = this.plan.version;
      try {
        const r = await fn();
        this.reloads.record(RELOAD_ACTION[action], true);
        this.#record({ ...actor, action, target, result: 'ok', version: r.version, fromVersion });
        return r;
      } catch (err) {
        // a rollback to a version that is not kept tried nothing
        if (!(err instanceof UnknownTargetError)) this.reloads.record(RELOAD_ACTION[action], false);
        const refused = err instanceof ConfigError || err instanceof UnknownTargetError;
        // #apply scrubbed what it threw with the new config's secrets; this covers the running config's too.
        this.#record({ ...actor, action, target, result: refused ? 'refused' : 'failed', fromVersion, error: scrub((err as Error).message, secretValues(this.config, ConfigSchema)) });
        throw err;
      }
    };
    const p = this.#applyChain.then(run, run);
    this.#applyChain = p.catch(() => {});
    return p;
  }

  #record(entry: AuditEntry): void {
    this.audit?.write(entry);
  }

  /**
   * Compile, then two rounds with the workers: every worker prepares the new runtime while the old one serves;
   * only when all have, every worker commits (one assignment each). A failure in either compile or prepare leaves
   * every worker on the old plan.
   */
  async #apply(config: Config, source: string, action: string, actor: Actor, rollbackOf?: number, options: ApplyOptions = {}, loaded?: LoadedConfig): Promise<ApplyResult> {
    if (this.#stopping) throw new ApplyFailedError('the gateway is stopping');
    // What this throws or warns reaches the audit log, the log and the admin API: none of it may quote a credential
    // of the new config or of the running one (a policy's complaint may quote the value it refused).
    const secrets = [...new Set([...secretValues(config, ConfigSchema), ...secretValues(this.config, ConfigSchema)])].sort((a, b) => b.length - a.length);
    try {
      const result = await this.#applyChecked(config, source, action, actor, rollbackOf, options);
      result.warnings = result.warnings.map((w) => scrub(w, secrets));
      return result;
    } catch (err) {
      throw scrubbed(locateIssues(err, loaded?.origins ?? null), secrets);
    }
  }

  /** What may not change while the gateway runs, and a change that would open the admin API. */
  #changeIssues(config: Config, actor: Actor, options: ApplyOptions): ConfigIssue[] {
    const issues: ConfigIssue[] = [];
    const fixed = 'cannot change while the gateway runs (restart it to change it)';
    if (config.listen.port !== this.config.listen.port) issues.push({ path: 'listen.port', message: fixed });
    if (config.listen.host !== this.config.listen.host) issues.push({ path: 'listen.host', message: fixed });
    const h2a = this.config.listen.http2, h2b = config.listen.http2;
    if ((h2a === undefined) !== (h2b === undefined) || h2a?.port !== h2b?.port || h2a?.host !== h2b?.host || h2a?.h2c !== h2b?.h2c || (h2a?.clientCertificates === undefined) !== (h2b?.clientCertificates === undefined)) {
      issues.push({ path: 'listen.http2', message: `${fixed}; its certificates, CA bundle, per-name modes and headers may change` });
    }
    if (config.admin.port !== this.config.admin.port) issues.push({ path: 'admin.port', message: fixed });
    if (config.admin.host !== this.config.admin.host) issues.push({ path: 'admin.host', message: fixed });
    if (config.status?.port !== this.config.status?.port || config.status?.host !== this.config.status?.host) issues.push({ path: 'status', message: fixed });
    // Dropping the token opens the running admin API to anyone who can reach its port (a non-loopback admin host
    // without a token is refused by compileConfig whatever is asked, and the host cannot change while running).
    const dropsToken = this.config.admin.token !== undefined && config.admin.token === undefined;
    if (dropsToken && !options.allowInsecureAdmin) {
      issues.push({
        path: 'admin.token',
        message: `the running admin API (${this.config.admin.host}:${this.admin?.port ?? this.config.admin.port}) requires a token and this config removes it, so anyone who can reach that port could change the gateway`,
        // A change through the admin API has a peer address; SIGHUP and the file watch have none and cannot opt in.
        hint: actor.from !== undefined
          ? 'keep admin.token, or send the change with ?allowInsecureAdmin=1 if the admin API is meant to be open'
          : 'keep admin.token in the file, or restart the gateway to run without one',
      });
    }
    return issues;
  }

  async #applyChecked(config: Config, source: string, action: string, actor: Actor, rollbackOf: number | undefined, options: ApplyOptions): Promise<ApplyResult> {
    const version = this.plan.version + 1;
    const t0 = performance.now();
    const { plan: compiled, warnings } = compileConfig(config, source, version, this.shared, null, this.discovery.discovered);
    const issues = this.#changeIssues(config, actor, options);
    const etcdIssue = this.#etcdRegistryIssue(config);
    if (etcdIssue) issues.push(etcdIssue);
    const dropsToken = this.config.admin.token !== undefined && config.admin.token === undefined;
    let audit: AuditLog | null = null;
    if (config.admin.auditLog !== this.audit?.destination) {
      try {
        audit = new AuditLog(config.admin.auditLog, this.log);
      } catch (err) {
        issues.push({ path: 'admin.auditLog', message: `cannot open "${config.admin.auditLog}": ${(err as NodeJS.ErrnoException).code ?? err}` });
      }
    }
    if (issues.length) {
      audit?.close();
      throw new ConfigError(source, issues);
    }
    if (dropsToken) warnings.push('admin.token: removed as asked (allowInsecureAdmin); the admin API now accepts changes from anyone who can reach its port');
    if (this.options.workers === undefined && config.workers !== this.config.workers) {
      warnings.push(`workers: the worker count changes on the next start (running ${this.slots.length})`);
    }

    const switches: AdminSwitches = { disabledRoutes: new Set(this.#switches.disabledRoutes), drainedNodes: new Map([...this.#switches.drainedNodes].map(([k, v]) => [k, new Set(v)])) };
    const flags = AdminFlags.forPlan(compiled, switches);
    const plan: Plan = {
      ...compiled,
      listen: this.port && compiled.listen.port === 0 ? { ...compiled.listen, port: this.port } : compiled.listen,
      adminFlags: flags.buffer,
    };
    this.metrics?.attach(plan);
    const pendingFlags = { flags, plan };
    let t1 = 0, t2 = 0, t3 = 0;
    this.#flags.push(pendingFlags);
    this.consumers.prepare(config, plan);
    this.rateLimits.prepare(config, plan);
    try {
      const targets = this.slots.map((s) => s.worker).filter((w): w is Worker => w !== null);
      t1 = performance.now();
      const prepared = await this.#round(targets, { type: 'plan-prepare', plan }, version, 'plan-prepared', PREPARE_TIMEOUT_MS);
      t2 = performance.now();
      if (prepared.failures.length) {
        for (const w of targets) w.postMessage({ type: 'plan-abort', version } satisfies ToWorker);
        throw new ApplyFailedError(`a worker could not take version ${version}: ${prepared.failures.join('; ')}`);
      }
      // Commit: from here on the new plan is the gateway's plan (a worker restarted now starts with it).
      this.config = config;
      this.plan = plan;
      this.#switches = switches;
      // Configured split weights that changed are written now, when the plan serves (not when it compiled).
      for (const r of plan.routes) if (r.traffic !== null) applyConfiguredWeights(r.traffic);
      this.health.update(plan);
      this.clusterWatch.update(plan);
      this.discovery.update(plan);
      // after the configured split weights were written: a kept rollout writes its own again
      this.rollouts.update(plan);
      this.#trafficMetrics.attach(plan);
    this.#graphqlMetrics.attach(plan);
      this.cacheCluster.prepare(plan.routes);
      const committed = this.#round(targets, { type: 'plan-commit', version }, version, 'plan-applied', PREPARE_TIMEOUT_MS);
      // A worker that was restarted during the prepare round started with the old plan: bring it up to date.
      for (const s of this.slots) {
        if (s.worker && !targets.includes(s.worker)) {
          s.worker.postMessage({ type: 'plan-prepare', plan } satisfies ToWorker);
          s.worker.postMessage({ type: 'plan-commit', version } satisfies ToWorker);
        }
      }
      await committed;
      t3 = performance.now();
    } finally {
      // Keep writing switches to the region of whichever plan serves now.
      this.#flags = this.plan === plan ? [pendingFlags] : this.#flags.filter((f) => f !== pendingFlags);
      void this.consumers.settle(this.plan === plan);
    }

    this.history.push({ version, at: plan.createdAt, source, action, who: actor.who, routes: plan.routes.length, ...(rollbackOf !== undefined ? { rollbackOf } : {}) });
    this.#kept.set(version, config);
    const keep = config.admin.history;
    while (this.#kept.size > keep) this.#kept.delete(this.#kept.keys().next().value!);
    while (this.history.length > 1000) this.history.shift();
    if (audit) {
      const old = this.audit;
      this.audit = audit;
      old?.close();
    }
    this.admin?.setToken(config.admin.token);
    this.#configureWatch();
    const ms = (a: number, b: number) => Math.round((b - a) * 10) / 10;
    const timings = { compileMs: ms(t0, t1), prepareMs: ms(t1, t2), commitMs: ms(t2, t3) };
    this.log.info({ version, routes: plan.routes.length, action, who: actor.who, ...timings }, 'config applied');
    return { version, warnings, timings };
  }

  /** Posts `msg` to each worker and waits for its `want` reply (or its exit); collects plan-failed messages. */
  #round(targets: Worker[], msg: ToWorker, version: number, want: FromWorker['type'], timeoutMs: number): Promise<{ failures: string[] }> {
    return new Promise((resolve) => {
      const waiting = new Set(targets);
      const failures: string[] = [];
      const done = () => {
        clearTimeout(timer);
        this.#planListeners.delete(listener);
        resolve({ failures });
      };
      const listener = (worker: Worker, m: FromWorker) => {
        if (!waiting.has(worker)) return;
        if (m.type === 'exited') waiting.delete(worker);
        else if (m.type === 'plan-failed' && m.version === version) {
          failures.push(`worker ${m.index}: ${m.message}`);
          waiting.delete(worker);
        } else if (m.type === want && 'version' in m && m.version === version) waiting.delete(worker);
        else return;
        if (waiting.size === 0) done();
      };
      const timer = setTimeout(() => {
        failures.push(`${waiting.size} worker(s) did not answer within ${timeoutMs} ms`);
        done();
      }, timeoutMs);
      this.#planListeners.add(listener);
      for (const w of targets) w.postMessage(msg);
      if (waiting.size === 0) done();
    });
  }

  #configureWatch(): void {
    this.#tlsWatch.sync(this.#stopping ? null : this.plan.listen.tls);
    const want = this.config.reload.watch && !this.#stopping;
    const w = this.#watcher;
    if (w && (!want || w.debounceMs !== this.config.reload.debounceMs)) {
      w.close();
      this.#watcher = null;
    }
    if (want && !this.#watcher) {
      this.#watcher = new ConfigWatcher(
        this.configPaths.map((p) => baseDirOf(p)),
        this.config.reload.debounceMs,
        () => this.#onFileEvent(),
        (err) => this.log.error({ err: err.message }, 'config file watch failed; SIGHUP still reloads'),
      );
      this.#watcher.start();
      // The files were read before this apply (or start-up) began, and a change made since then sent no event to a
      // watcher that did not exist yet: compare once now, so it is not lost until the next event.
      this.#onFileEvent();
    }
  }

  #onFileEvent(): void {
    let sources: ConfigSource[];
    try {
      sources = readConfigSources(this.configPaths);
    } catch {
      return; // mid-rename, or removed: the next event (or SIGHUP) tries again
    }
    if (sourcesDigest(sources) === this.#fileDigest) return;
    this.reload({ who: 'file-watch' }).then(
      ({ version, warnings }) => this.log.info({ version, warnings }, 'reloaded after a config file change'),
      (err) => this.log.error({ err: (err as Error).message }, 'config file change refused; the previous config keeps serving'),
    );
  }

  // ------------------------------------------------------------------------------------------- admin switches

  /** Disables or enables a route by name in every worker at once (no new plan); kept across reloads by name. */
  setRouteDisabled(name: string, disabled: boolean, actor: Actor): void {
    const action = disabled ? 'route.disable' : 'route.enable';
    if (!this.plan.routes.some((r) => r.name === name)) {
      this.#record({ ...actor, action, target: name, result: 'refused', error: 'unknown route' });
      throw new UnknownTargetError('route', `no route named "${name}"`);
    }
    if (disabled) this.#switches.disabledRoutes.add(name);
    else this.#switches.disabledRoutes.delete(name);
    for (const { flags, plan } of this.#flags) {
      for (const r of plan.routes) if (r.name === name) flags.setRoute(r.id, disabled);
    }
    this.#record({ ...actor, action, target: name, result: 'ok', version: this.plan.version });
    this.log.info({ route: name, disabled, who: actor.who }, disabled ? 'route disabled' : 'route enabled');
  }

  /**
   * Sets the split weights of a route (per-mille, one per version, adding to 1000) in its shared region, at once for
   * every worker. They hold until a config changes the route's configured weights or a rollout moves them.
   */
  setTrafficWeights(name: string, perMille: readonly number[], actor: Actor): void {
    const action = 'route.traffic';
    const route = this.plan.routes.find((r) => r.name === name);
    if (!route) {
      this.#record({ ...actor, action, target: name, result: 'refused', error: 'unknown route' });
      throw new UnknownTargetError('route', `no route named "${name}"`);
    }
    const t = route.traffic!;
    new SplitState(t.region, t.versions.length).setWeights(perMille);
    const weights = Object.fromEntries(t.versions.map((v, i) => [v.name, perMille[i] / 10]));
    this.#record({ ...actor, action, target: name, result: 'ok', version: this.plan.version, weights });
    this.log.info({ route: name, weights, who: actor.who }, 'traffic weights set');
  }

  /** Drains (no new requests; in-flight ones finish) or undrains a node of an upstream, by its index in the config. */
  setNodeDrained(upstream: string, index: number, drained: boolean, actor: Actor): void {
    const action = drained ? 'node.drain' : 'node.undrain';
    const target = `${upstream}/nodes/${index}`;
    const u = this.plan.upstreams.find((x) => x.name === upstream);
    const node = u?.nodes[index];
    if (!u || !node) {
      this.#record({ ...actor, action, target, result: 'refused', error: u ? 'unknown node' : 'unknown upstream' });
      if (!u) throw new UnknownTargetError('upstream', `no upstream named "${upstream}"`);
      throw new UnknownTargetError('node', `upstream "${upstream}" has ${u.nodes.length} node(s); there is no node ${index}`);
    }
    let set = this.#switches.drainedNodes.get(upstream);
    if (drained) {
      if (!set) this.#switches.drainedNodes.set(upstream, (set = new Set()));
      set.add(node.url);
    } else if (set) {
      set.delete(node.url);
      if (set.size === 0) this.#switches.drainedNodes.delete(upstream);
    }
    for (const { flags, plan } of this.#flags) {
      const bases = nodeBases(plan);
      plan.upstreams.forEach((pu, ui) => {
        if (pu.name !== upstream) return;
        pu.nodes.forEach((n, i) => {
          if (n.url === node.url) flags.setNode(bases[ui] + i, drained);
        });
      });
    }
    this.#record({ ...actor, action, target: `${target} (${node.url})`, result: 'ok', version: this.plan.version });
    this.log.info({ upstream, node: node.url, drained, who: actor.who }, drained ? 'node drained' : 'node undrained');
  }

  /**
   * A rollout command from the admin API (pause, resume, promote, abort), audited. Throws UnknownTargetError for an
   * unknown route, NoRolloutError for a route without a rollout, RolloutStateError when the state does not allow it.
   */
  rolloutCommand(name: string, cmd: RolloutCommand, actor: Actor) {
    const action = `rollout.${cmd}`;
    try {
      if (!this.plan.routes.some((r) => r.name === name)) throw new UnknownTargetError('route', `no route named "${name}"`);
      const d = this.rollouts.command(name, cmd, actor.who);
      this.#record({ ...actor, action, target: name, result: 'ok', version: this.plan.version });
      return d;
    } catch (err) {
      if (err instanceof UnknownTargetError || err instanceof NoRolloutError || err instanceof RolloutStateError) {
        this.#record({ ...actor, action, target: name, result: 'refused', error: err.message });
      }
      throw err;
    }
  }

  routeDisabled(name: string): boolean {
    return this.#switches.disabledRoutes.has(name);
  }

  nodeDrained(upstream: string, url: string): boolean {
    return this.#switches.drainedNodes.get(upstream)?.has(url) ?? false;
  }

  /**
   * Requests in flight per node, summed over the workers (each answers from its own pools; a worker that does not
   * answer within `timeoutMs` is left out and counted in `missing`), and each node's newest failure seen by any.
   */
  upstreamLoad(timeoutMs = 2000): Promise<{ load: Map<string, number[]>; resent: Map<string, number[]>; errors: Map<string, (NodeError | null)[]>; missing: number }> {
    const id = ++this.#loadRequests;
    const targets = this.slots.map((s) => s.worker).filter((w): w is Worker => w !== null);
    return new Promise((resolve) => {
      const load = new Map<string, number[]>();
      const resent = new Map<string, number[]>();
      const errors = new Map<string, (NodeError | null)[]>();
      const waiting = new Set(targets);
      const done = () => {
        clearTimeout(timer);
        this.#planListeners.delete(listener);
        resolve({ load, resent, errors, missing: waiting.size });
      };
      const listener = (worker: Worker, m: FromWorker) => {
        if (!waiting.has(worker)) return;
        if (m.type === 'upstream-load' && m.id === id) {
          for (const u of m.upstreams) {
            const sum = load.get(u.name) ?? [];
            u.inFlight.forEach((n, i) => (sum[i] = (sum[i] ?? 0) + n));
            load.set(u.name, sum);
            const again = resent.get(u.name) ?? [];
            u.resent.forEach((n, i) => (again[i] = (again[i] ?? 0) + n));
            resent.set(u.name, again);
            const newest = errors.get(u.name) ?? [];
            u.lastErrors.forEach((e, i) => {
              if (e !== null && (newest[i] == null || e.at > newest[i]!.at)) newest[i] = e;
            });
            errors.set(u.name, newest);
          }
        } else if (m.type !== 'exited') return;
        waiting.delete(worker);
        if (waiting.size === 0) done();
      };
      const timer = setTimeout(done, timeoutMs);
      this.#planListeners.add(listener);
      for (const w of targets) w.postMessage({ type: 'upstream-load', id } satisfies ToWorker);
      if (waiting.size === 0) done();
    });
  }

  /**
   * Purges the response cache in every worker of this node (each applies it to every zone it holds) and sums what
   * they removed; a worker that does not answer within `timeoutMs` is counted in `missing`. `origin` says who asked
   * ("admin", "invalidation", "bus").
   */
  purgeCache(kind: 'key' | 'prefix' | 'tag', value: string, origin = 'admin', timeoutMs = 2000, actor?: Actor): Promise<{ removed: number; workers: number; missing: number }> {
    if (actor !== undefined) this.#record({ ...actor, action: 'cache.purge', target: `${kind}:${value}`, result: 'ok', version: this.plan.version });
    const id = ++this.#purgeRequests;
    const targets = this.slots.map((s) => s.worker).filter((w): w is Worker => w !== null);
    return new Promise((resolve) => {
      let removed = 0;
      const waiting = new Set(targets);
      const done = () => {
        clearTimeout(timer);
        this.#planListeners.delete(listener);
        resolve({ removed, workers: targets.length - waiting.size, missing: waiting.size });
      };
      const listener = (worker: Worker, m: FromWorker) => {
        if (!waiting.has(worker)) return;
        if (m.type === 'cache-purged' && m.id === id) removed += m.removed;
        else if (m.type !== 'exited') return;
        waiting.delete(worker);
        if (waiting.size === 0) done();
      };
      const timer = setTimeout(done, timeoutMs);
      this.#planListeners.add(listener);
      for (const w of targets) w.postMessage({ type: 'cache-purge', id, kind, value } satisfies ToWorker);
      if (waiting.size === 0) done();
    });
  }

  /**
   * A purge made on this node (admin API, invalidation): with an L2, first in Redis, then in this node's workers
   * while the other nodes apply it, then in Redis again (PurgeBus.purge says why); without one, the workers only.
   * `cluster` is null without an L2, else each namespace's outcome (how many nodes confirmed).
   */
  async purgeCacheEverywhere(kind: 'key' | 'prefix' | 'tag', value: string, origin: string, timeoutMs = 2000, actor?: Actor): Promise<{ removed: number; workers: number; missing: number; cluster: NamespacePurge[] | null }> {
    const local = () => this.purgeCache(kind, value, origin, timeoutMs, actor);
    if (!this.cacheCluster.active) return { ...(await local()), cluster: null };
    const r = await this.cacheCluster.purge(kind, value, local);
    return { ...r.local, cluster: r.namespaces };
  }

  /** The cache zones of the current plan with their metrics regions (one per zone name). */
  #cacheZones(): ZoneRegion[] {
    const seen = new Map<string, ZoneRegion>();
    for (const r of this.plan.routes) {
      for (const p of r.policies ?? []) {
        if (p.name !== 'cache') continue;
        const d = p.data as { zone: string; region: SharedArrayBuffer };
        if (!seen.has(d.zone)) seen.set(d.zone, { zone: d.zone, region: d.region });
      }
    }
    return [...seen.values()];
  }

  /** Log rotation (SIGUSR2): every worker reopens its file access-log destinations. */
  reopenLogs(): void {
    for (const s of this.slots) this.post(s.index, { type: 'reopen-logs' });
  }

  /** The scrape for GET /metrics (Prometheus text or OpenMetrics): read from shared memory, the workers are not involved. */
  renderMetrics(format: ExpositionFormat = 'prometheus'): string {
    // the watcher's counts (panic episodes) as of this scrape, not of its last tick
    this.clusterWatch.tick();
    const out = new PromWriter();
    renderBuildInfo(out);
    this.metrics?.render({ configVersion: this.plan.version, workersUp: this.slots.filter((s) => s.listening).length }, out);
    this.reloads.render(out);
    renderClusterMetrics(this.plan, {
      discovery: this.discovery.status(),
      healthChanges: this.health.changes,
      panics: this.clusterWatch.panics,
      checksTotal: this.health.checksTotal,
      checkFailuresTotal: this.health.failuresTotal,
    }, out);
    this.#trafficMetrics.render(out, this.rollouts);
    renderCacheMetrics(this.#cacheZones(), out);
    this.cacheCluster.render(out);
    renderWebSocketMetrics(this.plan, out);
    this.#graphqlMetrics.render(out);
    renderApqMetrics(this.plan, out);
    renderMirrorMetrics(this.plan, out);
    this.etcd?.render(out);
    this.#tlsWatch.render(out);
    this.#processMetrics?.render(out);
    return out.text(format);
  }

  crashWorker(index: number): boolean {
    if (!this.options.faultInjection || !this.slots[index]?.worker) return false;
    this.post(index, { type: 'crash' });
    return true;
  }

  /** Graceful stop: workers stop accepting, finish in-flight requests (up to the drain timeout) and exit. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    // During start-up: let start() reach its next step and give up, so no worker is spawned after this point.
    await this.#starting?.catch(() => {});
    this.consumers.stop();
    this.rollouts.stop();
    this.#trafficMetrics.close();
    this.#graphqlMetrics.close();
    this.health.stop();
    this.clusterWatch.stop();
    void this.discovery.stop();
    void this.rateLimits.close();
    void this.cacheCluster.close();
    await this.etcd?.stop();
    const timeoutMs = this.plan?.proxy.drainTimeoutMs ?? 10000;
    const exits = this.slots.map(
      (s) =>
        new Promise<void>((resolve) => {
          const w = s.worker;
          if (!w) return resolve();
          const hard = setTimeout(() => void w.terminate(), timeoutMs + 2000);
          w.once('exit', () => { clearTimeout(hard); resolve(); });
          w.postMessage({ type: 'drain', timeoutMs } satisfies ToWorker);
        }),
    );
    await Promise.all(exits);
    if (this.#pollTimer) clearInterval(this.#pollTimer);
    this.metrics?.close();
    this.#processMetrics?.close();
    this.#watcher?.close();
    this.#watcher = null;
    this.#tlsWatch.close();
    await this.statusListener?.close();
    await this.admin?.close();
    this.audit?.close();
    await this.demo?.close();
    this.log.info('nanogate stopped');
  }

  status() {
    this.reader.poll();
    return {
      version: this.plan.version,
      ready: this.ready,
      port: this.port,
      workers: this.slots.map((s) => ({
        index: s.index,
        listening: s.listening,
        restarts: s.restarts,
        requests: this.reader.total(s.index, 0),
        inFlight: this.reader.total(s.index, 1),
        responses: { '1xx': this.reader.total(s.index, 2), '2xx': this.reader.total(s.index, 3), '3xx': this.reader.total(s.index, 4), '4xx': this.reader.total(s.index, 5), '5xx': this.reader.total(s.index, 6) },
        gatewayErrors: this.reader.total(s.index, 7),
        upstreamErrors: this.reader.total(s.index, 8),
      })),
      rateLimit: this.rateLimits.status(),
      cacheL2: this.cacheCluster.active ? this.cacheCluster.status() : null,
      ...(this.etcd ? { etcd: this.etcd.status() } : {}),
    };
  }
}

/** audit action of a config change to its `action` label in nanogate_config_reloads_total */
const RELOAD_ACTION: Readonly<Record<string, ReloadAction>> = { reload: 'reload', 'config.apply': 'apply', 'config.rollback': 'rollback', discovery: 'discovery' };

/** Digest of a set of config files: their names and texts (a file added to a config directory changes it). */
function sourcesDigest(sources: readonly ConfigSource[]): string {
  const h = createHash('sha256');
  for (const s of sources) h.update(s.file).update('\u0000').update(s.text).update('\u0000');
  return h.digest('hex');
}

/**
 * Fails when something already listens on host:port. The workers bind with SO_REUSEPORT (uSockets sets it for
 * every non-zero port, so that the workers of this gateway share the port), and so would silently join a second
 * gateway, or any server that set it too, and take part of its traffic. A plain bind (no SO_REUSEPORT) conflicts
 * with any listener there, including one on the wildcard address, so it tells. Bound and released at once; the
 * window until the first worker binds is that of a spawn.
 */
function refuseTakenPort(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createNetServer();
    probe.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') {
        reject(new Error(`${host}:${port} is already in use (another nanogate or another server listens there); stop it, choose another listen.port, or set listen.reusePort: true to share the port on purpose`));
      } else reject(new Error(`cannot listen on ${host}:${port}: ${err.code ?? err.message}`));
    });
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

/** A port the kernel considers free right now on `host` (bound and released at once). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createNetServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** `err` with every credential in `secrets` (and every URL password) taken out of its message, same class. */
function scrubbed(err: unknown, secrets: readonly string[]): unknown {
  if (err instanceof ConfigError) {
    return new ConfigError(
      scrub(err.file, secrets),
      err.issues.map((i) => ({ ...i, message: scrub(i.message, secrets), ...(i.hint !== undefined ? { hint: scrub(i.hint, secrets) } : {}) })),
    );
  }
  if (err instanceof ApplyFailedError) return new ApplyFailedError(scrub(err.message, secrets));
  return err;
}

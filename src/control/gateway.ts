import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { loadConfigFile } from '../config/load.js';
import { compileConfig } from '../config/compile.js';
import type { Config } from '../config/schema.js';
import type { Plan } from '../config/plan.js';
import { createCounters, CounterReader, MAX_WORKERS } from '../shared/counters.js';
import type { FromWorker, ToWorker } from './messages.js';
import { AdminServer } from './admin.js';
import { DemoUpstream } from '../demo/upstream.js';

const WORKER_FILE = fileURLToPath(new URL('../worker/worker.js', import.meta.url));

export interface GatewayOptions {
  configFile: string;
  /** overrides the config's `workers` */
  workers?: number;
  logger: Logger;
  /** enables POST /_fault/crash-worker on the admin port (tests of supervision) */
  faultInjection?: boolean;
}

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
  readonly slots: WorkerSlot[] = [];
  admin: AdminServer | null = null;
  demo: DemoUpstream | null = null;
  history: { version: number; at: string; source: string }[] = [];
  #stopping = false;
  #pollTimer: NodeJS.Timeout | null = null;
  #waiters = new Map<string, Array<(msg: FromWorker) => void>>();

  constructor(options: GatewayOptions) {
    this.options = options;
    this.log = options.logger;
  }

  get workerCount(): number {
    const w = this.options.workers ?? this.config.workers;
    return Math.min(MAX_WORKERS, w === 'auto' ? availableParallelism() : w);
  }

  get ready(): boolean {
    return !this.#stopping && this.slots.length > 0 && this.slots.every((s) => s.listening);
  }

  async start(): Promise<void> {
    this.config = loadConfigFile(this.options.configFile);
    const { plan, warnings } = compileConfig(this.config, this.options.configFile, 1);
    for (const w of warnings) this.log.warn(w);
    if (this.config.demo?.enabled) {
      this.demo = new DemoUpstream();
      await this.demo.listen(this.config.demo.host, this.config.demo.port);
      this.log.info({ url: `http://${this.config.demo.host}:${this.demo.port}` }, 'demo upstream listening');
    }
    this.plan = plan;
    this.history.push({ version: 1, at: plan.createdAt, source: plan.source });
    this.admin = new AdminServer(this);
    await this.admin.listen(this.config.admin.host, this.config.admin.port);

    // The first worker binds (port 0 picks a free port); the others join it on the same port.
    await this.#spawn(0);
    const rest = [];
    for (let i = 1; i < this.workerCount; i++) rest.push(this.#spawn(i));
    await Promise.all(rest);
    this.#pollTimer = setInterval(() => this.reader.poll(), 1000);
    this.#pollTimer.unref();
    this.log.info({ port: this.port, admin: this.admin.port, workers: this.workerCount, routes: plan.routes.length }, 'nanogate is serving');
  }

  #spawn(index: number): Promise<void> {
    let slot = this.slots[index];
    if (!slot) slot = this.slots[index] = { index, worker: null, listening: false, stopping: false, restarts: 0, lastStart: 0 };
    const plan = this.port && this.plan.listen.port === 0 ? { ...this.plan, listen: { ...this.plan.listen, port: this.port } } : this.plan;
    const worker = new Worker(WORKER_FILE, { workerData: { index, plan, counters: this.counters } });
    slot.worker = worker;
    slot.listening = false;
    slot.lastStart = Date.now();
    return new Promise((resolve, reject) => {
      let settled = false;
      worker.on('message', (msg: FromWorker) => {
        if (msg.type === 'listening') {
          slot.listening = true;
          if (!this.port) this.port = msg.port;
          if (!settled) { settled = true; resolve(); }
        } else if (msg.type === 'internal-error') {
          this.log.error({ worker: index, err: { message: msg.message, stack: msg.stack } }, 'request failed with an internal error');
        } else if (msg.type === 'listen-failed') {
          if (!settled) { settled = true; reject(new Error(msg.reason)); }
        }
        const key = `${msg.type}:${msg.index}`;
        const list = this.#waiters.get(key);
        if (list) { this.#waiters.delete(key); for (const f of list) f(msg); }
      });
      worker.on('error', (err) => {
        this.log.error({ worker: index, err: { message: err.message, stack: err.stack } }, 'worker crashed');
      });
      worker.on('exit', (code) => {
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

  /** Loads the config file again; applies it to every worker or throws (the old plan keeps serving). */
  async reload(): Promise<{ version: number; warnings: string[] }> {
    const config = loadConfigFile(this.options.configFile);
    return this.apply(config, this.options.configFile);
  }

  async apply(config: Config, source: string): Promise<{ version: number; warnings: string[] }> {
    const version = this.plan.version + 1;
    const { plan, warnings } = compileConfig(config, source, version);
    if (plan.listen.port !== this.plan.listen.port || plan.listen.host !== this.plan.listen.host) {
      throw new Error('listen.host and listen.port cannot change without a restart');
    }
    const effective = this.port && plan.listen.port === 0 ? { ...plan, listen: { ...plan.listen, port: this.port } } : plan;
    const acks = this.slots.filter((s) => s.worker).map((s) => this.#waitFor('plan-applied', s.index));
    this.config = config;
    this.plan = effective;
    for (const s of this.slots) this.post(s.index, { type: 'plan', plan: effective });
    await Promise.all(acks);
    this.history.push({ version, at: plan.createdAt, source });
    this.log.info({ version, routes: plan.routes.length }, 'config applied');
    return { version, warnings };
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
    await this.admin?.close();
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
    };
  }
}

import { performance } from 'node:perf_hooks';
import { isAbsolute, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { Plan } from '../config/plan.js';
import type { ConfigIssue } from '../config/errors.js';
import { CONSUMERS_SERVICE } from './consumers.js';
import { mergeConsumers, normalizeConsumers } from './normalize.js';
import { FileSource, UrlSource, registryTableOf, type RegistrySink, type RegistrySource } from './registry.js';
import { buildConsumerTable, readSpecs, stampGeneration, tableBytes, type ConsumerSpec } from './table.js';

export interface ConsumerStatus {
  generation: number;
  consumers: number;
  bytes: number;
  registry: {
    location: string;
    consumers: number | null;
    lastLoadAt: string | null;
    lastError: string | null;
    lastErrorAt: string | null;
  } | null;
}

/** Makes the etcd registry source (the Gateway passes one when the node was started with --etcd). */
export type EtcdRegistryFactory = (sink: RegistrySink) => RegistrySource;

/** Posts a new table to every worker; resolves when they all use it. */
export type PublishTable = (table: SharedArrayBuffer, generation: number) => Promise<void>;

/**
 * The control plane's owner of the consumer table. It merges the config's consumers with those of the registry
 * source (when one is configured), builds a new shared table for each new version with the next generation number,
 * puts it into the plan's services (so a worker that starts later gets it) and has the Gateway post it to the
 * running workers. A registry that is down or sends something invalid changes nothing: the last good table keeps
 * serving and the log says why.
 */
export class ConsumerService implements RegistrySink {
  readonly #log: Logger;
  readonly #baseDir: string;
  readonly #publish: PublishTable;
  readonly #etcd: EtcdRegistryFactory | null;
  /** the generation of the committed table */
  generation = 0;
  table: SharedArrayBuffer | null = null;
  consumers = 0;
  /** generations are never reused, also not those of a prepared plan that was then dropped */
  #nextGeneration = 0;
  /** the committed plan (its services get every new table, so a worker started later has it) */
  #plan: Plan | null = null;
  #staticKey: string | null = null;
  #staticSpecs: ConsumerSpec[] = [];
  #registryKey: string | null = null;
  /**
   * The last good registry version, kept as its own table (about 200 bytes per consumer) rather than as spec
   * objects (about 1 KB each): specs are read back from it only when the config's consumers change.
   */
  #registryTable: SharedArrayBuffer | null = null;
  #registryCount = 0;
  #source: RegistrySource | null = null;
  #pending: Pending | null = null;
  /** a registry version arrived while a plan was being applied: publish it once that plan is settled */
  #deferred = false;
  #lastLoadAt: string | null = null;
  #lastError: string | null = null;
  #lastErrorAt: string | null = null;
  #unavailable: string | null = null;
  #applied: Promise<void> = Promise.resolve();

  constructor(log: Logger, baseDir: string, publish: PublishTable, etcd: EtcdRegistryFactory | null = null) {
    this.#log = log;
    this.#etcd = etcd;
    this.#baseDir = baseDir;
    this.#publish = publish;
  }

  /**
   * Puts the table for `config` into a plan about to be sent to the workers: the current table when the config's
   * consumers and registry settings did not change (so per-worker key caches stay warm), a new one otherwise.
   * Nothing changes here until settle(true).
   */
  prepare(config: Config, plan: Plan): void {
    const reg = config.consumerRegistry ?? null;
    const registryKey = JSON.stringify(reg);
    const staticKey = JSON.stringify(config.consumers ?? []);
    const registryChanged = registryKey !== this.#registryKey;
    const staticChanged = staticKey !== this.#staticKey;
    let staticSpecs = this.#staticSpecs;
    if (staticChanged) staticSpecs = normalizeConsumers(config.consumers ?? [], 'consumers', [] as ConfigIssue[]);
    let table = this.table;
    let generation = this.generation;
    let consumers = this.consumers;
    if (staticChanged || registryChanged || table === null) {
      generation = ++this.#nextGeneration;
      const compiled = plan.services[CONSUMERS_SERVICE];
      if (reg === null && compiled instanceof SharedArrayBuffer) {
        // The compile step built this very table; it is not published yet, so its generation may still be set.
        stampGeneration(compiled, generation);
        table = compiled;
        consumers = staticSpecs.length;
      } else {
        const fromRegistry = registryChanged || this.#registryTable === null ? [] : readSpecs(this.#registryTable);
        const merged = this.#merge(staticSpecs, fromRegistry);
        table = buildConsumerTable(merged, generation);
        consumers = merged.length;
      }
    }
    (plan.services as Record<string, unknown>)[CONSUMERS_SERVICE] = table;
    this.#pending = { plan, reg, registryKey, staticKey, staticSpecs, table: table!, generation, consumers };
  }

  /**
   * Ends a prepare: `committed` when the plan now serves, false when it was dropped. A changed registry source
   * starts here; the promise resolves after its first fetch (successful or not), so that `start` can serve
   * registry consumers from the first request on.
   */
  settle(committed: boolean): Promise<void> {
    const p = this.#pending;
    this.#pending = null;
    let first = Promise.resolve();
    if (committed && p !== null) {
      this.#plan = p.plan;
      this.table = p.table;
      this.generation = p.generation;
      this.consumers = p.consumers;
      this.#staticKey = p.staticKey;
      this.#staticSpecs = p.staticSpecs;
      if (p.registryKey !== this.#registryKey) {
        this.#source?.stop();
        this.#source = null;
        this.#registryTable = null;
        this.#registryCount = 0;
        this.#deferred = false;
        this.#registryKey = p.registryKey;
        this.#lastError = this.#lastErrorAt = this.#lastLoadAt = this.#unavailable = null;
        if (p.reg !== null) {
          this.#source = this.#makeSource(p.reg);
          first = this.#source.start();
        }
      }
    }
    if (this.#deferred) {
      this.#deferred = false;
      this.#swap(this.#source?.location ?? 'registry', performance.now(), null);
    }
    return first;
  }

  /** Resolves when the last table swap reached every worker. */
  settled(): Promise<void> {
    return this.#applied;
  }

  stop(): void {
    this.#source?.stop();
    this.#source = null;
  }

  status(): ConsumerStatus {
    return {
      generation: this.generation,
      consumers: this.consumers,
      bytes: this.table ? tableBytes(this.table) : 0,
      registry: this.#source
        ? {
            location: this.#source.location,
            consumers: this.#registryTable === null ? null : this.#registryCount,
            lastLoadAt: this.#lastLoadAt,
            lastError: this.#lastError,
            lastErrorAt: this.#lastErrorAt,
          }
        : null,
    };
  }

  // ------------------------------------------------------------------------------------ RegistrySink

  update(text: string, origin: string): void {
    this.updateDocuments([{ text, origin }], origin);
  }

  updateDocuments(docs: readonly { text: string; origin: string }[], origin: string): void {
    const started = performance.now();
    let loaded: { table: SharedArrayBuffer; specs: ConsumerSpec[] };
    try {
      loaded = registryTableOf(docs, origin);
    } catch (err) {
      this.#lastError = (err as Error).message;
      this.#lastErrorAt = new Date().toISOString();
      this.#log.error({ source: origin, reason: this.#lastError, generation: this.generation }, 'consumer registry update refused; the last good copy keeps serving');
      throw err;
    }
    this.#registryTable = loaded.table;
    this.#registryCount = loaded.specs.length;
    this.#lastLoadAt = new Date().toISOString();
    this.#lastError = null;
    this.#unavailable = null;
    if (this.#pending !== null) this.#deferred = true; // a plan is being applied; settle() publishes this version
    else this.#swap(origin, started, loaded.specs);
  }

  unavailable(reason: string): void {
    this.#lastError = reason;
    this.#lastErrorAt = new Date().toISOString();
    // Once per outage at warn level: a registry that is down for an hour must not write a line per poll.
    const level = this.#unavailable === reason ? 'debug' : 'warn';
    this.#unavailable = reason;
    this.#log[level]({ source: this.#source?.location, reason, generation: this.generation }, 'consumer registry unavailable; the last good copy keeps serving');
  }

  // ------------------------------------------------------------------------------------ internals

  #makeSource(reg: NonNullable<Config['consumerRegistry']>): RegistrySource {
    // the Gateway refuses `etcd: true` on a node started without --etcd, before a plan gets here
    if (reg.etcd === true && this.#etcd !== null) return this.#etcd(this);
    if (reg.file !== undefined) {
      const file = isAbsolute(reg.file) ? reg.file : resolve(this.#baseDir, reg.file);
      return new FileSource(file, reg.intervalSeconds, this);
    }
    return new UrlSource(reg.url!, reg.intervalSeconds, reg.timeoutMs, reg.headers, this);
  }

  #merge(fromConfig: readonly ConsumerSpec[], fromRegistry: readonly ConsumerSpec[]): ConsumerSpec[] {
    const { specs, skipped } = mergeConsumers(fromConfig, fromRegistry);
    if (skipped.length) {
      this.#log.warn(
        { count: skipped.length, first: skipped.slice(0, 5) },
        'registry consumers left out: their id, key or JWT mapping is already used by a consumer of the config',
      );
    }
    return specs;
  }

  /**
   * Makes config + registry consumers the current table and sends it to the workers. Without config consumers the
   * registry's own table (new, never published) is the table; otherwise the two are merged into a new one.
   */
  #swap(origin: string, started: number, registrySpecs: ConsumerSpec[] | null): void {
    const generation = ++this.#nextGeneration;
    let table: SharedArrayBuffer;
    if (this.#staticSpecs.length === 0 && this.#registryTable !== null) {
      table = this.#registryTable;
      stampGeneration(table, generation);
      this.consumers = this.#registryCount;
    } else {
      const specs = this.#merge(this.#staticSpecs, registrySpecs ?? (this.#registryTable ? readSpecs(this.#registryTable) : []));
      table = buildConsumerTable(specs, generation);
      this.consumers = specs.length;
    }
    this.table = table;
    this.generation = generation;
    if (this.#plan) (this.#plan.services as Record<string, unknown>)[CONSUMERS_SERVICE] = table;
    this.#applied = this.#publish(table, generation).catch((err) => {
      this.#log.error({ generation, err: (err as Error).message }, 'consumer table could not be sent to every worker');
    });
    this.#log.info(
      { source: origin, consumers: this.consumers, generation, bytes: tableBytes(table), ms: Math.round(performance.now() - started) },
      'consumer table swapped in',
    );
  }
}

interface Pending {
  plan: Plan;
  reg: NonNullable<Config['consumerRegistry']> | null;
  registryKey: string;
  staticKey: string;
  staticSpecs: ConsumerSpec[];
  table: SharedArrayBuffer;
  generation: number;
  consumers: number;
}

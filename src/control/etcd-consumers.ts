import type { RegistrySink, RegistrySource } from '../identity/registry.js';
import type { EtcdConfigSource, EtcdConsumersReport } from './etcd-source.js';
import { EtcdWatch } from './etcd-watch.js';

/**
 * The consumer registry from etcd (`consumerRegistry: { etcd: true }` on a node started with --etcd): every key under
 * `<prefix>consumers/` is a registry document (`{consumers: [...]}`, JSON or YAML), their consumers taken together in
 * key order. It is watched by its own EtcdWatch, with the config watch's rules, and each change goes to the
 * ConsumerService like a registry file's: validated whole (a refusal names the key, the path and the reason, and the
 * last good table keeps serving), then swapped into every worker without a plan change. While etcd is away the view
 * and the table stay as they were.
 *
 * One document is one etcd value: etcd refuses a request over its --max-request-bytes (1.5 MiB by default, about
 * 7,000 consumers with one key each); a larger registry is split over several keys.
 */
export class EtcdRegistrySource implements RegistrySource {
  readonly location: string;
  readonly #etcd: EtcdConfigSource;
  readonly #sink: RegistrySink;
  readonly #watch: EtcdWatch;
  /** the etcd revision of the registry this node serves (0: none applied yet) */
  revision = 0;
  appliedAt: string | null = null;
  /** the newest revision refused, 0 if none since the last applied one */
  refusedRevision = 0;

  constructor(etcd: EtcdConfigSource, sink: RegistrySink) {
    this.#etcd = etcd;
    this.#sink = sink;
    this.location = `etcd:${etcd.consumersPrefix}`;
    const log = etcd.log.child({ prefix: etcd.consumersPrefix });
    this.#watch = new EtcdWatch(etcd.client, etcd.consumersPrefix, log, { checkIntervalMs: etcd.checkIntervalMs, requestTimeoutMs: etcd.requestTimeoutMs }, async () => this.#apply());
  }

  /** Lists the prefix and applies it (resolves when done, successful or not), then watches it. */
  async start(): Promise<void> {
    this.#etcd.consumers = this;
    try {
      await this.#watch.load();
      this.#apply();
    } catch (err) {
      // run() re-lists until etcd answers; the config's own consumers serve meanwhile
      this.#sink.unavailable(`cannot read ${this.location}: ${(err as Error).message}`);
    }
    this.#watch.run();
  }

  stop(): void {
    if (this.#etcd.consumers === this) this.#etcd.consumers = null;
    void this.#watch.stop();
  }

  report(): EtcdConsumersReport {
    return { revision: this.revision, appliedAt: this.appliedAt, refusedRevision: this.refusedRevision || null, state: this.#watch.state };
  }

  #apply(): void {
    const revision = this.#watch.viewRevision;
    const docs = this.#watch.entries().map((kv) => ({ text: kv.value, origin: `etcd:${kv.key}` }));
    try {
      this.#sink.updateDocuments(docs, this.location);
      this.revision = Math.max(this.revision, revision);
      this.appliedAt = new Date().toISOString();
      if (this.refusedRevision <= revision) this.refusedRevision = 0;
    } catch {
      this.refusedRevision = revision; // the sink logged why
    }
    void this.#etcd.report();
  }
}

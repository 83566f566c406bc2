import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { ConsulDiscoveryConfig } from './schema.js';
import { get, Requests } from './http.js';
import { Backoff, LoopPacer, NodeSetKeeper, SourceTimer, reasonOf, type DiscoveredNode, type DiscoverySource, type DiscoveryStatus } from './source.js';

/**
 * Nodes from Consul's health API (`GET /v1/health/service/<name>?passing=1`), followed with blocking queries: each
 * query carries the X-Consul-Index of the last answer and hangs until the service changes or `wait` runs out.
 *
 * The index follows Consul's rules for blocking clients (api-docs/features/blocking):
 *  - an index lower than the last one (a snapshot restore, a new leader, an upgrade) resets it to 0, so the next query
 *    returns at once with a fresh index instead of blocking on one that may never be reached;
 *  - an index of 0 in an answer is raised to 1: blocking on 0 does not block, and a client that does it busy-loops;
 *  - the loop is paced by a token bucket with a burst of 2 (minIntervalMs per token): quick successive changes are
 *    delivered at once, a churning service degrades to one query per interval, never to a busy loop.
 * A query that outlives wait + wait/16 (Consul's own jitter) + timeoutMs is dropped as hung.
 *
 * Failure: a non-200, a transport error, a body that is not a JSON array of service entries, or an empty list keep the
 * last good set. Failed queries are retried with the same index after a back-off (retryMinMs doubling to retryMaxMs).
 */

interface ServiceEntry {
  Node?: { Node?: string; Address?: string; Meta?: Record<string, string> };
  Service?: { Address?: string; Port?: number; Weights?: { Passing?: number } };
}

export class ConsulSource implements DiscoverySource {
  readonly #config: ConsulDiscoveryConfig;
  readonly #keeper: NodeSetKeeper;
  readonly #timer = new SourceTimer();
  readonly #requests = new Requests();
  readonly #pacer: LoopPacer;
  readonly #backoff: Backoff;
  readonly #base: URL;
  #index = 0;
  #running: Promise<void> | null = null;
  #started = false;

  constructor(config: ConsulDiscoveryConfig, logger: Logger) {
    this.#config = config;
    this.#keeper = new NodeSetKeeper(`consul:${config.service}${config.datacenter ? `@${config.datacenter}` : ''}`, logger);
    this.#pacer = new LoopPacer(config.minIntervalMs);
    this.#backoff = new Backoff(config.retryMinMs, config.retryMaxMs);
    this.#base = new URL(`/v1/health/service/${encodeURIComponent(config.service)}`, config.address);
  }

  /** The index the next query blocks on (0: it will not block). */
  get index(): number {
    return this.#index;
  }

  start(onNodes: (nodes: readonly DiscoveredNode[]) => void): void {
    if (this.#started) throw new Error('a discovery source starts once');
    this.#started = true;
    this.#keeper.attach(onNodes);
    this.#next();
  }

  async stop(): Promise<void> {
    this.#timer.stop();
    this.#keeper.detach();
    this.#requests.abortAll();
    await this.#running;
  }

  status(): DiscoveryStatus {
    return this.#keeper.status();
  }

  #next(): void {
    const wait = this.#pacer.take();
    if (wait > 0) this.#timer.set(wait, () => this.#query());
    else this.#query();
  }

  #query(): void {
    if (this.#timer.stopped) return;
    const running: Promise<void> = this.#queryOnce()
      .then(
        () => {
          this.#backoff.reset();
          this.#next();
        },
        (err) => {
          if (this.#timer.stopped) return;
          this.#keeper.reject(reasonOf(err));
          this.#timer.set(this.#backoff.fail(), () => this.#next());
        },
      )
      .finally(() => {
        // The next query may already have started (a paced 0 wait runs it synchronously): only clear our own.
        if (this.#running === running) this.#running = null;
      });
    this.#running = running;
  }

  #url(): URL {
    const c = this.#config;
    const url = new URL(this.#base);
    if (c.passingOnly) url.searchParams.set('passing', 'true');
    if (c.datacenter) url.searchParams.set('dc', c.datacenter);
    for (const tag of c.tags) url.searchParams.append('tag', tag);
    if (this.#index > 0) {
      url.searchParams.set('index', String(this.#index));
      url.searchParams.set('wait', `${Math.round(c.waitSeconds * 1000)}ms`);
    }
    return url;
  }

  async #queryOnce(): Promise<void> {
    const c = this.#config;
    const headers: Record<string, string> = { accept: 'application/json' };
    const token = c.tokenFile ? (await readFile(c.tokenFile, 'utf8')).trim() : c.token;
    if (token) headers['x-consul-token'] = token;
    if (this.#timer.stopped) return;
    const blocking = this.#index > 0;
    const timeoutMs = (blocking ? c.waitSeconds * 1000 * (1 + 1 / 16) : 0) + c.timeoutMs;
    const res = await get(this.#url(), { headers, timeoutMs }, this.#requests);
    if (this.#timer.stopped) return;
    if (res.status !== 200) throw new Error(`${this.#base.host} answered ${res.status}${statusDetail(res.body)}`);
    const header = res.headers['x-consul-index'];
    const index = typeof header === 'string' && /^\d+$/.test(header) ? Number(header) : NaN;
    if (!Number.isSafeInteger(index)) throw new Error(`${this.#base.host} answered without a valid X-Consul-Index`);
    let entries: unknown;
    try {
      entries = JSON.parse(res.body);
    } catch {
      throw new Error(`${this.#base.host} answered with a body that is not JSON`);
    }
    const nodes = toNodes(entries);
    // Only a well-formed answer moves the index: a broken one is asked again, with the index that produced it.
    this.#index = index < this.#index ? 0 : Math.max(1, index);
    this.#keeper.accept(nodes);
  }
}

function toNodes(entries: unknown): DiscoveredNode[] {
  if (!Array.isArray(entries)) throw new Error('the answer is not a list of service entries');
  const nodes: DiscoveredNode[] = [];
  for (const e of entries as ServiceEntry[]) {
    const service = e?.Service;
    // An empty Service.Address means "the node's address" (Consul's own convention).
    const host = service?.Address || e?.Node?.Address;
    const port = service?.Port;
    if (typeof host !== 'string' || typeof port !== 'number') throw new Error('a service entry has no address or port');
    const weight = service?.Weights?.Passing ?? 1;
    const zone = e.Node?.Meta?.zone;
    nodes.push(zone ? { host, port, weight, zone } : { host, port, weight });
  }
  return nodes;
}

/** The first line of an error body, short, for the reason (Consul answers errors in plain text). */
function statusDetail(body: string): string {
  const line = body.split('\n')[0].trim().slice(0, 120);
  return line ? `: ${line}` : '';
}

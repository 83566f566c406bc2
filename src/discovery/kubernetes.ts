import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { KubernetesDiscoveryConfig } from './schema.js';
import { get, getLines, Requests } from './http.js';
import { Backoff, LoopPacer, NodeSetKeeper, SourceTimer, reasonOf, type DiscoveredNode, type DiscoverySource, type DiscoveryStatus } from './source.js';

/**
 * Nodes from the EndpointSlices of a Kubernetes Service (discovery.k8s.io/v1), the way client-go's reflector follows
 * a resource: list once (`labelSelector=kubernetes.io/service-name=SVC`), then watch from the list's resourceVersion
 * with bookmarks, resuming each watch from the last resourceVersion seen. A service has several slices (one per ~100
 * endpoints, one per address type); they are joined, and a DELETED slice takes its endpoints with it.
 *
 * Which endpoints: those whose `conditions.ready` is true (nil counts as true, as the API documents). When none is
 * ready, those that are `serving` while `terminating` are used instead, as kube-proxy does since Kubernetes 1.26: during
 * a rolling update of a single-replica service the terminating pod still serves, and no endpoint at all would be worse.
 * The port is the slice port named `portName`, or the slice's only port. The first address of an endpoint is used.
 *
 * Failure: a 410 Gone (the resourceVersion was compacted away), also as an ERROR watch event with code 410, re-lists. A
 * watch that drops or goes silent past watchSeconds + timeoutMs is resumed from the last resourceVersion; an event
 * that is not valid JSON or not an EndpointSlice means the stream cannot be trusted: it is dropped and the source
 * re-lists. A failed list, a non-200 or a set with no usable endpoint keep the last good set (retryMinMs doubling to
 * retryMaxMs). The bearer token file is read before every request, so a rotated projected token is picked up.
 */

interface Slice {
  metadata: { name: string; resourceVersion?: string };
  addressType?: string;
  ports?: { name?: string; port?: number; protocol?: string }[] | null;
  endpoints?: {
    addresses?: string[];
    conditions?: { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null };
    zone?: string;
  }[] | null;
}

interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: Slice & { code?: number; message?: string };
}

/** Thrown when only a fresh list can help (410 Gone, a stream that cannot be trusted). */
class Relist extends Error {}

export class KubernetesSource implements DiscoverySource {
  readonly #config: KubernetesDiscoveryConfig;
  readonly #keeper: NodeSetKeeper;
  readonly #timer = new SourceTimer();
  readonly #requests = new Requests();
  readonly #backoff: Backoff;
  readonly #pacer: LoopPacer;
  readonly #path: string;
  readonly #selector: string;
  readonly #slices = new Map<string, Slice>();
  #resourceVersion = '';
  #endWatch: (() => void) | null = null;
  #started = false;
  readonly #pending = new Set<Promise<void>>();
  #lists = 0;
  #watches = 0;

  constructor(config: KubernetesDiscoveryConfig, logger: Logger) {
    this.#config = config;
    this.#keeper = new NodeSetKeeper(`kubernetes:${config.namespace}/${config.service}${config.portName ? `:${config.portName}` : ''}`, logger);
    this.#backoff = new Backoff(config.retryMinMs, config.retryMaxMs);
    // A server that ends every watch at once must not turn the loop into a busy loop.
    this.#pacer = new LoopPacer(config.retryMinMs);
    this.#path = `/apis/discovery.k8s.io/v1/namespaces/${config.namespace}/endpointslices`;
    this.#selector = `kubernetes.io/service-name=${config.service}`;
  }

  /** The resourceVersion the next watch resumes from. */
  get resourceVersion(): string {
    return this.#resourceVersion;
  }

  /** How many lists and watches were started (for tests and the admin API). */
  get counts(): { lists: number; watches: number } {
    return { lists: this.#lists, watches: this.#watches };
  }

  start(onNodes: (nodes: readonly DiscoveredNode[]) => void): void {
    if (this.#started) throw new Error('a discovery source starts once');
    this.#started = true;
    this.#keeper.attach(onNodes);
    this.#relist();
  }

  /** Starts a list, kept track of so that stop() can wait for it. */
  #relist(): void {
    const p: Promise<void> = this.#list().finally(() => this.#pending.delete(p));
    this.#pending.add(p);
  }

  async stop(): Promise<void> {
    this.#timer.stop();
    this.#keeper.detach();
    this.#endWatch?.();
    this.#endWatch = null;
    this.#requests.abortAll();
    await Promise.all(this.#pending);
  }

  status(): DiscoveryStatus {
    return this.#keeper.status();
  }

  async #headers(): Promise<{ headers: Record<string, string>; ca?: Buffer }> {
    const c = this.#config;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (c.tokenFile) headers.authorization = `Bearer ${(await readFile(c.tokenFile, 'utf8')).trim()}`;
    return c.caFile ? { headers, ca: await readFile(c.caFile) } : { headers };
  }

  #fail(err: unknown, then: () => void): void {
    if (this.#timer.stopped) return;
    this.#keeper.reject(reasonOf(err));
    this.#timer.set(this.#backoff.fail(), then);
  }

  async #list(): Promise<void> {
    if (this.#timer.stopped) return;
    this.#lists++;
    const url = new URL(this.#path, this.#config.apiServer);
    url.searchParams.set('labelSelector', this.#selector);
    let body: { metadata?: { resourceVersion?: unknown }; items?: unknown };
    try {
      const { headers, ca } = await this.#headers();
      if (this.#timer.stopped) return;
      const res = await get(url, { headers, ca, timeoutMs: this.#config.timeoutMs }, this.#requests);
      if (res.status !== 200) throw new Error(`list answered ${res.status}${statusMessage(res.body)}`);
      try {
        body = JSON.parse(res.body);
      } catch {
        throw new Error('list answered with a body that is not JSON');
      }
      const rv = body?.metadata?.resourceVersion;
      if (typeof rv !== 'string' || !Array.isArray(body.items) || !body.items.every(isSlice)) throw new Error('list answered with something that is not an EndpointSliceList');
      this.#slices.clear();
      for (const s of body.items as Slice[]) this.#slices.set(s.metadata.name, s);
      this.#resourceVersion = rv;
    } catch (err) {
      return this.#fail(err, () => this.#relist());
    }
    if (this.#timer.stopped) return;
    this.#apply();
    this.#backoff.reset();
    this.#watch();
  }

  #watch(): void {
    const wait = this.#pacer.take();
    // take() has already counted this call: after the wait, start the watch without taking a token again.
    if (wait > 0) return this.#timer.set(wait, () => this.#startWatch());
    this.#startWatch();
  }

  #startWatch(): void {
    const p: Promise<void> = this.#watchOnce().finally(() => this.#pending.delete(p));
    this.#pending.add(p);
  }

  async #watchOnce(): Promise<void> {
    if (this.#timer.stopped) return;
    this.#watches++;
    const c = this.#config;
    const url = new URL(this.#path, c.apiServer);
    url.searchParams.set('labelSelector', this.#selector);
    url.searchParams.set('watch', '1');
    url.searchParams.set('resourceVersion', this.#resourceVersion);
    url.searchParams.set('allowWatchBookmarks', 'true');
    url.searchParams.set('timeoutSeconds', String(Math.ceil(c.watchSeconds)));
    let auth: { headers: Record<string, string>; ca?: Buffer };
    try {
      auth = await this.#headers();
    } catch (err) {
      return this.#fail(err, () => this.#watch());
    }
    if (this.#timer.stopped) return;
    let failure: Error | null = null;
    let status = 0;
    this.#endWatch = getLines(url, { ...auth, timeoutMs: c.timeoutMs, idleMs: c.watchSeconds * 1000 + c.timeoutMs }, this.#requests, {
      onResponse: (code) => {
        status = code;
        if (code === 200) {
          // Connected: the set in use is current again (clears an error left by a dropped watch).
          this.#apply();
          return true;
        }
        return false;
      },
      onLine: (line) => {
        if (status !== 200) {
          failure = status === 410 ? new Relist(`watch answered 410 Gone${statusMessage(line)}`) : new Error(`watch answered ${status}${statusMessage(line)}`);
          return false;
        }
        try {
          return this.#event(line);
        } catch (err) {
          failure = err as Error;
          return false;
        }
      },
      onEnd: (err) => {
        this.#endWatch = null;
        if (this.#timer.stopped) return;
        const why = failure ?? err;
        if (why instanceof Relist) {
          this.#keeper.reject(why.message);
          // A 410 is routine (compaction): re-list at once, paced like a watch.
          const wait = this.#pacer.take();
          return wait > 0 ? this.#timer.set(wait, () => this.#relist()) : this.#relist();
        }
        if (why) return this.#fail(why, () => this.#watch());
        this.#backoff.reset();
        this.#watch(); // the server ended the watch (timeoutSeconds): resume
      },
    });
  }

  /** One watch event; returns false to end the stream. Throws Relist when the stream cannot be trusted. */
  #event(line: string): boolean {
    let ev: WatchEvent;
    try {
      ev = JSON.parse(line);
    } catch {
      throw new Relist('watch sent an event that is not JSON');
    }
    if (ev?.type === 'ERROR') {
      const code = ev.object?.code;
      const message = ev.object?.message ? `: ${String(ev.object.message).slice(0, 200)}` : '';
      // 410: the resourceVersion is gone, only a list helps; anything else: resume from it after a back-off.
      throw code === 410 ? new Relist(`watch event ERROR 410${message}`) : new Error(`watch event ERROR ${code ?? '(no code)'}${message}`);
    }
    const rv = ev?.object?.metadata?.resourceVersion;
    if (ev?.type === 'BOOKMARK') {
      if (typeof rv === 'string') this.#resourceVersion = rv;
      return true;
    }
    if ((ev?.type !== 'ADDED' && ev?.type !== 'MODIFIED' && ev?.type !== 'DELETED') || !isSlice(ev.object)) {
      throw new Relist(`watch sent an event that is not an EndpointSlice change (${typeof ev?.type === 'string' ? ev.type.slice(0, 20) : typeof ev?.type})`);
    }
    if (ev.type === 'DELETED') this.#slices.delete(ev.object.metadata.name);
    else this.#slices.set(ev.object.metadata.name, ev.object);
    if (typeof rv === 'string') this.#resourceVersion = rv;
    this.#apply();
    return true;
  }

  /** Joins the slices into one node set and hands it to the keeper (which refuses an empty one). */
  #apply(): void {
    const c = this.#config;
    const ready: DiscoveredNode[] = [];
    const terminating: DiscoveredNode[] = [];
    const problems = new Set<string>();
    for (const s of this.#slices.values()) {
      const port = slicePort(s, c.portName);
      if (typeof port === 'string') {
        if (s.endpoints?.length) problems.add(port);
        continue;
      }
      for (const e of s.endpoints ?? []) {
        const host = e.addresses?.[0];
        if (typeof host !== 'string') continue;
        const cond = e.conditions ?? {};
        const isReady = cond.ready ?? true;
        const isServing = cond.serving ?? isReady;
        const isTerminating = cond.terminating ?? false;
        const node = e.zone ? { host, port, weight: c.weight, zone: e.zone } : { host, port, weight: c.weight };
        if (isReady) ready.push(node);
        else if (isServing && isTerminating) terminating.push(node);
      }
    }
    const nodes = ready.length ? ready : terminating;
    if (nodes.length === 0) {
      const why = problems.size ? [...problems].join('; ') : `${this.#slices.size} EndpointSlice(s) with no ready or serving endpoint`;
      this.#keeper.reject(why);
      return;
    }
    this.#keeper.accept(nodes);
  }
}

function isSlice(v: unknown): v is Slice {
  const s = v as Slice;
  return typeof s === 'object' && s !== null && typeof s.metadata?.name === 'string' && (s.endpoints == null || Array.isArray(s.endpoints)) && (s.ports == null || Array.isArray(s.ports));
}

/** The slice's port for `portName`, or a reason why it has none. */
function slicePort(s: Slice, portName: string | undefined): number | string {
  const ports = s.ports ?? [];
  const pick = portName === undefined ? (ports.length === 1 ? ports[0] : undefined) : ports.find((p) => (p.name ?? '') === portName);
  if (pick === undefined) {
    return portName === undefined
      ? `EndpointSlice ${s.metadata.name} has ${ports.length} ports; set portName`
      : `EndpointSlice ${s.metadata.name} has no port named "${portName}"`;
  }
  return typeof pick.port === 'number' ? pick.port : `EndpointSlice ${s.metadata.name}: port "${pick.name ?? ''}" has no number`;
}

/** The message of a Kubernetes Status body, short, for the reason. */
function statusMessage(body: string): string {
  try {
    const m = (JSON.parse(body) as { message?: unknown }).message;
    return typeof m === 'string' && m ? `: ${m.slice(0, 200)}` : '';
  } catch {
    return '';
  }
}

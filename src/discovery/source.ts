import { isIP } from 'node:net';
import type { Logger } from 'pino';

/**
 * What every discovery source shares: the node and status types, the keeper of the last good node set, and the two
 * timers every loop needs (a back-off after failures, a token bucket that keeps a fast-churning source from turning
 * into a busy loop).
 *
 * The rule all sources follow (APISIX #13299 is the failure it avoids: an empty answer from a registry emptied the
 * upstream and every request got a 503): a source never hands its owner an empty or invalid set. A failure, a time-out,
 * an empty answer or a broken one keeps the last good set serving, is counted in status(), and is logged once per
 * change of state, not once per attempt.
 */

/** One upstream node as a source found it. */
export interface DiscoveredNode {
  /** an IP address or a host name, without brackets */
  readonly host: string;
  readonly port: number;
  /** relative weight, at least 1 */
  readonly weight: number;
  /** the zone the source reports (Kubernetes `zone`, Consul node meta), when it reports one */
  readonly zone?: string;
}

export interface DiscoveryStatus {
  /** e.g. `dns:_http._tcp.api.internal/SRV`, `file:nodes.yaml` */
  readonly source: string;
  /** size of the node set in use */
  readonly nodes: number;
  /** Date.now() of the last answer that was accepted (changed or not) */
  readonly lastSuccessAt: number | null;
  /** why the last attempt failed; null once an attempt succeeds again */
  readonly lastError: string | null;
  /** failed attempts since start */
  readonly errors: number;
  /** node sets handed to the owner since start */
  readonly updates: number;
  /** true while the set in use is older than the source's latest failed attempt (or there is no set yet) */
  readonly stale: boolean;
}

export interface DiscoverySource {
  /** Starts watching or polling. `onNodes` gets every accepted change, never an empty or invalid set. */
  start(onNodes: (nodes: readonly DiscoveredNode[]) => void): void;
  /** Stops every timer, socket and request; resolves when nothing of the source is left running. */
  stop(): Promise<void>;
  status(): DiscoveryStatus;
}

const MAX_NODES = 10_000;

/**
 * Checks, de-duplicates (first host:port wins) and sorts a candidate set; returns a reason instead when the set must be
 * refused. The sort makes the order-independent compare a string compare and gives owners a stable order.
 */
export function normalizeNodes(nodes: readonly DiscoveredNode[]): DiscoveredNode[] | string {
  if (nodes.length === 0) return 'the answer has no nodes';
  if (nodes.length > MAX_NODES) return `the answer has ${nodes.length} nodes (at most ${MAX_NODES})`;
  const seen = new Map<string, DiscoveredNode>();
  for (const n of nodes) {
    if (typeof n.host !== 'string' || n.host.length === 0 || n.host.length > 253) return `invalid host ${JSON.stringify(n.host)}`;
    if (!isIP(n.host) && !/^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$/.test(n.host)) return `invalid host ${JSON.stringify(n.host)}`;
    if (!Number.isInteger(n.port) || n.port < 1 || n.port > 65535) return `invalid port ${JSON.stringify(n.port)} for ${n.host}`;
    if (!Number.isInteger(n.weight) || n.weight < 1) return `invalid weight ${JSON.stringify(n.weight)} for ${n.host}:${n.port}`;
    const key = nodeKey(n);
    if (!seen.has(key)) seen.set(key, n.zone === undefined ? { host: n.host, port: n.port, weight: n.weight } : { ...n });
  }
  return [...seen.values()].sort((a, b) => (nodeKey(a) < nodeKey(b) ? -1 : nodeKey(a) > nodeKey(b) ? 1 : 0));
}

export function nodeKey(n: DiscoveredNode): string {
  return n.host.includes(':') ? `[${n.host}]:${n.port}` : `${n.host}:${n.port}`;
}

/** A digest of a normalized set: equal for the same nodes with the same weights and zones, in any order. */
function fingerprint(nodes: readonly DiscoveredNode[]): string {
  return nodes.map((n) => `${nodeKey(n)}/${n.weight}/${n.zone ?? ''}`).join(',');
}

/**
 * Holds the node set in use and the status counters. A source calls accept() with every answer and reject() with every
 * failure; the keeper decides whether the owner hears about it.
 */
export class NodeSetKeeper {
  readonly source: string;
  readonly #logger: Logger;
  #onNodes: ((nodes: readonly DiscoveredNode[]) => void) | null = null;
  #nodes: readonly DiscoveredNode[] = [];
  #fingerprint = '';
  #lastSuccessAt: number | null = null;
  #lastError: string | null = null;
  #errors = 0;
  #updates = 0;

  constructor(source: string, logger: Logger) {
    this.source = source;
    this.#logger = logger;
  }

  get nodes(): readonly DiscoveredNode[] {
    return this.#nodes;
  }

  /** Sets the owner's callback; a set accepted before this is handed over at once. */
  attach(onNodes: (nodes: readonly DiscoveredNode[]) => void): void {
    this.#onNodes = onNodes;
  }

  detach(): void {
    this.#onNodes = null;
  }

  /** An answer from the source. Returns true when the set in use changed (and the owner was told). */
  accept(candidate: readonly DiscoveredNode[]): boolean {
    const nodes = normalizeNodes(candidate);
    if (typeof nodes === 'string') {
      this.reject(nodes);
      return false;
    }
    this.#lastSuccessAt = Date.now();
    if (this.#lastError !== null) {
      this.#logger.info({ source: this.source, nodes: nodes.length }, 'discovery source answers again');
      this.#lastError = null;
    }
    const fp = fingerprint(nodes);
    if (fp === this.#fingerprint) return false;
    const before = this.#nodes.length;
    this.#nodes = Object.freeze(nodes.map((n) => Object.freeze(n)));
    this.#fingerprint = fp;
    this.#updates++;
    this.#logger.info({ source: this.source, nodes: nodes.length, before }, 'discovered node set changed');
    this.#onNodes?.(this.#nodes);
    return true;
  }

  /** A failed attempt: counted; logged when the reason differs from the last one (one line per change of state). */
  reject(reason: string): void {
    this.#errors++;
    if (reason !== this.#lastError) {
      this.#logger.warn({ source: this.source, reason, keeping: this.#nodes.length }, 'discovery source failed; keeping the last good node set');
    }
    this.#lastError = reason;
  }

  status(): DiscoveryStatus {
    return {
      source: this.source,
      nodes: this.#nodes.length,
      lastSuccessAt: this.#lastSuccessAt,
      lastError: this.#lastError,
      errors: this.#errors,
      updates: this.#updates,
      stale: this.#lastError !== null || this.#lastSuccessAt === null,
    };
  }
}

/** Exponential back-off between failed attempts: min, 2 min, 4 min ... up to max; reset by a success. */
export class Backoff {
  readonly #minMs: number;
  readonly #maxMs: number;
  #next: number;

  constructor(minMs: number, maxMs: number) {
    this.#minMs = minMs;
    this.#maxMs = Math.max(minMs, maxMs);
    this.#next = minMs;
  }

  /** The delay before the next attempt after a failure. */
  fail(): number {
    const d = this.#next;
    this.#next = Math.min(this.#maxMs, this.#next * 2);
    return d;
  }

  reset(): void {
    this.#next = this.#minMs;
  }
}

/**
 * A token bucket with a burst of two (Consul's blocking-query advice): two quick answers in a row go through at once,
 * a steady stream of quick answers is paced at one per interval. Returns how long to wait before the next call.
 */
export class LoopPacer {
  readonly #intervalMs: number;
  readonly #burst = 2;
  #tokens = 2;
  #at = Date.now();

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  /** Takes a token for the call about to be made; returns the wait in ms (0 when a token was there). */
  take(): number {
    const now = Date.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#at) / this.#intervalMs);
    this.#at = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    const wait = Math.ceil((1 - this.#tokens) * this.#intervalMs);
    // The token that refills during the wait is the one this call uses.
    this.#tokens = 0;
    this.#at = now + wait;
    return wait;
  }
}

/**
 * One timer a source may hold at a time, cleared by stop(); a source that is stopped schedules nothing. Timers are
 * unref'd: discovery alone never keeps the process alive.
 */
export class SourceTimer {
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  get stopped(): boolean {
    return this.#stopped;
  }

  set(ms: number, fn: () => void): void {
    if (this.#stopped) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      fn();
    }, ms);
    this.#timer.unref();
  }

  clear(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  stop(): void {
    this.#stopped = true;
    this.clear();
  }
}

/** `reason` of an unknown thrown value, without a stack. */
export function reasonOf(err: unknown): string {
  if (err instanceof Error) return (err as NodeJS.ErrnoException).code ? `${(err as NodeJS.ErrnoException).code}: ${err.message}` : err.message;
  return String(err);
}

import { performance } from 'node:perf_hooks';
import type { ErrorCode } from '../errors/codes.js';
import type { ForwardedHeaders } from './h1-parse.js';
import type { UpstreamConnection, UpstreamExchange } from './exchange.js';
import {
  OUTCOME_5XX,
  OUTCOME_BAD_RESPONSE,
  OUTCOME_CONNECT,
  OUTCOME_NONE,
  OUTCOME_OK,
  OUTCOME_RESET,
  OUTCOME_TIMEOUT,
  type UpstreamCluster,
} from './cluster.js';

/**
 * The client side of a proxied request, as an attempt sees it: the worker's Exchange. It writes the client's body
 * to the connection, streams the response to the client, and decides whether a failed attempt is tried again.
 */
export interface AttemptOwner
  extends Pick<
    UpstreamExchange,
    'requestHead' | 'isHeadRequest' | 'acceptsTrailers' | 'onTrailers' | 'requestBodyKind' | 'replayable' | 'pipelinable' | 'connectTimeoutMs' | 'onConnected' | 'onHead' | 'onBody' | 'onEnd' | 'onUpstreamDrain' | 'batch'
  > {
  /** the attempt failed with `outcome` (or, when status > 0, answered that retryable status): true when the owner tries again */
  retryAfter(attempt: Attempt, outcome: number, status: number): boolean;
  /** what the try showed, once (at its head or its failure): for the route's own circuit breaker */
  attemptObserved(attempt: Attempt, outcome: number, latencyUs: number): void;
  /** a try failed (called before retryAfter): for logs and the admin API */
  attemptFailed(attempt: Attempt, code: ErrorCode, detail: string): void;
  /** the attempt failed and is not tried again: the final error */
  onError(code: ErrorCode, detail: string): void;
}

/**
 * One try of a request on one node: what the pools see (it implements UpstreamExchange) and what the cluster hears
 * about. It reports the attempt's outcome to the cluster once (at the response head, or at the failure), keeps the
 * node counted in flight until the attempt is over, and hands the owner a response only when it is final: a
 * retryable status or failure goes back to the owner, which may start another attempt, and the client sees nothing
 * of the failed one. Retries live here and in the owner's retry policy, not in the pools.
 */
export class Attempt implements UpstreamExchange {
  readonly owner: AttemptOwner;
  readonly cluster: UpstreamCluster;
  readonly node: number;
  readonly readTimeoutMs: number;
  /** performance.now() when it was dispatched */
  readonly sentAt: number;
  /** one of the half-open circuit's probes */
  readonly probe: boolean;
  /** counted in the retry budget until it ends */
  readonly isRetry: boolean;
  observed = false;
  over = false;
  conn: UpstreamConnection | null = null;
  /** the status of the response that was handed to the owner (0: none) */
  status = 0;
  /** performance.now() when the response head came (0: not yet); the owner's timing takes it rather than a clock read of its own */
  headAt = 0;

  constructor(owner: AttemptOwner, cluster: UpstreamCluster, node: number, readTimeoutMs: number, probe: boolean, isRetry: boolean) {
    this.owner = owner;
    this.cluster = cluster;
    this.node = node;
    this.readTimeoutMs = readTimeoutMs;
    this.probe = probe;
    this.isRetry = isRetry;
    this.sentAt = performance.now();
    cluster.begin(node);
  }

  get requestHead(): string {
    return this.owner.requestHead;
  }
  get isHeadRequest(): boolean {
    return this.owner.isHeadRequest;
  }
  get requestBodyKind(): number {
    return this.owner.requestBodyKind;
  }
  get replayable(): boolean {
    return this.owner.replayable;
  }
  get pipelinable(): boolean {
    return this.owner.pipelinable;
  }
  get connectTimeoutMs(): number {
    return this.owner.connectTimeoutMs;
  }
  get acceptsTrailers(): boolean {
    return this.owner.acceptsTrailers;
  }

  onConnected(conn: UpstreamConnection): void {
    if (this.over) return conn.abort(this);
    this.conn = conn;
    this.owner.onConnected(conn);
  }

  onHead(status: number, headers: ForwardedHeaders, bodyKind: number, contentLength: number): void {
    if (this.over) return;
    const now = performance.now();
    this.headAt = now;
    this.#observe(status >= 500 ? OUTCOME_5XX : OUTCOME_OK, ((now - this.sentAt) * 1000) | 0);
    if (status >= 500 && this.owner.retryAfter(this, OUTCOME_5XX, status)) {
      // The owner tries again elsewhere: this answer is dropped, with its connection (a rare path).
      this.end();
      return;
    }
    this.status = status;
    this.owner.onHead(status, headers, bodyKind, contentLength);
  }

  onBody(chunk: Buffer): boolean {
    return this.over ? true : this.owner.onBody(chunk);
  }

  onTrailers(list: readonly string[]): void {
    if (!this.over) this.owner.onTrailers(list);
  }

  onEnd(): void {
    if (this.over) return;
    this.#close();
    this.owner.onEnd();
  }

  onUpstreamDrain(): void {
    if (!this.over) this.owner.onUpstreamDrain();
  }

  onError(code: ErrorCode, detail: string): void {
    this.conn = null;
    if (this.over) return;
    const outcome = outcomeOf(code);
    this.#observe(outcome, 0);
    this.#close();
    this.owner.attemptFailed(this, code, detail);
    if (this.status === 0 && this.owner.retryAfter(this, outcome, 0)) return;
    this.owner.onError(code, detail);
  }

  batch(fn: () => void): void {
    this.owner.batch(fn);
  }

  /** The owner is done with this attempt (client gone, body refused, retried): the connection goes, the slot too. */
  end(): void {
    if (this.over) return;
    const conn = this.conn;
    this.conn = null;
    this.#close();
    if (conn !== null) conn.abort(this);
  }

  #observe(outcome: number, latencyUs: number): void {
    if (this.observed) return;
    this.observed = true;
    this.cluster.observe(this.node, outcome, latencyUs, this.probe);
    if (outcome !== OUTCOME_NONE) this.owner.attemptObserved(this, outcome, latencyUs);
  }

  #close(): void {
    if (this.over) return;
    this.over = true;
    if (!this.observed) this.#observe(OUTCOME_NONE, 0);
    this.cluster.finish(this.node);
    if (this.isRetry) this.cluster.retryDone();
  }
}

/** What a pool's failure says about the node, for passive health (cluster.ts). */
export function outcomeOf(code: ErrorCode): number {
  switch (code) {
    case 'NG_ERR_UPSTREAM_CONNECT':
      return OUTCOME_CONNECT;
    case 'NG_ERR_UPSTREAM_RESET':
      return OUTCOME_RESET;
    case 'NG_ERR_UPSTREAM_TIMEOUT':
      return OUTCOME_TIMEOUT;
    case 'NG_ERR_UPSTREAM_BAD_RESPONSE':
      return OUTCOME_BAD_RESPONSE;
    default:
      return OUTCOME_NONE;
  }
}

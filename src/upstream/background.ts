import type { ErrorCode } from '../errors/codes.js';
import type { ForwardedHeaders } from './h1-parse.js';
import { BODY_NONE } from './h1-parse.js';
import type { UpstreamConnection } from './exchange.js';
import { Attempt, type AttemptOwner } from './attempt.js';
import { ADMIT_CIRCUIT_OPEN, ADMIT_FULL, ADMIT_PROBE } from './cluster.js';
import type { UpstreamRuntime } from '../worker/runtime.js';

/** Where a background request's answer goes (PolicyContext.refresh). */
export interface BackgroundSink {
  /** the final head; return false to drop the body (it is still read, and the connection kept) */
  head(status: number, headers: readonly string[], length: number, date?: string): boolean;
  chunk(chunk: Buffer): void;
  end(): void;
  /** no answer: refused by the cluster (circuit open, full), no node, or the attempt failed */
  failed(): void;
}

/**
 * A GET sent upstream on behalf of a request that was already answered (a cache's stale-while-revalidate refresh):
 * no client, no body, one attempt through the cluster (circuit breaker, concurrency limit, balancer, in-flight
 * counts and outcomes like any request), never retried and never queued. What it gets goes to its sink.
 */
export class BackgroundRequest implements AttemptOwner {
  requestHead = '';
  readonly isHeadRequest = false;
  readonly requestBodyKind = BODY_NONE;
  readonly replayable = true;
  readonly pipelinable = true;
  readonly acceptsTrailers = false;
  readonly connectTimeoutMs: number;
  readonly #upstream: UpstreamRuntime;
  readonly #sink: BackgroundSink;
  readonly #readTimeoutMs: number;
  readonly #headLine: string;
  readonly #hostLine: string | null;
  readonly #rest: string;
  #admitted = false;
  #want = false;
  #over = false;

  /** `headLine` and `rest` as the Exchange forwards them; the host line is the node's unless `hostLine` is given */
  constructor(upstream: UpstreamRuntime, headLine: string, hostLine: string | null, rest: string, readTimeoutMs: number, connectTimeoutMs: number, sink: BackgroundSink) {
    this.#upstream = upstream;
    this.#sink = sink;
    this.#readTimeoutMs = readTimeoutMs;
    this.connectTimeoutMs = connectTimeoutMs;
    this.#headLine = headLine;
    this.#hostLine = hostLine;
    this.#rest = rest;
  }

  start(): void {
    const cluster = this.#upstream.cluster;
    const verdict = cluster.admit();
    if (verdict === ADMIT_CIRCUIT_OPEN || verdict === ADMIT_FULL) return this.#fail();
    this.#admitted = true;
    const i = cluster.pick(-1, 0);
    if (i < 0) return this.#fail();
    // the node is known only now: the head is completed with its host line
    this.requestHead = this.#headLine + (this.#hostLine ?? this.#upstream.hostLines[i]) + this.#rest;
    this.#upstream.pools[i].dispatch(new Attempt(this, cluster, i, this.#readTimeoutMs, verdict === ADMIT_PROBE, false));
  }

  onConnected(conn: UpstreamConnection): void {
    conn.endBody();
  }

  onHead(status: number, headers: ForwardedHeaders, bodyKind: number, contentLength: number): void {
    if (this.#over) return;
    this.#want = this.#sink.head(status, headers.list(), bodyKind === BODY_NONE ? 0 : contentLength, headers.date);
    if (bodyKind === BODY_NONE) this.onEnd();
  }

  onBody(chunk: Buffer): boolean {
    if (this.#want && !this.#over) this.#sink.chunk(chunk);
    return true;
  }

  onEnd(): void {
    if (this.#over) return;
    this.#done();
    if (this.#want) this.#sink.end();
  }

  onUpstreamDrain(): void {}

  onTrailers(): void {}

  batch(fn: () => void): void {
    fn();
  }

  retryAfter(): boolean {
    return false;
  }

  attemptObserved(): void {}

  attemptFailed(_attempt: Attempt, _code: ErrorCode, _detail: string): void {}

  onError(): void {
    if (this.#over) return;
    this.#fail();
  }

  #fail(): void {
    this.#done();
    this.#sink.failed();
  }

  #done(): void {
    this.#over = true;
    if (this.#admitted) {
      this.#admitted = false;
      this.#upstream.cluster.release();
    }
  }
}

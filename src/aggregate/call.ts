import { performance } from 'node:perf_hooks';
import type { ErrorCode } from '../errors/codes.js';
import { Attempt, type AttemptOwner } from '../upstream/attempt.js';
import { ADMIT_CIRCUIT_OPEN, ADMIT_FULL, OUTCOME_CONNECT } from '../upstream/cluster.js';
import type { UpstreamConnection } from '../upstream/exchange.js';
import { BODY_NONE, type ForwardedHeaders } from '../upstream/h1-parse.js';
import type { UpstreamRuntime } from '../worker/runtime.js';

/** How a call of an aggregate ended: a JSON value, or a failure with a stable code. */
export interface CallResult {
  /** the upstream's status (0 when no answer came) */
  status: number;
  /** null on success */
  code: ErrorCode | null;
  /** what went wrong, for the access log only (names nodes) */
  detail: string;
  /** the parsed answer on success */
  value: unknown;
}

/** Told once, when a call is over. */
export interface CallListener {
  callDone(index: number, result: CallResult): void;
  /** wraps the callbacks of one upstream read (the client response's cork) */
  batch(fn: () => void): void;
}

/**
 * One upstream request of an aggregate route: admission by the upstream's cluster (circuit, concurrency), a node
 * from its balancer, an Attempt on that node's pool like a proxied request's (so health, ejection, in-flight counts
 * and the circuit see it), the body collected up to a bound and parsed as JSON. A refused connect is tried once more
 * on another node (nothing reached the first one); other failures are the part's failure: the whole call has one
 * timeout, and a retry would eat it.
 */
export class AggregateCall implements AttemptOwner {
  readonly requestHead: string;
  readonly isHeadRequest: boolean;
  readonly requestBodyKind = BODY_NONE;
  readonly replayable = true;
  readonly pipelinable: boolean;
  readonly connectTimeoutMs: number;
  readonly acceptsTrailers = false;

  #attempt: Attempt | null = null;
  #admitted = false;
  #over = false;
  #status = 0;
  #chunks: Buffer[] = [];
  #bytes = 0;
  #timer: NodeJS.Timeout | null = null;
  #retried = false;
  readonly #deadline: number;

  constructor(
    readonly index: number,
    readonly upstream: UpstreamRuntime,
    /** request line and headers after Host, ending with the blank line */
    private readonly line: string,
    private readonly rest: string,
    method: string,
    private readonly timeoutMs: number,
    private readonly maxBodyBytes: number,
    private readonly okStatuses: readonly number[],
    private readonly listener: CallListener,
    private readonly hashKey: number,
  ) {
    this.isHeadRequest = method === 'HEAD';
    this.pipelinable = method === 'GET' || method === 'HEAD';
    this.connectTimeoutMs = timeoutMs;
    this.#deadline = performance.now() + timeoutMs;
    // the head of the first node; a retry on another node rebuilds it (its Host line differs)
    this.requestHead = '';
  }

  /** Sends the call. */
  start(): void {
    const cluster = this.upstream.cluster;
    const verdict = cluster.admit();
    if (verdict === ADMIT_CIRCUIT_OPEN) return this.#done('NG_ERR_UPSTREAM_CIRCUIT_OPEN', `upstream "${this.upstream.name}" has its circuit open`);
    if (verdict === ADMIT_FULL) return this.#done('NG_ERR_UPSTREAM_OVERLOADED', `upstream "${this.upstream.name}" is at its concurrency limit`);
    this.#admitted = true;
    this.#timer = setTimeout(() => this.#timedOut(), this.timeoutMs);
    this.#send(-1);
  }

  #send(skip: number): void {
    const cluster = this.upstream.cluster;
    const node = cluster.pick(skip, this.hashKey);
    if (node < 0) return this.#done('NG_ERR_UPSTREAM_UNAVAILABLE', `upstream "${this.upstream.name}" has no node to send to`);
    (this as { requestHead: string }).requestHead = this.line + this.upstream.hostLines[node] + this.rest;
    const left = Math.max(1, Math.ceil(this.#deadline - performance.now()));
    const attempt = new Attempt(this, cluster, node, left, false, false);
    this.#attempt = attempt;
    this.upstream.pools[node].dispatch(attempt);
  }

  /** The client went away or the aggregate is over: let go of the upstream. */
  cancel(): void {
    if (this.#over) return;
    this.#over = true;
    this.#abandon();
    this.#release();
  }

  // ------------------------------------------------------------------ AttemptOwner

  get readTimeoutMs(): number {
    return Math.max(1, Math.ceil(this.#deadline - performance.now()));
  }

  onConnected(conn: UpstreamConnection): void {
    conn.endBody();
  }

  onHead(status: number, _headers: ForwardedHeaders, _bodyKind: number, contentLength: number): void {
    if (this.#over) return;
    this.#status = status;
    if (contentLength > this.maxBodyBytes) this.#done('NG_ERR_AGGREGATE_PART_TOO_LARGE', `the answer of ${contentLength} bytes exceeds ${this.maxBodyBytes}`, true);
  }

  onBody(chunk: Buffer): boolean {
    if (this.#over) return true;
    this.#bytes += chunk.length;
    if (this.#bytes > this.maxBodyBytes) {
      // The pool is in the middle of its read: the connection goes once that read is over, not from inside it.
      this.#done('NG_ERR_AGGREGATE_PART_TOO_LARGE', `the answer exceeds ${this.maxBodyBytes} bytes`, true);
      return true;
    }
    // the pool's buffer is valid only during the call
    this.#chunks.push(Buffer.from(chunk));
    return true;
  }

  onTrailers(): void {}

  onEnd(): void {
    if (this.#over) return;
    this.#attempt = null;
    const status = this.#status;
    const ok = (status >= 200 && status < 300) || this.okStatuses.includes(status);
    const body = this.#chunks.length === 1 ? this.#chunks[0] : Buffer.concat(this.#chunks);
    this.#chunks = [];
    if (!ok) return this.#done('NG_ERR_AGGREGATE_PART_STATUS', `the upstream answered ${status}`);
    let value: unknown = null;
    if (body.length > 0 && !this.isHeadRequest) {
      try {
        value = JSON.parse(body.toString('utf8'));
      } catch {
        // a listed non-2xx status may come with any body: it counts as no value
        if (status >= 200 && status < 300) return this.#done('NG_ERR_AGGREGATE_PART_INVALID_JSON', 'the answer is not JSON');
      }
    }
    this.#over = true;
    this.#release();
    this.listener.callDone(this.index, { status, code: null, detail: '', value });
  }

  onUpstreamDrain(): void {}

  retryAfter(attempt: Attempt, outcome: number, status: number): boolean {
    // Only a refused connect, once, on another node: it put no load anywhere, and the timeout is the call's.
    if (this.#over || this.#retried || status > 0 || outcome !== OUTCOME_CONNECT || attempt !== this.#attempt) return false;
    if (this.upstream.cluster.nodeCount < 2) return false;
    this.#retried = true;
    this.#attempt = null;
    this.#send(attempt.node);
    return true;
  }

  attemptObserved(): void {}

  attemptFailed(attempt: Attempt, code: ErrorCode, detail: string): void {
    this.upstream.noteError(attempt.node, code, detail);
  }

  onError(code: ErrorCode, detail: string): void {
    this.#attempt = null;
    // the pool's read deadline is the call's own (readTimeoutMs is what is left of it)
    this.#done(code === 'NG_ERR_UPSTREAM_TIMEOUT' ? 'NG_ERR_AGGREGATE_PART_TIMEOUT' : code, detail);
  }

  batch(fn: () => void): void {
    this.listener.batch(fn);
  }

  // ------------------------------------------------------------------ ends

  #timedOut(): void {
    this.#timer = null;
    this.#done('NG_ERR_AGGREGATE_PART_TIMEOUT', `no complete answer within ${this.timeoutMs} ms`);
  }

  #done(code: ErrorCode, detail: string, later = false): void {
    if (this.#over) return;
    this.#over = true;
    if (later) queueMicrotask(() => this.#abandon());
    else this.#abandon();
    this.#release();
    this.listener.callDone(this.index, { status: this.#status, code, detail, value: null });
  }

  #abandon(): void {
    const a = this.#attempt;
    this.#attempt = null;
    this.#chunks = [];
    if (a === null) return;
    if (a.conn === null && !a.over) this.upstream.pools[a.node].cancel(a);
    a.end();
  }

  #release(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    if (this.#admitted) {
      this.#admitted = false;
      this.upstream.cluster.release();
    }
  }
}

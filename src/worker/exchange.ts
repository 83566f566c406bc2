import type { HttpResponse } from 'uWebSockets.js';
import { ERRORS, type ErrorCode } from '../errors/codes.js';
import { writeProblem } from '../errors/problem.js';
import type { UpstreamConnection, UpstreamExchange } from '../upstream/exchange.js';
import { BODY_LENGTH, BODY_NONE } from '../upstream/h1-parse.js';
import type { RouteRuntime } from './runtime.js';
import { STATUS_LINES } from './status-lines.js';
import type { WorkerCounters } from '../shared/counters.js';
import { GATEWAY_ERRORS, UPSTREAM_ERRORS } from '../shared/counters.js';

/** Body chunks held while no upstream connection is ready; beyond this the client is paused. */
const PENDING_BODY_LIMIT = 256 * 1024;

export interface ExchangeHost {
  readonly counters: WorkerCounters;
  readonly viaValue: string;
  /** called once when the exchange is over, whatever the outcome */
  finished(ex: Exchange): void;
  /** during a drain every response closes its connection */
  readonly closing: boolean;
}

/**
 * One proxied request: it streams the client's body to the upstream connection and the upstream response to the
 * client, with backpressure both ways, and turns every failure into one problem+json answer (or, once the response
 * has started, a closed connection). Every field is declared here so all exchanges share one hidden class.
 */
export class Exchange implements UpstreamExchange {
  readonly res: HttpResponse;
  readonly host: ExchangeHost;
  readonly route: RouteRuntime;
  readonly requestId: string;
  requestHead = '';
  readonly headLine: string;
  readonly hostLine: string | null;
  readonly headRest: string;
  readonly isHeadRequest: boolean;
  readonly requestBodyKind: number;
  readonly replayable: boolean;
  readonly readTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly maxBodyBytes: number;

  aborted = false;
  done = false;
  headSent = false;
  status = 0;
  nodeIndex = -1;
  attempts = 0;
  conn: UpstreamConnection | null = null;
  // request body
  clientBodyDone: boolean;
  clientPaused = false;
  bodyBytes = 0;
  pendingBody: Buffer[] | null = null;
  pendingBytes = 0;
  /** some body bytes went to a connection: the request can no longer move to another node */
  bodySent = false;
  // response body
  responseKind = BODY_NONE;
  responseTotal = 0;
  backlog: Buffer | null = null;
  backlogOffset = 0;

  readonly onAborted = (): void => this.#onAborted();
  readonly onClientData = (chunk: ArrayBuffer, isLast: boolean): void => this.#onClientData(chunk, isLast);
  readonly #onWritable = (offset: number): boolean => this.#writable(offset);

  constructor(
    res: HttpResponse,
    host: ExchangeHost,
    route: RouteRuntime,
    requestId: string,
    headLine: string,
    hostLine: string | null,
    headRest: string,
    method: string,
    requestBodyKind: number,
  ) {
    this.res = res;
    this.host = host;
    this.route = route;
    this.requestId = requestId;
    this.headLine = headLine;
    this.hostLine = hostLine;
    this.headRest = headRest;
    this.isHeadRequest = method === 'HEAD';
    this.requestBodyKind = requestBodyKind;
    this.replayable = requestBodyKind === BODY_NONE && (method === 'GET' || method === 'HEAD' || method === 'OPTIONS' || method === 'PUT' || method === 'DELETE');
    this.readTimeoutMs = route.plan.readTimeoutMs;
    this.connectTimeoutMs = route.plan.connectTimeoutMs;
    this.maxBodyBytes = route.plan.maxBodyBytes;
    this.clientBodyDone = requestBodyKind === BODY_NONE;
  }

  /** Picks a node (another one than `skip` after a failure) and queues the request on its pool. */
  start(skip = -1): void {
    const upstream = this.route.upstream;
    const i = upstream.balancer.pick(upstream.pools, skip);
    if (i < 0) return this.#fail('NG_ERR_UPSTREAM_UNAVAILABLE', `upstream "${upstream.name}" has no node to send to`);
    this.nodeIndex = i;
    this.attempts++;
    this.requestHead = this.headLine + (this.hostLine ?? upstream.hostLines[i]) + this.headRest;
    upstream.pools[i].dispatch(this);
  }

  batch(fn: () => void): void {
    if (this.aborted) fn();
    else this.res.cork(fn);
  }

  // ---------------------------------------------------------------------------- request body

  onConnected(conn: UpstreamConnection): void {
    this.conn = conn;
    const pending = this.pendingBody;
    if (pending !== null) {
      this.pendingBody = null;
      this.pendingBytes = 0;
      this.bodySent = true;
      let ok = true;
      for (const chunk of pending) ok = conn.writeBody(chunk);
      if (!ok) this.#pauseClient();
      else if (this.clientPaused) this.#resumeClient();
    }
    if (this.clientBodyDone) conn.endBody();
  }

  #onClientData(chunk: ArrayBuffer, isLast: boolean): void {
    if (this.done) return;
    const size = chunk.byteLength;
    this.bodyBytes += size;
    if (this.bodyBytes > this.maxBodyBytes) {
      this.#abandonUpstream();
      return this.#fail('NG_ERR_REQUEST_BODY_TOO_LARGE', `the body exceeds ${this.maxBodyBytes} bytes`, true);
    }
    if (size > 0) {
      // uWS reuses the memory once this callback returns: copy it.
      const copy = Buffer.from(chunk.slice(0));
      const conn = this.conn;
      if (conn !== null) {
        this.bodySent = true;
        if (!conn.writeBody(copy)) this.#pauseClient();
      } else {
        (this.pendingBody ??= []).push(copy);
        this.pendingBytes += size;
        if (this.pendingBytes > PENDING_BODY_LIMIT) this.#pauseClient();
      }
    }
    if (isLast) {
      this.clientBodyDone = true;
      this.conn?.endBody();
    }
  }

  #pauseClient(): void {
    if (!this.clientPaused && !this.aborted) {
      this.clientPaused = true;
      this.res.pause();
    }
  }

  #resumeClient(): void {
    if (this.clientPaused && !this.aborted && !this.done) {
      this.clientPaused = false;
      this.res.resume();
    }
  }

  onUpstreamDrain(): void {
    this.#resumeClient();
  }

  // ---------------------------------------------------------------------------- response

  onHead(status: number, headers: readonly string[], bodyKind: number, contentLength: number): void {
    if (this.aborted || this.done) return;
    const res = this.res;
    this.headSent = true;
    this.status = status;
    res.writeStatus(STATUS_LINES[status] ?? `${status} Unknown`);
    for (let i = 0; i < headers.length; i += 2) res.writeHeader(headers[i], headers[i + 1]);
    res.writeHeader('via', this.host.viaValue);
    res.writeHeader('x-request-id', this.requestId);
    this.responseKind = bodyKind;
    if (bodyKind === BODY_NONE) {
      if (this.isHeadRequest && contentLength >= 0) res.endWithoutBody(contentLength, this.host.closing);
      else if (status === 204 || status === 304 || this.isHeadRequest) res.endWithoutBody(undefined, this.host.closing);
      else res.end(undefined, this.host.closing);
      this.#finish();
    } else if (bodyKind === BODY_LENGTH) {
      this.responseTotal = contentLength;
    }
  }

  onBody(chunk: Buffer): boolean {
    if (this.aborted || this.done) return true;
    const res = this.res;
    if (this.responseKind === BODY_LENGTH) {
      const offset = res.getWriteOffset();
      const [ok, done] = res.tryEnd(chunk, this.responseTotal);
      if (done) {
        this.#finish();
        return true;
      }
      if (!ok) {
        // uWS took only part of it: keep the rest (the chunk's memory is reused after this call) until writable.
        this.backlog = Buffer.from(chunk);
        this.backlogOffset = offset;
        res.onWritable(this.#onWritable);
        return false;
      }
      return true;
    }
    if (!res.write(chunk)) {
      // uWS buffered it; stop reading the upstream until the client drains.
      this.backlog = null;
      res.onWritable(this.#onWritable);
      return false;
    }
    return true;
  }

  #writable(offset: number): boolean {
    if (this.aborted || this.done) return true;
    const backlog = this.backlog;
    if (backlog !== null) {
      const [ok, done] = this.res.tryEnd(backlog.subarray(offset - this.backlogOffset), this.responseTotal);
      if (done) {
        this.backlog = null;
        this.#finish();
        return true;
      }
      if (!ok) return false;
      this.backlog = null;
    }
    this.conn?.resume();
    return true;
  }

  onEnd(): void {
    if (this.aborted || this.done) return;
    if (!this.headSent) return this.#fail('NG_ERR_UPSTREAM_BAD_RESPONSE', 'the upstream ended without a response');
    if (this.responseKind !== BODY_LENGTH) {
      this.res.end(undefined, this.host.closing);
      this.#finish();
    }
    // BODY_LENGTH finishes in onBody/#writable when tryEnd reports done.
  }

  onError(code: ErrorCode, detail: string): void {
    this.conn = null;
    if (this.aborted || this.done) return;
    this.host.counters.add(UPSTREAM_ERRORS);
    if (this.headSent) {
      // Too late for an error response: cut the client connection so it sees an incomplete message.
      this.done = true;
      this.res.close();
      this.host.finished(this);
      return;
    }
    // Nothing was sent to the node: another node may take it.
    if (code === 'NG_ERR_UPSTREAM_CONNECT' && !this.bodySent && this.attempts < this.route.upstream.pools.length) {
      return this.start(this.nodeIndex);
    }
    this.res.cork(() => this.#fail(code, detail));
  }

  // ---------------------------------------------------------------------------- ends

  #fail(code: ErrorCode, detail: string, close = false): void {
    if (this.aborted || this.done) return;
    this.host.counters.add(GATEWAY_ERRORS);
    this.status = ERRORS[code].status;
    this.done = true;
    writeProblem(this.res, code, this.requestId, detail, null, close || this.host.closing || !this.clientBodyDone);
    this.host.finished(this);
  }

  #finish(): void {
    if (this.done) return;
    this.done = true;
    this.host.finished(this);
  }

  #abandonUpstream(): void {
    const conn = this.conn;
    this.conn = null;
    if (conn !== null) conn.abort();
    else if (this.nodeIndex >= 0) this.route.upstream.pools[this.nodeIndex].cancel(this);
  }

  #onAborted(): void {
    this.aborted = true;
    if (this.done) return;
    this.done = true;
    this.#abandonUpstream();
    this.host.finished(this);
  }
}

import type { HttpResponse } from 'uWebSockets.js';
import { ERRORS, type ErrorCode } from '../errors/codes.js';
import { upstreamDetail, writeProblem, type ProblemMembers } from '../errors/problem.js';
import type { UpstreamConnection, UpstreamExchange } from '../upstream/exchange.js';
import { BODY_CHUNKED, BODY_LENGTH, BODY_NONE, type ForwardedHeaders } from '../upstream/h1-parse.js';
import type { RouteRuntime } from './runtime.js';
import { STATUS_LINES } from './status-lines.js';
import { requestLineWithoutQueryParam } from '../shared/query.js';
import type { WorkerCounters } from '../shared/counters.js';
import { GATEWAY_ERRORS, UPSTREAM_ERRORS } from '../shared/counters.js';
import { CONTINUE, PENDING, RESPOND, type PolicyContext, type RequestTiming } from '../pipeline/policy.js';

/** Body chunks held while no upstream connection is ready; beyond this the client is paused. */
const PENDING_BODY_LIMIT = 256 * 1024;
/**
 * A chunked request body up to this size is read whole before the request goes upstream (then forwarded with a
 * Content-Length), so broken chunk framing or a body over the route limit is refused with nothing sent upstream;
 * a longer body starts streaming (chunked) once this much has arrived.
 */
const CHUNKED_HOLD_LIMIT = 64 * 1024;

export interface ExchangeHost {
  readonly counters: WorkerCounters;
  readonly viaValue: string;
  /** called once when the exchange is over, whatever the outcome */
  finished(ex: Exchange): void;
  /** per-node metrics: an attempt went to node ex.nodeIndex / failed there (also when it is then retried elsewhere) */
  attempted(ex: Exchange): void;
  attemptFailed(ex: Exchange, code: ErrorCode): void;
  /** during a drain every response closes its connection */
  readonly closing: boolean;
}

/** What the handler copied out of the uWS request for a route with policies (the uWS request dies with the handler). */
export interface RequestFacts {
  method: string;
  path: string;
  query: string;
  hostHeader: string;
  clientIp: string;
  headerNames: string[] | null;
  headerValues: string[] | null;
}

const NO_SLOTS: unknown[] = [];

/** Where a response head is assembled for uWS (see onHead): the largest upstream head plus what the gateway adds. */
const HEAD_OUT = Buffer.allocUnsafe(64 * 1024 + 4096);
const STATUS_BYTES: Buffer[] = STATUS_LINES.map((line) => Buffer.from(line, 'latin1'));
let viaFor = '';
let viaLines = Buffer.alloc(0);

/** CRLF "via: …" CRLF "x-request-id: " as bytes, rebuilt only when a reload changes the Via value. */
function viaBytes(via: string): Buffer {
  if (via !== viaFor) {
    viaLines = Buffer.from(`\r\nvia: ${via}\r\nx-request-id: `, 'latin1');
    viaFor = via;
  }
  return viaLines;
}

/** A latin1-decoded value with bytes >= 0x80 goes to uWS as those bytes (a string would be re-encoded as UTF-8). */
function asBytes(value: string): string | Buffer {
  for (let i = 0; i < value.length; i++) if (value.charCodeAt(i) > 0x7f) return Buffer.from(value, 'latin1');
  return value;
}

/**
 * One proxied request, and the request context policies see. It runs the route's request phases (when it has
 * any), streams the client's body to the upstream connection and the upstream response to the client with
 * backpressure both ways, and turns every failure into one problem+json answer (or, once the response has
 * started, a closed connection). Every field is declared here so all exchanges share one hidden class.
 */
export class Exchange implements UpstreamExchange, PolicyContext {
  readonly res: HttpResponse;
  readonly host: ExchangeHost;
  readonly route: RouteRuntime;
  readonly requestId: string;
  requestHead = '';
  /** "METHOD target HTTP/1.1\r\n" as forwarded; a policy may drop query parameters from it */
  headLine: string;
  readonly hostLine: string | null;
  headRest: string;
  readonly isHeadRequest: boolean;
  requestBodyKind: number;
  /** a chunked body is being held until it ends or passes CHUNKED_HOLD_LIMIT */
  bodyHeld: boolean;
  /** start() was called while the body was held */
  startWanted = false;
  readonly replayable: boolean;
  readonly pipelinable: boolean;
  readonly readTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly maxBodyBytes: number;

  aborted = false;
  done = false;
  headSent = false;
  status = 0;
  errorCode: ErrorCode | null = null;
  /** the node and cause of the last failed upstream attempt, for the access log only (the client gets a generic detail) */
  upstreamError: string | null = null;
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
  bytesOut = 0;
  backlog: Buffer | null = null;
  backlogOffset = 0;
  /** response chunks waiting for the client to drain, in order; null when not waiting */
  queued: Buffer[] | null = null;
  /** the upstream response ended while chunks were queued */
  endQueued = false;

  // policy context (see PolicyContext); plain defaults on routes without policies
  readonly facts: RequestFacts | null;
  consumerId: string | null = null;
  consumerIndex = -1;
  consumerPlan: string | null = null;
  scopes: readonly string[] | null = null;
  roles: readonly string[] | null = null;
  readonly slots: unknown[];
  upstreamExtra = '';
  upstreamRemove: string[] | null = null;
  responseExtra: string[] | null = null;
  responseRemove: string[] | null = null;
  /** the next access/rewrite hook to run (for resume after PENDING) */
  phaseIndex = 0;
  /** a response prepared by a hook (RESPOND) */
  prepared: { status: number; headers: readonly string[]; body: string | undefined; code: ErrorCode | null; detail: string | undefined; members: ProblemMembers | null } | null = null;
  readonly timing: RequestTiming;
  // observability, always on (metrics): handler entry and dispatch to the upstream pool (performance.now())
  startedAt = 0;
  sentAt = 0;

  readonly onAborted = (): void => this.#onAborted();
  /** uWS calls this when the client socket drains; the writes in it are corked like every other write. */
  #onWritable(offset: number): boolean {
    let result = true;
    this.res.cork(() => {
      result = this.#writable(offset);
    });
    return result;
  }

  /** Waits for the client to drain (the handler is made here, not per request: most responses never wait). */
  #waitWritable(): void {
    this.res.onWritable((offset) => this.#onWritable(offset));
  }

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
    facts: RequestFacts | null,
    timing: RequestTiming,
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
    this.bodyHeld = requestBodyKind === BODY_CHUNKED;
    const safe = method === 'GET' || method === 'HEAD' || method === 'OPTIONS';
    this.replayable = requestBodyKind === BODY_NONE && (safe || method === 'PUT' || method === 'DELETE');
    this.pipelinable = requestBodyKind === BODY_NONE && safe;
    this.readTimeoutMs = route.plan.readTimeoutMs;
    this.connectTimeoutMs = route.plan.connectTimeoutMs;
    this.maxBodyBytes = route.plan.maxBodyBytes;
    this.clientBodyDone = requestBodyKind === BODY_NONE;
    this.facts = facts;
    this.slots = route.slotCount > 0 ? new Array(route.slotCount).fill(undefined) : NO_SLOTS;
    this.timing = timing;
  }

  // ---------------------------------------------------------------------------- pipeline (access, rewrite)

  /** Runs the access hooks from `phaseIndex`, then the rewrite hooks, then dispatches. */
  runPipeline(): void {
    const access = this.route.access;
    if (access !== null) {
      while (this.phaseIndex < access.length) {
        const r = access[this.phaseIndex++].access!(this);
        if (this.timing.hooks !== null) this.timing.hooks[this.phaseIndex - 1] = performance.now();
        if (r === PENDING) return;
        if (r === RESPOND) return this.#sendPrepared();
        if (this.aborted) return;
      }
    }
    this.timing.accessDone = this.timing.start > 0 ? performance.now() : 0;
    const rewrite = this.route.rewrite;
    if (rewrite !== null) {
      const marks = this.timing.hooks;
      const base = access === null ? 0 : access.length;
      for (let i = 0; i < rewrite.length; i++) {
        const r = rewrite[i].rewrite!(this);
        if (marks !== null) marks[base + i] = performance.now();
        if (r === RESPOND) return this.#sendPrepared();
      }
    }
    this.start();
  }

  resume(result: typeof CONTINUE | typeof RESPOND): void {
    if (this.aborted || this.done) return;
    // a PENDING hook's time runs until it resumes
    if (this.timing.hooks !== null && this.phaseIndex > 0) this.timing.hooks[this.phaseIndex - 1] = performance.now();
    if (result === RESPOND) this.#sendPrepared();
    else this.runPipeline();
  }

  get method(): string {
    return this.facts?.method ?? this.headLine.slice(0, this.headLine.indexOf(' '));
  }
  get path(): string {
    return this.facts?.path ?? '';
  }
  get query(): string {
    return this.facts?.query ?? '';
  }
  get hostHeader(): string {
    return this.facts?.hostHeader ?? '';
  }
  get clientIp(): string {
    return this.facts?.clientIp ?? '';
  }
  get routeName(): string {
    return this.route.plan.name;
  }
  get bytesIn(): number {
    return this.bodyBytes;
  }
  get upstreamNode(): string | null {
    return this.nodeIndex >= 0 ? this.route.upstream.authorities[this.nodeIndex] : null;
  }

  header(name: string): string | undefined {
    const f = this.facts;
    if (f === null || f.headerNames === null) return undefined;
    const names = f.headerNames;
    for (let i = 0; i < names.length; i++) if (names[i] === name) return f.headerValues![i];
    return undefined;
  }

  queryParam(name: string): string | null {
    const q = this.query;
    return q ? new URLSearchParams(q).get(name) : null;
  }

  setUpstreamHeader(name: string, value: string): void {
    this.upstreamExtra += name + ': ' + value + '\r\n';
  }

  removeUpstreamHeader(name: string): void {
    (this.upstreamRemove ??= []).push(name.toLowerCase());
  }

  removeUpstreamQueryParam(name: string): void {
    this.headLine = requestLineWithoutQueryParam(this.headLine, name);
  }

  addResponseHeader(name: string, value: string): void {
    (this.responseExtra ??= []).push(name, value);
  }

  removeResponseHeader(name: string): void {
    (this.responseRemove ??= []).push(name.toLowerCase());
  }

  respondProblem(code: ErrorCode, detail?: string, headers: readonly string[] = [], members?: ProblemMembers): void {
    this.prepared = { status: ERRORS[code].status, headers, body: undefined, code, detail, members: members ?? null };
  }

  respond(status: number, headers: readonly string[], body?: string): void {
    this.prepared = { status, headers, body, code: null, detail: undefined, members: null };
  }

  #sendPrepared(): void {
    const p = this.prepared;
    if (p === null || this.aborted || this.done) return;
    if (p.code !== null) {
      this.res.cork(() => this.#fail(p.code!, p.detail, false, p.headers, p.members));
      return;
    }
    this.res.cork(() => {
      this.status = p.status;
      this.#runResponseHooks();
      const res = this.res;
      res.writeStatus(STATUS_LINES[p.status] ?? `${p.status} Unknown`);
      for (let i = 0; i < p.headers.length; i += 2) res.writeHeader(p.headers[i], p.headers[i + 1]);
      this.#writeExtraHeaders();
      res.writeHeader('x-request-id', this.requestId);
      if (p.body === undefined) endWithoutLength(res, this.host.closing || !this.clientBodyDone);
      else res.end(p.body, this.host.closing || !this.clientBodyDone);
      this.bytesOut = p.body === undefined ? 0 : Buffer.byteLength(p.body);
      this.#finish();
    });
  }

  #runResponseHooks(): void {
    const hooks = this.route.response;
    if (hooks !== null) for (let i = 0; i < hooks.length; i++) hooks[i].response!(this);
  }

  #writeExtraHeaders(): void {
    const extra = this.responseExtra;
    if (extra !== null) for (let i = 0; i < extra.length; i += 2) this.res.writeHeader(extra[i], extra[i + 1]);
  }

  // ---------------------------------------------------------------------------- dispatch

  /** Picks a node (another one than `skip` after a failure) and queues the request on its pool. */
  start(skip = -1): void {
    if (this.bodyHeld) {
      this.startWanted = true;
      return;
    }
    const upstream = this.route.upstream;
    const i = upstream.balancer.pick(upstream.pools, skip);
    if (i < 0) {
      this.res.cork(() => this.#fail('NG_ERR_UPSTREAM_UNAVAILABLE', `upstream "${upstream.name}" has no node to send to`));
      return;
    }
    this.nodeIndex = i;
    this.attempts++;
    this.host.attempted(this);
    if (this.upstreamRemove !== null) this.headRest = dropHeaderLines(this.headRest, this.upstreamRemove);
    this.requestHead = this.headLine + (this.hostLine ?? upstream.hostLines[i]) + this.upstreamExtra + this.headRest;
    this.sentAt = performance.now();
    if (this.timing.start > 0) this.timing.upstreamStart = this.sentAt;
    upstream.pools[i].dispatch(this);
  }

  batch(fn: () => void): void {
    if (this.aborted) fn();
    else this.res.cork(fn);
  }

  // ---------------------------------------------------------------------------- request body

  onConnected(conn: UpstreamConnection): void {
    this.conn = conn;
    if (this.timing.start > 0) this.timing.connected = performance.now();
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

  onClientData(chunk: ArrayBuffer, isLast: boolean): void {
    if (this.done) return;
    const size = chunk.byteLength;
    this.bodyBytes += size;
    if (this.bodyBytes > this.maxBodyBytes) {
      this.#abandonUpstream();
      this.res.cork(() => this.#fail('NG_ERR_REQUEST_BODY_TOO_LARGE', `the body exceeds ${this.maxBodyBytes} bytes`, true));
      return;
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
      if (this.bodyHeld) {
        // The whole body is here: forward it with a Content-Length instead of re-chunking it.
        this.requestBodyKind = this.bodyBytes > 0 ? BODY_LENGTH : BODY_NONE;
        this.headRest = this.headRest.replace('transfer-encoding: chunked\r\n', `content-length: ${this.bodyBytes}\r\n`);
        this.#release();
      }
      this.conn?.endBody();
    } else if (this.bodyHeld && this.pendingBytes > CHUNKED_HOLD_LIMIT) this.#release();
  }

  #release(): void {
    this.bodyHeld = false;
    if (this.startWanted) {
      this.startWanted = false;
      this.start();
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

  onHead(status: number, headers: ForwardedHeaders, bodyKind: number, contentLength: number): void {
    if (this.aborted || this.done) return;
    const res = this.res;
    this.headSent = true;
    this.status = status;
    if (this.timing.start > 0) this.timing.upstreamHeaders = performance.now();
    if (this.route.response !== null) this.#runResponseHooks();
    const remove = this.responseRemove;
    let written = false;
    if (remove === null) {
      // The common case: status line, the upstream's field lines as raw bytes, Via and X-Request-Id, all in one
      // call (uWS writes "HTTP/1.1 " + this + CRLF): one crossing into uWS, no string per field, and bytes the
      // upstream sent as obs-text reach the client unchanged.
      const out = HEAD_OUT;
      const line = STATUS_BYTES[status];
      let o = line !== undefined ? (out.set(line, 0), line.length) : out.write(`${status} Unknown`, 0, 'latin1');
      o = headers.copyLines(out, o);
      const via = viaBytes(this.host.viaValue);
      if (o >= 0 && o + via.length + this.requestId.length <= out.length) {
        out.set(via, o);
        o += via.length;
        o += out.write(this.requestId, o, 'latin1');
        res.writeStatus(out.subarray(0, o));
        written = true;
      }
    }
    if (!written) {
      res.writeStatus(STATUS_LINES[status] ?? `${status} Unknown`);
      const list = headers.list();
      for (let i = 0; i < list.length; i += 2) {
        if (remove === null || !remove.includes(list[i].toLowerCase())) res.writeHeader(list[i], asBytes(list[i + 1]));
      }
      res.writeHeader('via', this.host.viaValue);
      res.writeHeader('x-request-id', this.requestId);
    }
    this.#writeExtraHeaders();
    this.responseKind = bodyKind;
    if (bodyKind === BODY_NONE) {
      if (this.isHeadRequest && contentLength >= 0) {
        // endWithoutBody(n) leaves uWS waiting for n body bytes, and it then drops the connection at the next
        // request; the length goes out as a plain header instead.
        res.writeHeader('content-length', String(contentLength));
        endWithoutLength(res, this.host.closing);
      }
      else if (status === 204 || status === 304 || this.isHeadRequest) endWithoutLength(res, this.host.closing);
      else res.end(undefined, this.host.closing);
      this.#finish();
    } else if (bodyKind === BODY_LENGTH) {
      this.responseTotal = contentLength;
    }
  }

  onBody(chunk: Buffer): boolean {
    if (this.aborted || this.done) return true;
    this.bytesOut += chunk.length;
    if (this.queued !== null) {
      // Waiting for the client to drain: later chunks of the same read queue up behind, in order (the chunk's
      // memory is the shared read buffer, reused after this call, so it is copied).
      this.queued.push(Buffer.from(chunk));
      return false;
    }
    const res = this.res;
    if (this.responseKind === BODY_LENGTH) {
      if (this.bytesOut === chunk.length && chunk.length === this.responseTotal) {
        // The common small response: the whole body came with the head. end() copies it (buffering under
        // backpressure itself) and, unlike tryEnd, can close the connection (drain, rebalance).
        res.end(chunk, this.host.closing);
        this.#finish();
        return true;
      }
      return this.#tryEnd(chunk, true);
    }
    if (!res.write(chunk)) {
      // uWS buffered all of it; stop reading the upstream until the client drains.
      this.queued = [];
      this.#waitWritable();
      return false;
    }
    return true;
  }

  /** tryEnd with the partial-write bookkeeping; false when uWS took only part of `chunk` (the rest is kept). */
  #tryEnd(chunk: Buffer, copy: boolean): boolean {
    const res = this.res;
    const offset = res.getWriteOffset();
    const [ok, done] = res.tryEnd(chunk, this.responseTotal);
    if (done) {
      this.#finish();
      return true;
    }
    if (ok) return true;
    this.backlog = copy ? Buffer.from(chunk) : chunk;
    this.backlogOffset = offset;
    if (this.queued === null) {
      this.queued = [];
      this.#waitWritable();
    }
    return false;
  }

  /** The client can take more: first the rest of a partly written chunk, then the queue, then the upstream again. */
  #writable(offset: number): boolean {
    if (this.aborted || this.done) return true;
    const res = this.res;
    const backlog = this.backlog;
    if (backlog !== null) {
      const [ok, done] = res.tryEnd(backlog.subarray(offset - this.backlogOffset), this.responseTotal);
      if (done) {
        this.backlog = null;
        this.#finish();
        return true;
      }
      if (!ok) return false;
      this.backlog = null;
    }
    const queued = this.queued;
    if (queued !== null && queued.length > 0 && this.responseKind !== BODY_LENGTH) {
      // One write, not several: several chunked writes in one cork can break uWS's framing (see h1-pool.ts).
      const all = queued.length === 1 ? queued[0] : Buffer.concat(queued);
      queued.length = 0;
      if (!res.write(all)) return true; // buffered by uWS; this handler runs again when it drains
    }
    while (queued !== null && queued.length > 0) {
      const next = queued.shift()!;
      if (!this.#tryEnd(next, false)) return false;
      if (this.done) return true;
    }
    this.queued = null;
    if (this.endQueued) {
      this.endQueued = false;
      this.onEnd();
      return true;
    }
    this.conn?.resume();
    return true;
  }

  onEnd(): void {
    if (this.aborted || this.done) return;
    if (!this.headSent) return this.#fail('NG_ERR_UPSTREAM_BAD_RESPONSE', 'the upstream ended without a response');
    if (this.queued !== null) {
      // The upstream finished while chunks still wait for the client: end after them (#writable).
      this.endQueued = true;
      return;
    }
    if (this.responseKind !== BODY_LENGTH) {
      // Never ask uWS to close here: once chunks went out it would write "Connection: close" into the body.
      this.res.end(undefined, false);
      this.#finish();
    }
    // BODY_LENGTH finishes in onBody/#writable when tryEnd reports done.
  }

  onError(code: ErrorCode, detail: string): void {
    this.conn = null;
    if (this.aborted || this.done) return;
    this.host.counters.add(UPSTREAM_ERRORS);
    this.upstreamError = detail;
    if (this.nodeIndex >= 0) this.route.upstream.noteError(this.nodeIndex, code, detail);
    this.host.attemptFailed(this, code);
    if (this.headSent) {
      // Too late for an error response: cut the client connection so it sees an incomplete message.
      this.errorCode = code;
      this.done = true;
      this.res.close();
      this.#end();
      return;
    }
    // Nothing was sent to the node: another node may take it.
    if (code === 'NG_ERR_UPSTREAM_CONNECT' && !this.bodySent && this.attempts < this.route.upstream.pools.length) {
      return this.start(this.nodeIndex);
    }
    this.res.cork(() => this.#fail(code, upstreamDetail(code)));
  }

  // ---------------------------------------------------------------------------- ends

  /** Writes a gateway error. Must run corked (inside res.cork or the synchronous part of the handler). */
  #fail(code: ErrorCode, detail: string | undefined, close = false, headers: readonly string[] = [], members: ProblemMembers | null = null): void {
    if (this.aborted || this.done) return;
    this.host.counters.add(GATEWAY_ERRORS);
    this.status = ERRORS[code].status;
    this.errorCode = code;
    this.done = true;
    this.#runResponseHooks();
    const extra = this.responseExtra === null ? headers : [...headers, ...this.responseExtra];
    writeProblem(this.res, code, this.requestId, detail, extra, close || this.host.closing || !this.clientBodyDone, members);
    this.#end();
  }

  #finish(): void {
    if (this.done) return;
    this.done = true;
    this.#end();
  }

  /** The one place an exchange ends: log hooks, then the worker's bookkeeping. */
  #end(): void {
    if (this.timing.start > 0) this.timing.end = performance.now();
    const log = this.route.log;
    if (log !== null) for (let i = 0; i < log.length; i++) log[i].log!(this);
    this.host.finished(this);
  }

  #abandonUpstream(): void {
    const conn = this.conn;
    this.conn = null;
    if (conn !== null) conn.abort(this);
    else if (this.nodeIndex >= 0) this.route.upstream.pools[this.nodeIndex].cancel(this);
  }

  #onAborted(): void {
    this.aborted = true;
    if (this.done) return;
    this.done = true;
    this.status = 499; // client closed the request (nginx's convention), for logs and counters
    this.#abandonUpstream();
    this.#end();
  }
}

/**
 * Ends a response that has no body and no Content-Length (204, 304, HEAD without a known length, a bodiless answer
 * prepared by a policy). uWS 20.30 writes a Content-Length for any first argument of endWithoutBody, undefined
 * included (as 9223372036854775808), and RFC 9110 8.6 forbids one on a 204: so no argument, and a close is announced
 * with Connection: close (the client then closes; a draining gateway closes what is left when it stops).
 */
function endWithoutLength(res: HttpResponse, close: boolean): void {
  if (close) res.writeHeader('connection', 'close');
  res.endWithoutBody();
}

/** Removes header lines by lower-case name from a forwarded header block (only for routes that strip headers). */
function dropHeaderLines(block: string, names: readonly string[]): string {
  let out = '';
  let pos = 0;
  while (pos < block.length) {
    let end = block.indexOf('\r\n', pos);
    if (end < 0) end = block.length;
    const line = block.slice(pos, end);
    const colon = line.indexOf(':');
    if (!names.includes(line.slice(0, colon).toLowerCase())) out += line + '\r\n';
    pos = end + 2;
  }
  return out;
}

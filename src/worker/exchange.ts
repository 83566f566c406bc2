// performance from its module: Node 20's global `performance` is a lazy getter, ~20 ns an access, several a request
import { performance } from 'node:perf_hooks';
import type { HttpResponse } from 'uWebSockets.js';
import { splitFieldLines } from '../shared/field-lines.js';
import { ERRORS, type ErrorCode } from '../errors/codes.js';
import { upstreamDetail, writeProblem, type ProblemMembers } from '../errors/problem.js';
import type { UpstreamConnection } from '../upstream/exchange.js';
import { Attempt, type AttemptOwner } from '../upstream/attempt.js';
import { AggregateRun, type AggregateHost } from '../aggregate/runner.js';
import { clock } from '../shared/clock.js';
import { BODY_CHUNKED, BODY_LENGTH, BODY_NONE, type ForwardedHeaders } from '../upstream/h1-parse.js';
import type { RouteRuntime, UpstreamRuntime } from './runtime.js';
import { STATUS_LINES } from './status-lines.js';
import { ADMIT_CIRCUIT_OPEN, ADMIT_FULL, ADMIT_PROBE, OUTCOME_CONNECT, OUTCOME_OK, OUTCOME_RESET, OUTCOME_TIMEOUT, type QueuedRequest } from '../upstream/cluster.js';
import { requestLineWithQueryParam, requestLineWithoutQueryParam } from '../shared/query.js';
import type { WorkerCounters } from '../shared/counters.js';
import { GATEWAY_ERRORS, UPSTREAM_ERRORS } from '../shared/counters.js';
import { CONTINUE, PENDING, RESPOND, type PolicyContext, type RequestBodyTransform, type RequestTiming } from '../pipeline/policy.js';
import { openBodyChain, type BodyChain, type ChainOwner } from '../pipeline/body-chain.js';
import { BackgroundRequest, type BackgroundSink } from '../upstream/background.js';
import type { MirrorRoute } from '../traffic/mirror.js';
import type { ClientCertificate } from '../node-listener/client-cert.js';

/** Body chunks held while no upstream connection is ready; beyond this the client is paused. */
const PENDING_BODY_LIMIT = 256 * 1024;
/**
 * A chunked request body up to this size is read whole before the request goes upstream (then forwarded with a
 * Content-Length), so broken chunk framing or a body over the route limit is refused with nothing sent upstream;
 * a longer body starts streaming (chunked) once this much has arrived.
 */
const CHUNKED_HOLD_LIMIT = 64 * 1024;

/** Exchanges still receiving a request body, checked every clock tick against the route's minimum rate. */
const receiving = new Set<Exchange>();
let unregisterBodySweep: (() => void) | null = null;

function sweepBodies(now: number): void {
  for (const ex of receiving) ex.checkBodyRate(now);
}

/** Upstream failures a route's fallback answers in place of (the request never reached a response). */
const FALLBACK_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'NG_ERR_UPSTREAM_CONNECT',
  'NG_ERR_UPSTREAM_RESET',
  'NG_ERR_UPSTREAM_TIMEOUT',
  'NG_ERR_UPSTREAM_UNAVAILABLE',
  'NG_ERR_UPSTREAM_CIRCUIT_OPEN',
  'NG_ERR_UPSTREAM_OVERLOADED',
  'NG_ERR_UPSTREAM_QUEUE_TIMEOUT',
  'NG_ERR_REQUEST_DEADLINE',
]);

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
const NO_HEADERS: readonly string[] = Object.freeze([]) as readonly string[];
const NO_PARAMS: string[] = [];

/** Where a response head is assembled for uWS (see onHead): the largest upstream head plus what the gateway adds. */
const HEAD_OUT = Buffer.allocUnsafe(64 * 1024 + 4096);
// The first `length` bytes of HEAD_OUT, from a small cache of views by length: the heads of one route's responses
// mostly have the same few lengths, and a view made per response is an object uWS reads once and drops.
const HEAD_VIEWS: Buffer[] = Array.from({ length: 64 }, () => HEAD_OUT.subarray(0, 0));
function headView(length: number): Buffer {
  const i = length & 63;
  let v = HEAD_VIEWS[i];
  if (v.length !== length) HEAD_VIEWS[i] = v = HEAD_OUT.subarray(0, length);
  return v;
}
const STATUS_BYTES: Buffer[] = STATUS_LINES.map((line) => Buffer.from(line, 'latin1'));
let viaFor = '';
let viaLines = Buffer.alloc(0);

/**
 * Writes "\r\n<name>: <value>" into `out` at `o`; the new end, or -1 when it might not fit. ASCII is copied in a loop
 * (a policy's header is a few short fields: rate-limit state, a set header), anything else as UTF-8: no string is
 * built for the block and no call into the runtime is made per field.
 */
function putField(out: Buffer, o: number, name: string, value: string): number {
  if (o + 4 + (name.length + value.length) * 3 > out.length) return -1;
  out[o] = 13;
  out[o + 1] = 10;
  o = putText(out, o + 2, name);
  out[o] = 58;
  out[o + 1] = 32;
  return putText(out, o + 2, value);
}

/**
 * CRLF and field lines ("name: value" joined by CRLF, ASCII: see addResponseFields) into a head block; -1 when they
 * do not fit. The lines are mostly a concatenation made for this response: one native write walks it, where
 * charCodeAt per character in putText cost twice the six putField calls it replaces (a micro check: 1.3 µs against
 * 0.65, and 0.5 this way). V8 flattens the concatenation before writing it either way; latin1 then copies it as it
 * is, where UTF-8 encoded it once more (about 300 instructions a response, counted by native-bench/instructions.sh).
 */
function putLines(out: Buffer, o: number, lines: string): number {
  if (o + 2 + lines.length > out.length) return -1;
  out[o] = 13;
  out[o + 1] = 10;
  return o + 2 + out.write(lines, o + 2, 'latin1');
}

/** Policies' added headers as name, value… with the field lines of addResponseFields split into pairs. */
function fieldPairs(extra: readonly string[]): readonly string[] {
  if (!extra.includes('')) return extra;
  const out: string[] = [];
  for (let i = 0; i < extra.length; i += 2) {
    if (extra[i] === '') splitFieldLines(extra[i + 1], out);
    else out.push(extra[i], extra[i + 1]);
  }
  return out;
}

function putText(out: Buffer, o: number, s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return o + out.write(i === 0 ? s : s.slice(i), o, 'utf8');
    out[o++] = c;
  }
  return o;
}

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
export class Exchange implements AttemptOwner, PolicyContext, QueuedRequest, ChainOwner, AggregateHost {
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
  /** the body is held whole for the route's request-body transform (PolicyHooks.requestBody) */
  readonly bodyTransform: boolean;
  readonly replayable: boolean;
  readonly pipelinable: boolean;
  /** GET, HEAD, OPTIONS, PUT, DELETE, TRACE: may be retried after it reached a node (RFC 9110 9.2.2) */
  readonly idempotent: boolean;
  readonly readTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly maxBodyBytes: number;
  /** the cluster this request goes to: the route's upstream, or its fallback upstream */
  upstream: UpstreamRuntime;
  /** the try in flight (null between tries and before the first) */
  attempt: Attempt | null = null;
  /** holds a slot of the upstream (cluster.admit), given back when the exchange ends */
  admitted = false;
  /** this request is one of the half-open circuit's probes */
  probe = false;
  /** holds a slot of the route's concurrency limit */
  routeSlot = false;
  /** the route's own circuit breaker admitted this request (once, whatever the retries); as a probe */
  routeAdmitted = false;
  routeProbe = false;
  retries = 0;
  /** a retry counted in the budget whose attempt has not started yet */
  budgetHeld = false;
  retryTimer: NodeJS.Timeout | null = null;
  /** clock.now deadline of the whole request (0: none) */
  readonly deadline: number;
  /** clock.now deadline of a wait in the upstream's queue (0: not queued) */
  queuedUntil = 0;
  /** the whole request body, kept for a retry (only when held whole and small enough) */
  replayBody: Buffer[] | null = null;
  /** the fallback upstream was tried already */
  fellBack = false;
  /** the route's mirror, when this request matched it, until the first dispatch offers it a copy (then null) */
  mirror: MirrorRoute | null = null;
  /** the traffic-split version this request went to (index into route.split.names), or -1 (no split, not started) */
  version = -1;
  /** clock.now when the body started to arrive, for the minimum rate */
  bodyStartedAt = 0;

  aborted = false;
  done = false;
  headSent = false;
  /** the client sent `te: trailers` (set by the listener); an HTTP/2 upstream then gets it too */
  acceptsTrailers = false;
  /** the upstream's trailer fields (HTTP/2 upstreams), held until the body's end goes out */
  trailers: readonly string[] | null = null;
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
  /** a policy answered in place of the upstream's response (PolicyHooks.answer): its body is read and dropped */
  upstreamDropped = false;
  /** this response's body filters (src/pipeline/body-chain.ts); null: none, the common case */
  chain: BodyChain | null = null;
  /** the head the response phase reads (PolicyContext.responseHeader): the upstream's, valid during onHead only… */
  headView: ForwardedHeaders | null = null;
  /** …or a prepared response's flat header list */
  preparedView: readonly string[] | null = null;
  responseLength = -1;
  /**
   * the response's head while a holdsHead filter reads the body (flat name/value list, the route's removals done):
   * written with the chain's first output, or replaced by a problem+json when the filter refuses; null otherwise
   */
  heldHead: string[] | null = null;
  /** the held head is an upstream's (it gets Via) */
  heldVia = false;

  // policy context (see PolicyContext); plain defaults on routes without policies
  readonly facts: RequestFacts | null;
  consumerId: string | null = null;
  consumerIndex = -1;
  consumerPlan: string | null = null;
  scopes: readonly string[] | null = null;
  roles: readonly string[] | null = null;
  requestCost = -1;
  readonly slots: unknown[];
  upstreamExtra = '';
  upstreamRemove: string[] | null = null;
  /** headers added by policies: name, value…; an empty name marks field lines added at once (addResponseFields) */
  responseExtra: string[] | null = null;
  responseRemove: string[] | null = null;
  /** the next access/rewrite hook to run (for resume after PENDING) */
  phaseIndex = 0;
  /** a response prepared by a hook (RESPOND) */
  prepared: { status: number; headers: readonly string[]; body: string | Uint8Array | undefined; code: ErrorCode | null; detail: string | undefined; members: ProblemMembers | null } | null = null;
  /** the handler's timestamps, or its shared all-zero object until a hook calls startTiming() */
  timing: RequestTiming;
  // observability, always on (metrics): handler entry and dispatch to the upstream pool (performance.now())
  startedAt = 0;
  sentAt = 0;
  /** dispatch of the latest attempt: the answering node's latency starts here (a retry's, not the first try's) */
  attemptSentAt = 0;
  /** inside the pool's dispatch call: a connection that comes now was waiting in the pool */
  dispatching = false;

  /** an aggregate route's request: the values of the match's params, and the calls in flight (src/aggregate/) */
  params: string[] | null = null;
  aggregateRun: AggregateRun | null = null;

  readonly onAborted = (): void => this.#onAborted();
  /** uWS calls this when the client socket drains; the writes in it are corked like every other write. */
  #onWritable(offset: number): boolean {
    let result = true;
    corked(this.res, () => {
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
    contentLength = 0,
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
    // A body up to requestBody.bufferBytes is read whole before an upstream connection is taken (so a slow client
    // holds no connection, and the body can be replayed on a retry); a chunked one at least up to CHUNKED_HOLD_LIMIT.
    const rb = route.plan.requestBody;
    this.bodyHeld = requestBodyKind === BODY_CHUNKED || (requestBodyKind === BODY_LENGTH && contentLength <= rb.bufferBytes);
    const safe = method === 'GET' || method === 'HEAD' || method === 'OPTIONS';
    this.idempotent = safe || method === 'PUT' || method === 'DELETE' || method === 'TRACE';
    this.replayable = requestBodyKind === BODY_NONE && this.idempotent;
    // Only GET and HEAD share a pipelined batch: the two methods whose repetition after a broken batch is harmless.
    this.pipelinable = requestBodyKind === BODY_NONE && (method === 'GET' || method === 'HEAD');
    this.upstream = route.upstream;
    this.deadline = route.plan.requestTimeoutMs > 0 ? clock.now + route.plan.requestTimeoutMs : 0;
    if (requestBodyKind !== BODY_NONE && rb.minBytesPerSecond > 0) {
      this.bodyStartedAt = clock.now;
      receiving.add(this);
      unregisterBodySweep ??= clock.register(sweepBodies);
    }
    this.readTimeoutMs = route.plan.readTimeoutMs;
    this.connectTimeoutMs = route.plan.connectTimeoutMs;
    this.maxBodyBytes = route.plan.maxBodyBytes;
    this.clientBodyDone = requestBodyKind === BODY_NONE;
    this.facts = facts;
    this.slots = route.slotCount > 0 ? route.newSlots() : NO_SLOTS;
    this.timing = timing;
    // asked last: the transforms read the request head through this context
    this.bodyTransform = route.requestBody !== null && requestBodyKind !== BODY_NONE && wantsBody(route.requestBody, this);
    if (this.bodyTransform) this.bodyHeld = true;
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
  /** the connection's verified client certificate: only the node listener's response carries one (no field here) */
  get clientCert(): ClientCertificate | null {
    return (this.res as { clientCert?: ClientCertificate | null }).clientCert ?? null;
  }
  get bytesIn(): number {
    return this.bodyBytes;
  }
  get responseDate(): string | undefined {
    return this.headView?.date;
  }
  get trafficVersion(): string | null {
    return this.version >= 0 ? this.route.split!.names[this.version] : null;
  }
  get upstreamNode(): string | null {
    return this.nodeIndex >= 0 ? this.upstream.authorities[this.nodeIndex] : null;
  }

  header(name: string): string | undefined {
    const f = this.facts;
    if (f === null || f.headerNames === null) return undefined;
    const names = f.headerNames;
    for (let i = 0; i < names.length; i++) if (names[i] === name) return f.headerValues![i];
    return undefined;
  }

  headerValues(name: string): string[] {
    const f = this.facts;
    const out: string[] = [];
    if (f === null || f.headerNames === null) return out;
    const names = f.headerNames;
    for (let i = 0; i < names.length; i++) if (names[i] === name) out.push(f.headerValues![i]);
    return out;
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

  addUpstreamQueryParam(name: string, value: string): void {
    this.headLine = requestLineWithQueryParam(this.headLine, encodeURIComponent(name) + '=' + encodeURIComponent(value));
  }

  // the first pair as a literal: an empty array grows its backing store on the first push
  addResponseHeader(name: string, value: string): void {
    if (this.responseExtra === null) this.responseExtra = [name, value];
    else this.responseExtra.push(name, value);
  }

  addResponseFields(lines: string): void {
    if (this.responseExtra === null) this.responseExtra = ['', lines];
    else this.responseExtra.push('', lines);
  }

  removeResponseHeader(name: string): void {
    (this.responseRemove ??= []).push(name.toLowerCase());
  }

  respondProblem(code: ErrorCode, detail?: string, headers: readonly string[] = [], members?: ProblemMembers): void {
    this.prepared = { status: ERRORS[code].status, headers, body: undefined, code, detail, members: members ?? null };
  }

  respond(status: number, headers: readonly string[], body?: string | Uint8Array): void {
    this.prepared = { status, headers, body, code: null, detail: undefined, members: null };
  }

  startTiming(): void {
    if (this.timing.start > 0 || this.startedAt <= 0) return;
    const now = performance.now();
    this.timing = { start: this.startedAt, routed: now, upstreamStart: this.sentAt, connected: 0, upstreamHeaders: 0, end: 0, hooks: null, hookNames: null };
  }

  // ---------------------------------------------------------------------------- aggregate routes (AggregateHost)

  #aggregate(): void {
    if (this.aggregateRun !== null) return;
    this.aggregateRun = new AggregateRun(this.route.aggregate!, this, this.params ?? NO_PARAMS);
    this.aggregateRun.start();
  }

  respondNow(status: number, headers: readonly string[], body: string): void {
    this.respond(status, headers, body);
    this.#sendPrepared();
  }

  failNow(code: ErrorCode, detail: string, members: ProblemMembers): void {
    if (this.aborted || this.done) return;
    corked(this.res, () => this.#fail(code, detail, false, [], members));
  }

  noteUpstreamError(detail: string): void {
    this.upstreamError = detail;
  }

  hashKeyFor(upstream: UpstreamRuntime): number {
    return upstream.hashKey === null ? 0 : upstream.hashKey(this);
  }

  responseHeader(name: string): string | undefined {
    const list = this.headView !== null ? this.headView.list() : this.preparedView;
    if (list === null) return undefined;
    for (let i = 0; i < list.length; i += 2) if (sameName(list[i], name)) return list[i + 1];
    return undefined;
  }

  refresh(sink: BackgroundSink): boolean {
    const rewrite = this.route.rewrite;
    if (rewrite !== null) for (let i = 0; i < rewrite.length; i++) if (rewrite[i].rewrite!(this) === RESPOND) return false;
    const rest = this.upstreamRemove === null ? this.headRest : dropHeaderLines(this.headRest, this.upstreamRemove);
    const line = this.headLine.startsWith('GET ') ? this.headLine : 'GET' + this.headLine.slice(this.headLine.indexOf(' '));
    new BackgroundRequest(this.route.upstream, line, this.hostLine, this.upstreamExtra + rest, this.readTimeoutMs, this.connectTimeoutMs, sink).start();
    return true;
  }

  responseHeaders(): readonly string[] {
    return this.headView !== null ? this.headView.list() : (this.preparedView ?? NO_HEADERS);
  }

  responseHeaderValues(name: string): string[] {
    const list = this.headView !== null ? this.headView.list() : this.preparedView;
    const out: string[] = [];
    if (list !== null) for (let i = 0; i < list.length; i += 2) if (sameName(list[i], name)) out.push(list[i + 1]);
    return out;
  }

  #sendPrepared(): void {
    const p = this.prepared;
    if (p === null || this.aborted || this.done) return;
    if (p.code !== null) {
      corked(this.res, () => this.#fail(p.code!, p.detail, false, p.headers, p.members));
      return;
    }
    corked(this.res, () => {
      this.status = p.status;
      const body = p.body;
      const route = this.route;
      if (route.response !== null || route.responseBody !== null) {
        // the response phase reads the prepared head as it would read an upstream's
        this.preparedView = p.headers;
        this.responseLength = body === undefined ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
        this.#runResponseHooks();
        // body filters for a body the client can take whole (a client still sending is answered with a close)
        if (route.responseBody !== null && this.responseLength > 0 && !this.isHeadRequest && this.clientBodyDone) this.chain = openBodyChain(route.responseBody, this, this);
        this.preparedView = null;
      }
      const res = this.res;
      const remove = this.responseRemove;
      if (this.chain !== null && this.chain.holdsHead) {
        this.heldHead = keptHeaders(p.headers, remove);
        this.heldVia = false;
        this.headSent = true;
        const bytes = typeof body === 'string' ? Buffer.from(body) : Buffer.from(body!.buffer, body!.byteOffset, body!.byteLength);
        this.chain.write(bytes);
        this.chain?.complete();
        return;
      }
      res.writeStatus(STATUS_LINES[p.status] ?? `${p.status} Unknown`);
      for (let i = 0; i < p.headers.length; i += 2) if (remove === null || !remove.includes(p.headers[i].toLowerCase())) res.writeHeader(p.headers[i], p.headers[i + 1]);
      this.#writeExtraHeaders();
      res.writeHeader('x-request-id', this.requestId);
      const chain = this.chain;
      if (chain !== null) {
        // through the filters like an upstream body that came in one piece
        this.headSent = true;
        this.responseKind = chain.changesLength ? BODY_CHUNKED : BODY_LENGTH;
        this.responseTotal = this.responseLength;
        const bytes = typeof body === 'string' ? Buffer.from(body) : Buffer.from(body!.buffer, body!.byteOffset, body!.byteLength);
        chain.write(bytes);
        chain.complete();
        return;
      }
      if (body === undefined) endWithoutLength(res, this.host.closing || !this.clientBodyDone);
      else res.end(body, this.host.closing || !this.clientBodyDone);
      this.bytesOut = body === undefined ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
      this.#finish();
    });
  }

  /** PolicyHooks.answer: the first hook that prepares a response replaces the upstream's answer. */
  #askAnswer(): boolean {
    const hooks = this.route.answer!;
    for (let i = 0; i < hooks.length; i++) {
      if (hooks[i].answer!(this)) {
        this.upstreamDropped = true;
        this.headSent = false;
        this.errorCode = null;
        this.responseLength = -1;
        this.#sendPrepared();
        return true;
      }
    }
    return false;
  }

  #runResponseHooks(): void {
    const hooks = this.route.response;
    if (hooks !== null) for (let i = 0; i < hooks.length; i++) hooks[i].response!(this);
  }

  #writeExtraHeaders(): void {
    const extra = this.responseExtra;
    if (extra === null) return;
    const pairs = fieldPairs(extra);
    for (let i = 0; i < pairs.length; i += 2) this.res.writeHeader(pairs[i], pairs[i + 1]);
  }

  // ---------------------------------------------------------------------------- dispatch

  /**
   * Sends the request to its upstream cluster: the route's concurrency limit, the cluster's admission (circuit
   * breaker, concurrency limit and queue), then a node (another one than `skip` after a failure) and an attempt on
   * its pool. Called again for every retry and when a queued request gets a slot.
   */
  start(skip = -1): void {
    if (this.bodyHeld) {
      const transformNow = this.bodyTransform && this.clientBodyDone && !this.startWanted;
      this.startWanted = true;
      if (transformNow) this.#transformBody();
      return;
    }
    if (this.aborted || this.done) return;
    if (this.route.aggregate !== null) return this.#aggregate();
    // The split is decided once, at the first dispatch: after the access phase, so targeting and stickiness see
    // the consumer; retries, the queue and the fallback keep the version's choice.
    const split = this.route.split;
    if (split !== null && this.version < 0) {
      this.version = split.pick(this);
      this.upstream = split.upstreams[this.version] as UpstreamRuntime;
    }
    const upstream = this.upstream;
    const cluster = upstream.cluster;
    if (!this.admitted) {
      const route = this.route;
      if (route.circuit !== null && !this.routeAdmitted) {
        const v = route.circuit.admit();
        if (v === ADMIT_CIRCUIT_OPEN) {
          const secs = Math.max(1, Math.ceil(route.circuit.retryAfterMs() / 1000));
          return this.#failCorked('NG_ERR_UPSTREAM_CIRCUIT_OPEN', `route "${route.plan.name}" is failing; try again later`, ['retry-after', String(secs)]);
        }
        this.routeAdmitted = true;
        this.routeProbe = v === ADMIT_PROBE;
      }
      if (route.concurrency !== null && !this.routeSlot) {
        if (!takeSlot(route.concurrency, route.plan.maxConcurrent)) return this.#failCorked('NG_ERR_ROUTE_OVERLOADED', `route "${route.plan.name}" is at its limit of ${route.plan.maxConcurrent} requests`);
        this.routeSlot = true;
      }
      const verdict = cluster.admit();
      if (verdict === ADMIT_CIRCUIT_OPEN) {
        const secs = Math.max(1, Math.ceil(cluster.circuitRetryAfterMs() / 1000));
        return this.#failCorked('NG_ERR_UPSTREAM_CIRCUIT_OPEN', `upstream "${upstream.name}" is failing; try again later`, ['retry-after', String(secs)]);
      }
      if (verdict === ADMIT_FULL) {
        const wait = this.deadline > 0 ? Math.min(cluster.queueWaitMs, this.deadline - clock.now) : cluster.queueWaitMs;
        if (wait > 0 && cluster.enqueue(this)) {
          this.queuedUntil = clock.now + wait;
          return;
        }
        return this.#failCorked('NG_ERR_UPSTREAM_OVERLOADED', `upstream "${upstream.name}" is at its concurrency limit`);
      }
      this.admitted = true;
      this.probe = verdict === ADMIT_PROBE;
    }
    let readTimeout = this.route.plan.retry.perTryTimeoutMs || this.readTimeoutMs;
    if (this.deadline > 0) {
      const left = this.deadline - clock.now;
      if (left <= 0) return this.#failCorked('NG_ERR_REQUEST_DEADLINE', 'the request deadline passed before an upstream answered');
      if (left < readTimeout) readTimeout = left;
    }
    const i = cluster.pick(skip, upstream.hashKey === null ? 0 : upstream.hashKey(this));
    if (i < 0) return this.#failCorked('NG_ERR_UPSTREAM_UNAVAILABLE', `upstream "${upstream.name}" has no node to send to`);
    this.nodeIndex = i;
    this.attempts++;
    if (upstream === this.route.upstream) this.host.attempted(this);
    if (this.upstreamRemove !== null) {
      this.headRest = dropHeaderLines(this.headRest, this.upstreamRemove);
      this.upstreamRemove = null;
    }
    this.requestHead = this.headLine + (this.hostLine ?? upstream.hostLines[i]) + this.upstreamExtra + this.headRest;
    const attempt = new Attempt(this, cluster, i, readTimeout, this.probe && this.attempts === 1, this.budgetHeld);
    this.budgetHeld = false;
    this.attempt = attempt;
    this.attemptSentAt = attempt.sentAt;
    if (this.sentAt === 0) {
      // gateway-added time ends at the first dispatch; retries count as upstream time
      this.sentAt = attempt.sentAt;
      if (this.timing.start > 0) this.timing.upstreamStart = this.sentAt;
    }
    // the body as held before dispatch: a connection ready at once takes (and clears) pendingBody
    const body = this.pendingBody;
    this.dispatching = true;
    try {
      upstream.pools[i].dispatch(attempt);
    } finally {
      this.dispatching = false;
    }
    if (this.mirror !== null) {
      const m = this.mirror;
      this.mirror = null;
      m.offer(this, body);
    }
  }

  #failCorked(code: ErrorCode, detail: string, headers: readonly string[] = []): void {
    corked(this.res, () => this.#fail(code, detail, false, headers));
  }

  // ---------------------------------------------------------------------------- queue (QueuedRequest)

  dequeued(): void {
    this.queuedUntil = 0;
    // Not from inside another response's cork (release() runs where a request ends): on the next turn.
    setImmediate(() => this.start());
  }

  queueTimedOut(): void {
    this.queuedUntil = 0;
    this.#failCorked('NG_ERR_UPSTREAM_QUEUE_TIMEOUT', `no slot of upstream "${this.upstream.name}" became free in time`);
  }

  // ---------------------------------------------------------------------------- retries (AttemptOwner)

  attemptObserved(_attempt: Attempt, outcome: number, latencyUs: number): void {
    const c = this.route.circuit;
    if (c === null) return;
    c.record(outcome !== OUTCOME_OK, latencyUs, this.routeProbe);
    this.routeProbe = false; // a probe is decided by its first try
  }

  /** Every failed try: its cause (with the node address) goes to the access log and the admin API, never the client. */
  attemptFailed(attempt: Attempt, code: ErrorCode, detail: string): void {
    this.upstreamError = detail;
    this.upstream.noteError(attempt.node, code, detail);
    if (this.upstream === this.route.upstream) this.host.attemptFailed(this, code);
  }

  /**
   * A try failed (or answered a 5xx the route retries): try again when the route's retry policy, the request
   * (method, body), the deadline and the upstream's retry budget all allow it. The first retry goes at once to
   * another node; later ones, or retries on the same node, wait an exponential backoff with full jitter.
   */
  retryAfter(attempt: Attempt, outcome: number, status: number): boolean {
    if (this.aborted || this.done || this.headSent || attempt !== this.attempt) return false;
    const p = this.route.plan.retry;
    if (this.retries >= p.attempts) return false;
    const wanted = status > 0 ? p.statuses.includes(status) : outcome === OUTCOME_CONNECT ? p.onConnect : outcome === OUTCOME_RESET ? p.onReset : outcome === OUTCOME_TIMEOUT ? p.onTimeout : false;
    if (!wanted) return false;
    // Nothing reached the node on a connect failure; anything else may have had effects there.
    if ((status > 0 || outcome !== OUTCOME_CONNECT) && !this.idempotent && !p.nonIdempotent) return false;
    if (!this.clientBodyDone || (this.bodySent && this.replayBody === null)) return false;
    const cluster = this.upstream.cluster;
    const sameNode = cluster.nodeCount === 1;
    const delay = this.retries === 0 && !sameNode ? 0 : backoff(p.backoffBaseMs, p.backoffMaxMs, this.retries);
    if (this.deadline > 0 && clock.now + delay >= this.deadline) return false;
    // A refused connect put no load on any node, so its retry cannot multiply load: only the other retries count
    // against the budget (in-flight requests on a killed node then all find another node, whatever their number).
    const free = status === 0 && outcome === OUTCOME_CONNECT;
    if (!free && !cluster.tryRetry()) return false;
    this.retries++;
    this.budgetHeld = !free;
    this.attempt = null;
    this.conn = null;
    if (this.replayBody !== null) {
      this.pendingBody = this.replayBody;
      this.bodySent = false;
    }
    const skip = attempt.node;
    if (delay === 0) this.start(skip);
    else {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.start(skip);
      }, delay);
    }
    return true;
  }

  batch(fn: () => void): void {
    if (this.aborted) fn();
    else corked(this.res, fn);
  }

  // ---------------------------------------------------------------------------- request body

  onConnected(conn: UpstreamConnection): void {
    this.conn = conn;
    // a connection handed over during the dispatch (a pooled one) is there at the dispatch's time
    if (this.timing.start > 0) this.timing.connected = this.dispatching ? this.attemptSentAt : performance.now();
    const pending = this.pendingBody;
    if (pending !== null) {
      this.pendingBody = null;
      this.pendingBytes = 0;
      // A body held whole is kept for a retry (the chunks are the gateway's own copies).
      if (this.clientBodyDone && this.bodyBytes <= this.route.plan.retry.maxBodyBytes && this.route.plan.retry.attempts > 0) this.replayBody = pending;
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
      corked(this.res, () => this.#fail('NG_ERR_REQUEST_BODY_TOO_LARGE', `the body exceeds ${this.maxBodyBytes} bytes`, true));
      return;
    }
    if (this.bodyTransform && this.bodyBytes > this.route.requestBodyLimit) {
      // nothing went upstream yet: the body is held whole until it is transformed
      corked(this.res, () => this.#fail('NG_ERR_TRANSFORM_BODY_TOO_LARGE', `the body exceeds the ${this.route.requestBodyLimit} bytes this route transforms`, true));
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
        // A held body is bounded by its hold limit; one waiting for a connection pauses the client past this.
        if (!this.bodyHeld && this.pendingBytes > PENDING_BODY_LIMIT) this.#pauseClient();
      }
    }
    if (isLast) {
      this.clientBodyDone = true;
      if (this.bodyStartedAt > 0) receiving.delete(this);
      // A body transform reads what the request phases set (the consumer, its scopes, a GraphQL cost): it runs once
      // they are done (start() was asked for), not when the body happens to be complete before a PENDING hook resumed.
      if (this.bodyTransform) return this.startWanted ? this.#transformBody() : undefined;
      if (this.bodyHeld) {
        // The whole body is here: forward it with a Content-Length instead of re-chunking it.
        this.requestBodyKind = this.bodyBytes > 0 ? BODY_LENGTH : BODY_NONE;
        this.headRest = this.headRest.replace('transfer-encoding: chunked\r\n', `content-length: ${this.bodyBytes}\r\n`);
        this.#release();
      }
      this.conn?.endBody();
    } else if (this.bodyHeld && !this.bodyTransform && this.pendingBytes > Math.max(CHUNKED_HOLD_LIMIT, this.route.plan.requestBody.bufferBytes)) this.#release();
  }

  /** The held body through the route's request-body transforms, in order; then it goes upstream with a Content-Length. */
  #transformBody(index = 0, input: Buffer | null = null): void {
    const list = this.route.requestBody!;
    let body = input ?? (this.pendingBody === null ? Buffer.alloc(0) : this.pendingBody.length === 1 ? this.pendingBody[0] : Buffer.concat(this.pendingBody));
    for (let i = index; i < list.length; i++) {
      const out = list[i].transform(this, body);
      if (out === null) return this.#sendPrepared();
      if (!(out instanceof Uint8Array)) {
        out.then(
          (next) => {
            if (this.aborted || this.done) return;
            if (next === null) this.#sendPrepared();
            else this.#transformBody(i + 1, next);
          },
          () => this.#failCorked('NG_ERR_TRANSFORM_FAILED', 'the request body could not be transformed'),
        );
        return;
      }
      body = out;
    }
    this.pendingBody = body.length > 0 ? [body] : null;
    this.pendingBytes = body.length;
    this.requestBodyKind = body.length > 0 ? BODY_LENGTH : BODY_NONE;
    this.headRest = withBodyLength(this.headRest, body.length);
    this.#release();
  }

  /** The clock's check of a body still arriving: slower than the route's minimum rate gets 408 and a close. */
  checkBodyRate(now: number): void {
    if (this.done || this.clientBodyDone) {
      receiving.delete(this);
      return;
    }
    const rb = this.route.plan.requestBody;
    const elapsed = now - this.bodyStartedAt;
    if (elapsed < rb.graceMs || this.bodyBytes * 1000 >= rb.minBytesPerSecond * elapsed) return;
    receiving.delete(this);
    this.#abandonUpstream();
    // #fail closes the connection: the body is not complete.
    this.#failCorked('NG_ERR_REQUEST_BODY_TIMEOUT', `the body arrived slower than ${rb.minBytesPerSecond} bytes per second`);
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
    if (this.timing.start > 0) {
      const a = this.attempt;
      this.timing.upstreamHeaders = a !== null && a.headAt > 0 ? a.headAt : performance.now();
    }
    const route = this.route;
    if (route.answer !== null) {
      // a policy may answer in place of this response (PolicyHooks.answer): it is then read to its end and dropped
      this.headView = headers;
      this.responseLength = bodyKind === BODY_LENGTH ? contentLength : bodyKind === BODY_NONE ? 0 : -1;
      const replaced = this.#askAnswer();
      this.headView = null;
      if (replaced) return;
    }
    if (route.response !== null || route.responseBody !== null) {
      this.headView = headers;
      this.responseLength = bodyKind === BODY_LENGTH ? contentLength : bodyKind === BODY_NONE ? 0 : -1;
      this.#runResponseHooks();
      if (route.responseBody !== null && bodyKind !== BODY_NONE) {
        const chain = (this.chain = openBodyChain(route.responseBody, this, this));
        // uWS frames a body it is given with write() (no total) as chunked: no Content-Length for changed bytes
        if (chain !== null && chain.changesLength) bodyKind = BODY_CHUNKED;
        if (chain !== null && chain.holdsHead) {
          // a filter reads the whole body first: the head waits for its output (see #writeHeldHead), copied out
          // of the read buffer it lives in
          this.heldHead = keptHeaders(headers.list(), this.responseRemove);
          this.heldVia = true;
          this.responseKind = bodyKind;
          this.headView = null;
          return;
        }
      }
      this.headView = null;
    }
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
      // headers added by policies (rate-limit state, a headers policy's set…) are written into the same block
      const extra = this.responseExtra;
      if (extra !== null && o >= 0) {
        for (let i = 0; i < extra.length && o >= 0; i += 2) o = extra[i] === '' ? putLines(out, o, extra[i + 1]) : putField(out, o, extra[i], extra[i + 1]);
      }
      const via = viaBytes(this.host.viaValue);
      if (o >= 0 && o + via.length + this.requestId.length <= out.length) {
        out.set(via, o);
        o += via.length;
        o += out.write(this.requestId, o, 'latin1');
        res.writeStatus(headView(o));
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
      this.#writeExtraHeaders();
    }
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
    if (this.aborted || this.done || this.upstreamDropped) return true;
    const chain = this.chain;
    // through the route's body filters, whose output comes back to #send (filteredChunk); the upstream waits while a
    // filter holds its input or the client has not drained
    if (chain !== null) return chain.write(chunk) && this.queued === null;
    return this.#send(chunk);
  }

  /** Writes body bytes to the client (corked), with backpressure; false: the upstream should wait. */
  #send(chunk: Buffer): boolean {
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
      this.#endOut();
      return true;
    }
    if (this.chain === null || this.chain.ready) this.conn?.resume();
    return true;
  }

  onTrailers(list: readonly string[]): void {
    if (this.aborted || this.done || this.upstreamDropped) return;
    this.trailers = list;
  }

  onEnd(): void {
    if (this.aborted || this.done || this.upstreamDropped) return;
    if (!this.headSent) return this.#fail('NG_ERR_UPSTREAM_BAD_RESPONSE', 'the upstream ended without a response');
    if (this.chain !== null) return this.chain.complete();
    this.#endOut();
  }

  /**
   * Response trailers (a flat [name, value, …] list, e.g. gRPC's grpc-status and grpc-message), for the upstream
   * side to call after the last body chunk and before onEnd. A front end that has trailers (the node:http2
   * listener's adapter: writeTrailers) sends them with the end of the stream; uWS has none (its HttpResponse lacks
   * the method) and they are dropped. Returns whether they will be sent.
   */
  sendTrailers(list: readonly string[]): boolean {
    if (this.aborted || this.done) return false;
    const res = this.res as { writeTrailers?: (list: readonly string[]) => void };
    if (res.writeTrailers === undefined) return false;
    res.writeTrailers(list);
    return true;
  }

  /** The body's last bytes were handed to #send: end the response once they are out. */
  #endOut(): void {
    if (this.queued !== null) {
      // The upstream finished while chunks still wait for the client: end after them (#writable).
      this.endQueued = true;
      return;
    }
    if (this.responseKind !== BODY_LENGTH) {
      if (this.trailers !== null && !this.#writeTrailers(this.trailers)) return;
      // Never ask uWS to close here: once chunks went out it would write "Connection: close" into the body.
      this.res.end(undefined, false);
      this.#finish();
    }
    // BODY_LENGTH finishes in onBody/#writable when tryEnd reports done.
  }

  /**
   * The upstream's trailers, before the end: a listener that can send them (an HTTP/2 front end's response offers
   * `writeTrailers`) gets them as they came. uWS cannot (HTTP/1.1 chunked trailers are not in its API), so they are
   * dropped, except that a gRPC failure told in them (grpc-status other than 0) must not reach the client as a
   * complete, successful answer: the connection is cut and NG_ERR_UPSTREAM_TRAILERS_LOST logged. False: cut.
   */
  #writeTrailers(list: readonly string[]): boolean {
    if (this.sendTrailers(list)) return true;
    let failed = false;
    for (let i = 0; i < list.length; i += 2) if (list[i] === 'grpc-status' && list[i + 1].trim() !== '0') failed = true;
    if (!failed) return true;
    this.errorCode = 'NG_ERR_UPSTREAM_TRAILERS_LOST';
    this.host.counters.add(UPSTREAM_ERRORS);
    this.done = true;
    this.res.close();
    this.#end();
    return false;
  }

  // ---------------------------------------------------------------------------- body filters (ChainOwner)

  filteredChunk(chunk: Buffer, last?: boolean): boolean {
    if (this.aborted || this.done) return true;
    // the whole filtered body at once gets a Content-Length; a first piece of more starts a chunked body
    if (this.heldHead !== null) this.#writeHeldHead(last === true ? chunk.length : -1);
    return this.#send(chunk);
  }

  filteredEnd(): void {
    if (this.aborted || this.done) return;
    if (this.heldHead !== null) {
      // the filters made an empty body of it
      this.#writeHeldHead(0);
      this.res.end(undefined, this.host.closing);
      this.#finish();
      return;
    }
    this.#endOut();
  }

  /** Writes the head a holdsHead filter held, framed for `length` bytes (-1: chunked). Runs corked. */
  #writeHeldHead(length: number): void {
    const list = this.heldHead!;
    this.heldHead = null;
    const res = this.res;
    res.writeStatus(STATUS_LINES[this.status] ?? `${this.status} Unknown`);
    for (let i = 0; i < list.length; i += 2) res.writeHeader(list[i], asBytes(list[i + 1]));
    if (this.heldVia) res.writeHeader('via', this.host.viaValue);
    res.writeHeader('x-request-id', this.requestId);
    this.#writeExtraHeaders();
    if (length >= 0) {
      this.responseKind = BODY_LENGTH;
      this.responseTotal = length;
    } else this.responseKind = BODY_CHUNKED;
  }

  /**
   * A holdsHead filter refused the body (too large, not JSON): nothing of the response has gone out, so the client
   * gets the problem+json instead, and the upstream connection (maybe mid-body) is given up. After the head: a cut.
   */
  filterRefused(code: ErrorCode, detail: string): void {
    if (this.aborted || this.done) return;
    if (this.heldHead === null) return this.filterFailed(detail);
    this.heldHead = null;
    const chain = this.chain;
    this.chain = null;
    chain?.close();
    this.#abandonLater();
    // the response phase runs again for the error answer, from scratch
    this.responseExtra = null;
    this.responseRemove = null;
    corked(this.res, () => this.#fail(code, detail));
  }

  filterReady(): void {
    if (this.queued === null && !this.aborted && !this.done) this.conn?.resume();
  }

  /** A filter gave up mid-body: like an upstream reset after the head, the client connection is cut. */
  filterFailed(_reason: string): void {
    if (this.aborted || this.done) return;
    this.errorCode = 'NG_ERR_GATEWAY_BODY_FILTER';
    this.host.counters.add(GATEWAY_ERRORS);
    this.#abandonLater();
    this.done = true;
    this.res.close();
    this.#end();
  }

  /** The final failure of the request's upstream side (its attempt decided against a retry). */
  onError(code: ErrorCode, detail: string): void {
    this.conn = null;
    this.attempt = null;
    if (this.aborted || this.done || this.upstreamDropped) return;
    this.host.counters.add(UPSTREAM_ERRORS);
    if (this.heldHead !== null) {
      // A body filter still holds the head (a transform reading the whole body): nothing has gone out, so the
      // client gets the upstream error as a problem+json rather than a cut, and none of the partial body.
      this.heldHead = null;
      const chain = this.chain;
      this.chain = null;
      chain?.close();
      this.responseExtra = null;
      this.responseRemove = null;
      corked(this.res, () => this.#fail(code, upstreamDetail(code)));
      return;
    }
    if (this.headSent) {
      // Too late for an error response: cut the client connection so it sees an incomplete message.
      this.errorCode = code;
      this.done = true;
      this.res.close();
      this.#end();
      return;
    }
    corked(this.res, () => this.#fail(code, upstreamDetail(code)));
  }

  // ---------------------------------------------------------------------------- ends

  /** Writes a gateway error. Must run corked (inside res.cork or the synchronous part of the handler). */
  #fail(code: ErrorCode, detail: string | undefined, close = false, headers: readonly string[] = [], members: ProblemMembers | null = null): void {
    if (this.aborted || this.done) return;
    if (!this.headSent && this.route.answer !== null && FALLBACK_CODES.has(code)) {
      // the upstream failed: a policy may answer instead (a stale stored response), before the route's fallback
      this.status = 0;
      this.errorCode = code;
      const replaced = this.#askAnswer();
      if (replaced) return;
      this.errorCode = null;
    }
    if (!this.headSent && this.route.fallback !== null && FALLBACK_CODES.has(code) && this.#fallBack()) return;
    this.host.counters.add(GATEWAY_ERRORS);
    this.status = ERRORS[code].status;
    this.errorCode = code;
    this.done = true;
    this.#runResponseHooks();
    const extra = this.responseExtra === null ? headers : [...headers, ...fieldPairs(this.responseExtra)];
    writeProblem(this.res, code, this.requestId, detail, extra, close || this.host.closing || !this.clientBodyDone, members);
    this.#end();
  }

  /** The route's fallback in place of an upstream failure: a static answer, or one try of another upstream. */
  #fallBack(): boolean {
    const f = this.route.fallback!;
    if (f.kind === 'static') {
      this.respond(f.status, f.headers, f.body);
      this.fellBack = true;
      this.#sendPrepared();
      return true;
    }
    if (this.fellBack) return false;
    this.fellBack = true;
    this.#releaseSlots();
    this.upstream = f.upstream;
    this.retries = 0;
    this.start();
    return true;
  }

  #releaseSlots(): void {
    if (this.admitted) {
      this.admitted = false;
      this.upstream.cluster.release();
    }
    if (this.budgetHeld) {
      this.budgetHeld = false;
      this.upstream.cluster.retryDone();
    }
  }

  #finish(): void {
    if (this.done) return;
    this.done = true;
    // a body framed by Content-Length is over at its last byte, maybe before the upstream's end: an observing
    // filter still gets its onEnd (its output is ignored from here on)
    if (this.chain !== null) this.chain.complete();
    this.#end();
  }

  /** The one place an exchange ends: log hooks, then the worker's bookkeeping. */
  #end(): void {
    // An attempt still here finishes on its own: its pool reports the end of the response it is reading (the
    // client's side can end first, e.g. when the whole body came with the head). Failures abandoned it already.
    this.attempt = null;
    if (this.retryTimer !== null) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
    if (this.queuedUntil > 0) {
      this.queuedUntil = 0;
      this.upstream.cluster.dequeue(this);
    }
    this.#releaseSlots();
    if (this.routeSlot) {
      this.routeSlot = false;
      Atomics.sub(this.route.concurrency!, 0, 1);
    }
    if (this.bodyStartedAt > 0) receiving.delete(this);
    // the filters free what they hold (a zlib stream) however the response ended
    if (this.chain !== null) this.chain.close();
    if (this.timing.start > 0) this.timing.end = performance.now();
    if (this.version >= 0) this.#recordVersion();
    // Counted at once (a scrape right after the response sees it); the log hooks wait until the cork that writes
    // this response has flushed it to the client.
    this.host.finished(this);
    if (this.route.log === null) return;
    if (corkDepth > 0 || loggingEnded) ended.push(this);
    else this.runLogHooks();
  }

  /** The split's per-version stats: a 5xx, a gateway failure or a fallback's answer counts as the version's error. */
  #recordVersion(): void {
    const code = this.errorCode;
    const error = this.status >= 500 || (code !== null && ERRORS[code].status >= 500) || this.fellBack;
    const end = this.timing.end > 0 ? this.timing.end : performance.now();
    this.route.split!.record(this.version, this.status, error, (end - this.startedAt) * 1000);
  }

  /** The log phase of an ended exchange. */
  runLogHooks(): void {
    const log = this.route.log!;
    for (let i = 0; i < log.length; i++) log[i].log!(this);
  }

  /**
   * Gives up the upstream response from inside one of its own callbacks (a body filter refusing in onBody): the pool
   * is mid-parse then and must not lose its exchange under it, so the connection is cut on the next turn (a
   * response that completes before then is over already, and its connection kept).
   */
  #abandonLater(): void {
    const a = this.attempt;
    if (a === null) return;
    this.attempt = null;
    this.conn = null;
    setImmediate(() => a.end());
  }

  #abandonUpstream(): void {
    const a = this.attempt;
    this.conn = null;
    if (a === null) return;
    this.attempt = null;
    if (a.conn === null && !a.over) this.upstream.pools[a.node].cancel(a);
    a.end();
  }

  #onAborted(): void {
    this.aborted = true;
    if (this.done) return;
    this.done = true;
    this.status = 499; // client closed the request (nginx's convention), for logs and counters
    this.#abandonUpstream();
    this.aggregateRun?.cancel();
    this.#end();
  }
}

// Exchanges that ended inside a cork, logged once the outermost cork has returned (the response bytes have then
// left for the client): building the access-log line no longer delays the response.
let corkDepth = 0;
let loggingEnded = false;
const ended: Exchange[] = [];

/** res.cork, then the log phase of every exchange that ended inside it. */
function corked(res: HttpResponse, fn: () => void): void {
  corkDepth++;
  try {
    res.cork(fn);
  } finally {
    if (--corkDepth === 0 && ended.length > 0 && !loggingEnded) {
      // exchanges ending while these are logged (a hook's cork) join the list and are logged in this loop
      loggingEnded = true;
      try {
        for (let i = 0; i < ended.length; i++) ended[i].runLogHooks();
      } finally {
        // pop, not `length = 0`: that is a generic store through the length accessor (≈450 instructions)
        while (ended.length > 0) ended.pop();
        loggingEnded = false;
      }
    }
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

/** `name` (as sent, any case) equals `lower` (lower case); toLowerCase only for a candidate of the same length. */
function sameName(name: string, lower: string): boolean {
  return name.length === lower.length && (name === lower || name.toLowerCase() === lower);
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

/** A response's header list without the fields the route removes (a copy: the source may be a reused buffer's view). */
function keptHeaders(list: readonly string[], remove: readonly string[] | null): string[] {
  const out: string[] = [];
  for (let i = 0; i < list.length; i += 2) if (remove === null || !remove.includes(list[i].toLowerCase())) out.push(list[i], list[i + 1]);
  return out;
}

function wantsBody(list: readonly RequestBodyTransform[], ctx: PolicyContext): boolean {
  for (let i = 0; i < list.length; i++) if (list[i].wants(ctx)) return true;
  return false;
}

/** The forwarded header block with its framing line (always the last: see handler.ts) saying `length` bytes. */
function withBodyLength(block: string, length: number): string {
  // block ends with "<framing line>\r\n\r\n"
  const end = block.length - 4;
  const start = block.lastIndexOf('\r\n', end - 1) + 2;
  const line = block.slice(start, end);
  const framing = line.startsWith('content-length:') || line.startsWith('transfer-encoding:');
  return (framing ? block.slice(0, start) : block.slice(0, end + 2)) + 'content-length: ' + length + '\r\n\r\n';
}

/** Takes one slot of a shared concurrency cell (compare-exchange, exact across workers); false when full. */
function takeSlot(cell: Int32Array, max: number): boolean {
  for (;;) {
    const n = Atomics.load(cell, 0);
    if (n >= max) return false;
    if (Atomics.compareExchange(cell, 0, n, n + 1) === n) return true;
  }
}

/** Exponential backoff with full jitter: a random time up to base × 2^n, capped (AWS's "full jitter"). */
function backoff(base: number, max: number, n: number): number {
  const ceiling = Math.min(max, base * 2 ** n);
  return Math.floor(Math.random() * (ceiling + 1));
}

import { performance } from 'node:perf_hooks';
import type { HttpResponse, WebSocket as ClientSocket, us_socket_context_t } from 'uWebSockets.js';
import { splitFieldLines } from '../shared/field-lines.js';
import type WebSocket from 'ws';
import { ERRORS, type ErrorCode } from '../errors/codes.js';
import { writeProblem, type ProblemMembers } from '../errors/problem.js';
import { CONTINUE, PENDING, RESPOND, type PolicyContext, type RequestTiming } from '../pipeline/policy.js';
import type { RouteRuntime } from '../worker/runtime.js';
import { requestLineWithQueryParam, requestLineWithoutQueryParam } from '../shared/query.js';
import { clock } from '../shared/clock.js';
import { STATUS_LINES } from '../worker/status-lines.js';
import { ADMIT, type Limiter } from '../policies/rate-limit/limiter.js';
import { nowUs } from '../policies/rate-limit/store-shared.js';
import type { PlanWebSocket } from './compile.js';
import type { ConnectionTable } from './connection-table.js';
import { NOT_FORWARDED, type UpgradeRequest } from './request.js';
import { dial, dialFailure } from './dial.js';
import { ABNORMAL, BAD_GATEWAY, GOING_AWAY, INTERNAL_ERROR, NO_STATUS, POLICY_VIOLATION, TOO_BIG, TRY_AGAIN_LATER, clipReason, sendable } from './close-codes.js';
import { M_ACCEPTED, M_BYTES_C2U, M_BYTES_U2C, M_HANDSHAKE_FAILED, M_MSG_C2U, M_MSG_U2C, M_OPEN, closeCell } from './metrics.js';

/** What a connection needs from its worker (src/websocket/front.ts implements it). */
export interface WsHost {
  readonly viaValue: string;
  readonly proto: string;
  readonly requestIdHeader: string;
  /** an upgrade the gateway answered with an error: the worker's counters and metrics */
  refused(code: ErrorCode, route: RouteRuntime): void;
  /** the client side is upgraded: the connection is open */
  opened(c: WsConnection): void;
  /** both sides are closed: the connection is over */
  finished(c: WsConnection): void;
  /** per worker and route: the consumer message limiter and the connection table */
  limiter(route: RouteRuntime): Limiter | null;
  table(route: RouteRuntime): ConnectionTable | null;
}

// connection states
const ACCESS = 0;
const DIALING = 1;
const OPEN = 2;
const CLOSING = 3;
const DONE = 4;

const BINARY = { binary: true } as const;
const TEXT = { binary: false } as const;
const EMPTY = Buffer.alloc(0);
/** uWS send() results */
const SEND_DROPPED = 2;

/** uWS copies the properties of the user data into an object of its own: the connection travels as one property. */
export interface WsUserData {
  readonly c: WsConnection;
}

/** What the access-log line carries of a connection (read from its slot by src/policies/access-log/line.ts). */
class WsSummary {
  messagesIn = 0;
  messagesOut = 0;
  closeCode = 0;
  closedBy = 'client';
}

/**
 * One WebSocket connection through the gateway, from the upgrade request to the last close frame: the request
 * context the route's access and rewrite hooks see (auth, authorization, rate limit of connection attempts), the
 * upstream handshake (the client's upgrade completes only once the upstream said 101), and then the relay with its
 * limits, backpressure, heartbeat and close-code passing.
 *
 *   client --uWS--> [message: size, rate, consumer rate, upstream backlog bound] --ws--> upstream
 *   client <--uWS-- [send; past backpressureBytes the upstream is paused until uWS drains] <--ws-- upstream
 */
export class WsConnection implements PolicyContext {
  readonly host: WsHost;
  readonly route: RouteRuntime;
  readonly cfg: PlanWebSocket;
  readonly requestId: string;
  readonly path: string;
  readonly hostHeader: string;
  readonly clientIp: string;
  readonly method = 'GET';
  /** a WebSocket route takes no traffic split (refused at compile time) */
  readonly trafficVersion = null;
  /** the 101 has no upstream head for the response phase to read */
  readonly responseLength = -1;
  readonly timing: RequestTiming;
  readonly slots: unknown[];
  readonly summary = new WsSummary();
  readonly #req: UpgradeRequest;
  /** headers the client sent (count), before any the gateway added for the access phase (a token subprotocol) */
  readonly #clientHeaders: number;
  /** protocols offered to the upstream (the client's, less a token entry) */
  readonly #protocols: string[];
  readonly #trusted: boolean;
  readonly #forwardedFor: string;
  #res: HttpResponse | null;
  readonly #context: us_socket_context_t;
  /** "GET target HTTP/1.1\r\n": the form removeUpstreamQueryParam edits */
  #line: string;

  state = ACCESS;
  aborted = false;
  consumerId: string | null = null;
  consumerIndex = -1;
  consumerPlan: string | null = null;
  scopes: readonly string[] | null = null;
  roles: readonly string[] | null = null;
  status = 0;
  errorCode: ErrorCode | null = null;
  upstreamError: string | null = null;
  nodeIndex = -1;
  #phaseIndex = 0;
  #extraUp: string[] | null = null;
  #removeUp: string[] | null = null;
  #extraDown: string[] | null = null;
  #prepared: { status: number; headers: readonly string[]; body: string | undefined; code: ErrorCode | null; detail: string | undefined; members: ProblemMembers | null } | null = null;

  // relay
  client: ClientSocket<WsUserData> | null = null;
  upstream: WebSocket | null = null;
  /** upstream messages that arrived between its 101 and the client's open */
  #early: { data: Buffer; binary: boolean }[] | null = null;
  #tableSlot = -1;
  #upstreamPaused = false;
  #clientClosed = false;
  #upstreamClosed = true;
  /** a close already decided (by the gateway or one side): code and reason for the other side */
  #closeCode = 0;
  #closeReason: Buffer = EMPTY;
  openedAt = 0;
  lastActivity = 0;
  #lastPing = 0;
  #clientPongDue = false;
  #upstreamPongDue = false;
  #tokens = 0;
  #refilledAt = 0;
  bytesIn = 0;
  bytesOut = 0;
  // what has been added to the shared counters so far
  #flushedMsgIn = 0;
  #flushedMsgOut = 0;
  #flushedBytesIn = 0;
  #flushedBytesOut = 0;
  readonly #metrics: BigInt64Array;
  // the message being sent to the client inside uWS's cork: fields and one bound function, not a closure per message
  #outData: Buffer | null = null;
  #outBinary = false;
  #sendResult = 0;
  readonly #sendOut = (): void => {
    this.#sendResult = this.client!.send(this.#outData!, this.#outBinary);
  };

  readonly onAborted = (): void => {
    this.aborted = true;
    this.#res = null;
    if (this.state === DIALING) this.upstream?.terminate();
    if (this.state < OPEN) this.#end();
  };

  constructor(res: HttpResponse, context: us_socket_context_t, host: WsHost, route: RouteRuntime, req: UpgradeRequest, requestId: string, peer: string, trusted: boolean, clientIp: string, t0: number) {
    this.#res = res;
    this.#context = context;
    this.host = host;
    this.route = route;
    this.cfg = route.plan.websocket!;
    this.#req = req;
    this.requestId = requestId;
    this.path = req.path;
    this.hostHeader = req.host;
    this.clientIp = clientIp;
    this.#trusted = trusted;
    this.#forwardedFor = trusted && req.xff !== null ? req.xff + ', ' + peer : peer;
    this.#line = 'GET ' + req.path + (req.query.length > 0 ? '?' + req.query : '') + ' HTTP/1.1\r\n';
    this.#clientHeaders = req.headerCount;
    this.#protocols = req.protocols;
    const prefix = this.cfg.tokenSubprotocol;
    if (prefix !== null) {
      const i = req.protocols.findIndex((p) => p.length > prefix.length && p.toLowerCase().startsWith(prefix));
      if (i >= 0) {
        // The access phase sees the token as the Authorization header a browser cannot send (unless one was sent).
        if (this.header('authorization') === undefined) {
          req.headerNames.push('authorization');
          req.headerValues.push('Bearer ' + req.protocols[i].slice(prefix.length));
          req.headerCount++;
        }
        this.#protocols = req.protocols.filter((_, j) => j !== i);
      }
    }
    const hooks = route.timedHooks;
    this.timing = { start: t0, routed: performance.now(), upstreamStart: 0, connected: 0, upstreamHeaders: 0, end: 0, hooks: hooks === null ? null : route.newHookMarks!(), hookNames: hooks };
    // one slot per policy, and the connection's summary after them for the access log
    this.slots = new Array(route.slotCount + 1).fill(undefined);
    this.slots[route.slotCount] = this.summary;
    this.#metrics = new BigInt64Array(this.cfg.metrics);
  }

  // ------------------------------------------------------------------------------------ PolicyContext (handshake)

  /** the query as received (a hook's removeUpstreamQueryParam changes what is forwarded only) */
  get query(): string {
    return this.#req.query;
  }
  get routeName(): string {
    return this.route.plan.name;
  }
  get upstreamNode(): string | null {
    return this.nodeIndex >= 0 ? this.route.upstream.authorities[this.nodeIndex] : null;
  }

  /** a WebSocket connection's timestamps are taken anyway */
  startTiming(): void {}

  header(name: string): string | undefined {
    const r = this.#req;
    for (let i = 0; i < r.headerCount; i++) if (r.headerNames[i] === name) return r.headerValues[i];
    return undefined;
  }
  headerValues(name: string): string[] {
    const r = this.#req;
    const out: string[] = [];
    for (let i = 0; i < r.headerCount; i++) if (r.headerNames[i] === name) out.push(r.headerValues[i]);
    return out;
  }
  queryParam(name: string): string | null {
    const q = this.query;
    return q ? new URLSearchParams(q).get(name) : null;
  }
  setUpstreamHeader(name: string, value: string): void {
    (this.#extraUp ??= []).push(name.toLowerCase(), value);
  }
  removeUpstreamHeader(name: string): void {
    (this.#removeUp ??= []).push(name.toLowerCase());
  }
  removeUpstreamQueryParam(name: string): void {
    this.#line = requestLineWithoutQueryParam(this.#line, name);
  }
  addUpstreamQueryParam(name: string, value: string): void {
    this.#line = requestLineWithQueryParam(this.#line, encodeURIComponent(name) + '=' + encodeURIComponent(value));
  }
  refresh(): boolean {
    // a background refresh is a cache's, for HTTP responses: a handshake has none
    return false;
  }
  responseHeaders(): readonly string[] {
    return [];
  }
  readonly responseDate = undefined;
  // a handshake is priced as one request, and has no body to hold
  requestCost = -1;
  readonly bodyTransform = false;
  addResponseHeader(name: string, value: string): void {
    (this.#extraDown ??= []).push(name, value);
  }
  addResponseFields(lines: string): void {
    splitFieldLines(lines, (this.#extraDown ??= []));
  }
  responseHeader(_name: string): string | undefined {
    return undefined;
  }
  responseHeaderValues(_name: string): string[] {
    return [];
  }
  removeResponseHeader(_name: string): void {
    // the 101 carries no upstream headers to remove
  }
  respondProblem(code: ErrorCode, detail?: string, headers: readonly string[] = [], members?: ProblemMembers): void {
    this.#prepared = { status: ERRORS[code].status, headers, body: undefined, code, detail, members: members ?? null };
  }
  respond(status: number, headers: readonly string[], body?: string): void {
    this.#prepared = { status, headers, body, code: null, detail: undefined, members: null };
  }
  resume(result: typeof CONTINUE | typeof RESPOND): void {
    if (this.aborted || this.state !== ACCESS) return;
    if (this.timing.hooks !== null && this.#phaseIndex > 0) this.timing.hooks[this.#phaseIndex - 1] = performance.now();
    if (result === RESPOND) this.#sendPrepared();
    else this.run();
  }

  // ------------------------------------------------------------------------------------ handshake

  /** The upstream path (after the route's rewrite or strip), with the client's query. */
  setTarget(path: string): void {
    const q = this.#req.query;
    this.#line = 'GET ' + path + (q.length > 0 ? '?' + q : '') + ' HTTP/1.1\r\n';
  }

  /** The access hooks (from where a PENDING one stopped), the rewrite hooks, the connection limit, then the dial. */
  run(): void {
    const access = this.route.access;
    if (access !== null) {
      while (this.#phaseIndex < access.length) {
        const r = access[this.#phaseIndex++].access!(this);
        if (this.timing.hooks !== null) this.timing.hooks[this.#phaseIndex - 1] = performance.now();
        if (r === PENDING) return;
        if (r === RESPOND) return this.#sendPrepared();
        if (this.aborted) return;
      }
    }
    const rewrite = this.route.rewrite;
    if (rewrite !== null) for (let i = 0; i < rewrite.length; i++) if (rewrite[i].rewrite!(this) === RESPOND) return this.#sendPrepared();
    const cfg = this.cfg;
    if (cfg.maxConnectionsPerConsumer > 0) {
      const slot = this.host.table(this.route)!.acquire(this.#consumerKey(), cfg.maxConnectionsPerConsumer);
      if (slot < 0) return this.refuse('NG_ERR_WS_TOO_MANY_CONNECTIONS', `at most ${cfg.maxConnectionsPerConsumer} open connections per consumer on this route`);
      this.#tableSlot = slot;
    }
    this.#dial();
  }

  #consumerKey(): string {
    return this.consumerId ?? '\u0000ip:' + this.clientIp;
  }

  #dial(): void {
    const u = this.route.upstream;
    const i = u.cluster.pick(-1, 0);
    if (i < 0) return this.refuse('NG_ERR_UPSTREAM_UNAVAILABLE', `upstream "${u.name}" has no node to send to`);
    this.nodeIndex = i;
    u.cluster.begin(i);
    this.state = DIALING;
    this.timing.upstreamStart = performance.now();
    const l = this.#line;
    const up = dial({
      tls: u.urls[i].startsWith('https:'),
      authority: u.authorities[i],
      target: l.slice(4, l.length - 11),
      protocols: this.#protocols,
      headers: this.#upstreamHeaders(),
      maxMessageBytes: this.cfg.maxMessageBytes,
      connectTimeoutMs: this.route.plan.connectTimeoutMs,
    });
    this.upstream = up;
    this.#upstreamClosed = false;
    up.on('open', () => this.#upstreamOpen());
    up.on('unexpected-response', (req, res) => {
      res.resume();
      req.destroy();
      this.#dialFailed('NG_ERR_WS_UPSTREAM_REFUSED', `answered the upgrade with ${res.statusCode}`, `the upstream service answered the upgrade with ${res.statusCode}`);
    });
    up.on('error', (err) => {
      if (this.state === DIALING) {
        const f = dialFailure(err);
        this.#dialFailed(f.code, f.cause, undefined);
      } else if (this.state === OPEN) {
        // ws failed the upstream connection itself (its 'close' then says 1006): tell the client why
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') this.#decide(TOO_BIG, Buffer.from('upstream message too big'));
        else if (code === 'WS_ERR_INVALID_UTF8') this.#decide(1007, Buffer.from('upstream sent invalid UTF-8'));
        else if (code !== undefined && code.startsWith('WS_ERR_')) this.#decide(1002, Buffer.from('upstream protocol error'));
        if (this.#closeCode !== 0) this.summary.closedBy = 'upstream';
      }
    });
    up.on('message', (data: Buffer, isBinary) => this.#fromUpstream(data, isBinary));
    up.on('pong', () => {
      this.#upstreamPongDue = false;
    });
    up.on('close', (code, reason) => this.#upstreamClose(code, reason));
  }

  /** The handshake headers for the upstream: the client's end-to-end ones, the gateway's forwarding ones, the hooks'. */
  #upstreamHeaders(): Record<string, string> {
    const r = this.#req;
    const out: Record<string, string> = Object.create(null);
    const drop = this.#removeUp;
    const named = r.connection === null ? null : r.connection.toLowerCase().split(',').map((t) => t.trim());
    for (let i = 0; i < this.#clientHeaders; i++) {
      const name = r.headerNames[i];
      if (NOT_FORWARDED.has(name) || name.startsWith('proxy-') || name === this.host.requestIdHeader) continue;
      if ((drop !== null && drop.includes(name)) || (named !== null && named.includes(name))) continue;
      const v = r.headerValues[i];
      out[name] = out[name] === undefined ? v : out[name] + (name === 'cookie' ? '; ' : ', ') + v;
    }
    if (this.#trusted) {
      for (let i = 0; i < this.#clientHeaders; i++) {
        const name = r.headerNames[i];
        if (name === 'forwarded' || name === 'x-real-ip') out[name] = r.headerValues[i];
      }
    }
    out['x-forwarded-for'] = this.#forwardedFor;
    out['x-forwarded-proto'] = this.#trusted && r.xfp !== null ? r.xfp : this.host.proto === 'https' ? 'https' : 'http';
    out['x-forwarded-host'] = this.#trusted && r.xfh !== null ? r.xfh : r.host;
    out.via = r.via !== null ? r.via + ', ' + this.host.viaValue : this.host.viaValue;
    out[this.host.requestIdHeader] = this.requestId;
    const mode = this.route.plan.hostHeader;
    if (mode === 'preserve') out.host = r.host;
    else if (mode !== 'upstream') out.host = mode;
    const extra = this.#extraUp;
    if (extra !== null) for (let i = 0; i < extra.length; i += 2) out[extra[i]] = extra[i + 1];
    return out;
  }

  #dialFailed(code: ErrorCode, cause: string, detail: string | undefined): void {
    if (this.state !== DIALING) return;
    const u = this.route.upstream;
    const where = this.upstreamNode ?? '?';
    this.upstreamError = `websocket to ${where} failed (${cause})`;
    u.noteError(this.nodeIndex, code, this.upstreamError);
    Atomics.add(this.#metrics, M_HANDSHAKE_FAILED, 1n);
    this.upstream?.removeAllListeners('message');
    this.upstream?.terminate();
    this.#upstreamClosed = true;
    this.refuse(code, detail);
  }

  /** The upstream said 101: complete the client's upgrade with the subprotocol the upstream chose. */
  #upstreamOpen(): void {
    if (this.state !== DIALING) return;
    this.timing.connected = this.timing.upstreamHeaders = performance.now();
    const res = this.#res;
    if (this.aborted || res === null) {
      this.upstream!.close(GOING_AWAY, 'client went away');
      return;
    }
    this.state = OPEN;
    res.cork(() => {
      this.status = 101;
      const hooks = this.route.response;
      if (hooks !== null) for (let i = 0; i < hooks.length; i++) hooks[i].response!(this);
      res.writeStatus('101 Switching Protocols');
      const extra = this.#extraDown;
      if (extra !== null) for (let i = 0; i < extra.length; i += 2) res.writeHeader(extra[i], extra[i + 1]);
      res.writeHeader(this.host.requestIdHeader, this.requestId);
      // No extensions: compression is off on both legs (the relay passes messages, not frames).
      res.upgrade<WsUserData>({ c: this }, this.#req.key, this.upstream!.protocol, '', this.#context);
    });
    this.#res = null;
  }

  /** Answers the upgrade with an error (problem+json) and ends the connection's story: log, counters. */
  refuse(code: ErrorCode, detail?: string, headers: readonly string[] | null = null, members: ProblemMembers | null = null): void {
    this.errorCode = code;
    this.status = ERRORS[code].status;
    this.slots[this.route.slotCount] = undefined; // no connection to summarise in the log line
    const res = this.#res;
    if (res !== null && !this.aborted) {
      res.cork(() => {
        const hooks = this.route.response;
        if (hooks !== null) for (let i = 0; i < hooks.length; i++) hooks[i].response!(this);
        const extra = this.#extraDown;
        writeProblem(res, code, this.requestId, detail, extra === null ? headers : [...(headers ?? []), ...extra], true, members);
      });
    }
    this.#res = null;
    this.host.refused(code, this.route);
    this.#end();
  }

  #sendPrepared(): void {
    const p = this.#prepared;
    if (p === null) return this.refuse('NG_ERR_GATEWAY_INTERNAL');
    if (p.code !== null) return this.refuse(p.code, p.detail, p.headers, p.members);
    // A hook's own answer (not an error code): written as it is.
    const res = this.#res;
    this.status = p.status;
    if (res !== null && !this.aborted) {
      res.cork(() => {
        res.writeStatus(STATUS_LINES[p.status] ?? `${p.status} Unknown`);
        for (let i = 0; i < p.headers.length; i += 2) res.writeHeader(p.headers[i], p.headers[i + 1]);
        res.writeHeader(this.host.requestIdHeader, this.requestId);
        res.end(p.body ?? '', true);
      });
    }
    this.#res = null;
    this.slots[this.route.slotCount] = undefined;
    this.#end();
  }

  // ------------------------------------------------------------------------------------ relay

  /** uWS open: the client is upgraded. */
  opened(ws: ClientSocket<WsUserData>): void {
    this.client = ws;
    this.openedAt = this.lastActivity = this.#lastPing = this.#refilledAt = clock.now;
    this.#tokens = this.cfg.burst;
    Atomics.add(this.#metrics, M_OPEN, 1n);
    Atomics.add(this.#metrics, M_ACCEPTED, 1n);
    this.host.opened(this);
    if (this.#upstreamClosed) {
      // the upstream closed between its 101 and this open
      this.state = CLOSING;
      const code = this.#closeCode;
      if (sendable(code)) ws.end(code, this.#closeReason);
      else ws.end(BAD_GATEWAY, 'upstream connection lost');
      return;
    }
    const early = this.#early;
    this.#early = null;
    if (early !== null) for (const m of early) if (this.state === OPEN) this.#fromUpstream(m.data, m.binary);
  }

  /** uWS message: the ArrayBuffer lives only during this call, so it is copied before it goes to ws. */
  fromClient(message: ArrayBuffer, isBinary: boolean): void {
    if (this.state !== OPEN) return;
    const n = message.byteLength;
    const cfg = this.cfg;
    if (n > cfg.maxMessageBytes) return this.close(TOO_BIG, `message larger than ${cfg.maxMessageBytes} bytes`);
    if (cfg.messagesPerSecond > 0) {
      const now = clock.now;
      if (now > this.#refilledAt) {
        this.#tokens = Math.min(cfg.burst, this.#tokens + ((now - this.#refilledAt) * cfg.messagesPerSecond) / 1000);
        this.#refilledAt = now;
      }
      if (this.#tokens < 1) return this.close(POLICY_VIOLATION, `more than ${cfg.messagesPerSecond} messages per second`);
      this.#tokens -= 1;
    }
    if (cfg.consumerMessages !== null && this.host.limiter(this.route)!.check(this, nowUs()) !== ADMIT) {
      return this.close(POLICY_VIOLATION, `the consumer sends more than ${cfg.consumerMessages.limit} messages per second`);
    }
    const up = this.upstream!;
    // uWS cannot stop reading a client: what the upstream has not taken yet stays in ws's buffer, up to a bound.
    if (up.bufferedAmount > 2 * cfg.backpressureBytes) return this.close(TRY_AGAIN_LATER, 'the upstream is not keeping up');
    up.send(Buffer.copyBytesFrom(new Uint8Array(message)), isBinary ? BINARY : TEXT);
    this.summary.messagesIn++;
    this.bytesIn += n;
    this.lastActivity = clock.now;
  }

  #fromUpstream(data: Buffer, isBinary: boolean): void {
    if (this.state !== OPEN) return;
    const client = this.client;
    if (client === null) {
      (this.#early ??= []).push({ data, binary: isBinary });
      return;
    }
    this.#outData = data;
    this.#outBinary = isBinary;
    client.cork(this.#sendOut);
    this.#outData = null;
    if (this.#sendResult === SEND_DROPPED) return this.close(TRY_AGAIN_LATER, 'the client is not keeping up');
    this.summary.messagesOut++;
    this.bytesOut += data.length;
    this.lastActivity = clock.now;
    if (!this.#upstreamPaused && client.getBufferedAmount() > this.cfg.backpressureBytes) {
      // Stop reading the upstream until uWS has sent most of what waits for this client (drain below).
      this.#upstreamPaused = true;
      this.upstream!.pause();
    }
  }

  /** uWS drain: the client took some of its backlog. */
  drained(): void {
    if (this.#upstreamPaused && this.state === OPEN && this.client!.getBufferedAmount() < this.cfg.backpressureBytes / 2) {
      this.#upstreamPaused = false;
      this.upstream!.resume();
    }
  }

  pong(): void {
    this.#clientPongDue = false;
  }

  /** The gateway ends the connection: the same code and reason go to both sides. */
  close(code: number, reason: string): void {
    if (this.state !== OPEN) return;
    this.summary.closedBy = 'gateway';
    this.#decide(code, Buffer.from(reason));
    this.state = CLOSING;
    this.upstream?.close(code, this.#closeReason);
    // uWS calls the close handler from inside end(): clientClosed below
    const client = this.client;
    if (client !== null) client.cork(() => client.end(code, this.#closeReason));
  }

  #decide(code: number, reason: Buffer): void {
    if (this.#closeCode !== 0) return;
    this.#closeCode = code;
    this.#closeReason = clipReason(reason);
    this.summary.closeCode = code;
  }

  /** uWS close: the client sent its close frame (code 1005 when it had none) or its socket went away (1006). */
  clientClosed(code: number, message: ArrayBuffer): void {
    this.#clientClosed = true;
    this.client = null;
    Atomics.add(this.#metrics, M_OPEN, -1n);
    if (this.#closeCode === 0) {
      this.summary.closedBy = 'client';
      this.#decide(code, Buffer.copyBytesFrom(new Uint8Array(message)));
    }
    if (this.state === OPEN) {
      this.state = CLOSING;
      const up = this.upstream!;
      if (sendable(code)) up.close(code, this.#closeReason);
      else if (code === NO_STATUS) up.close();
      else up.terminate(); // 1006: the client vanished; so does its upstream connection
    }
    if (this.#upstreamClosed) this.#end();
  }

  #upstreamClose(code: number, reason: Buffer): void {
    if (this.#upstreamClosed) return;
    this.#upstreamClosed = true;
    if (this.state === DIALING) return this.#dialFailed('NG_ERR_UPSTREAM_RESET', 'closed during the handshake', undefined);
    if (this.#upstreamPaused) this.#upstreamPaused = false;
    if (this.state === OPEN) {
      this.summary.closedBy = 'upstream';
      const client = this.client;
      if (client === null) {
        // closed between its 101 and the client's open: the client is told when it opens
        this.#decide(code, reason);
      } else if (this.#closeCode !== 0) {
        // decided already (a protocol error ws saw on the upstream leg)
        this.state = CLOSING;
        client.cork(() => client.end(this.#closeCode, this.#closeReason));
        return;
      } else {
        // 1006 from the upstream (no close frame) becomes 1014 Bad Gateway for the client, which can tell the two apart
        const out = sendable(code) ? code : code === NO_STATUS ? NO_STATUS : BAD_GATEWAY;
        this.#decide(out, out === BAD_GATEWAY ? Buffer.from('upstream connection lost') : reason);
        this.state = CLOSING;
        if (out === NO_STATUS) client.cork(() => client.end());
        else client.cork(() => client.end(out, this.#closeReason));
        return; // clientClosed (called from end) finishes
      }
    }
    if (this.#clientClosed) this.#end();
  }

  /** Once a second: idle timeout, lifetime, heartbeat, and the traffic counters. */
  tick(now: number): void {
    this.flush();
    if (this.state !== OPEN) return;
    const cfg = this.cfg;
    if (cfg.idleTimeoutMs > 0 && now - this.lastActivity >= cfg.idleTimeoutMs) return this.close(GOING_AWAY, 'idle timeout');
    if (cfg.maxLifetimeMs > 0 && now - this.openedAt >= cfg.maxLifetimeMs) return this.close(GOING_AWAY, 'connection lifetime reached');
    if (cfg.pingIntervalMs > 0 && now - this.#lastPing >= cfg.pingIntervalMs) {
      if (this.#upstreamPongDue) {
        // The upstream did not answer the last ping: tell the client, drop the upstream connection.
        this.summary.closedBy = 'gateway';
        this.#decide(INTERNAL_ERROR, Buffer.from('upstream heartbeat timeout'));
        this.state = CLOSING;
        this.upstream!.terminate();
        const client = this.client!;
        client.cork(() => client.end(INTERNAL_ERROR, this.#closeReason));
        return;
      }
      if (this.#clientPongDue) {
        // The client did not answer: nobody to send a close frame to.
        this.summary.closedBy = 'gateway';
        this.#decide(ABNORMAL, Buffer.from('client heartbeat timeout'));
        this.state = CLOSING;
        this.upstream!.close(GOING_AWAY, this.#closeReason);
        this.client!.close();
        return;
      }
      this.#lastPing = now;
      this.#clientPongDue = this.#upstreamPongDue = true;
      const client = this.client!;
      client.cork(() => client.ping());
      this.upstream!.ping();
    }
  }

  /** Adds the traffic since the last flush to the route's shared counters. */
  flush(): void {
    const m = this.#metrics;
    const s = this.summary;
    if (s.messagesIn !== this.#flushedMsgIn) {
      Atomics.add(m, M_MSG_C2U, BigInt(s.messagesIn - this.#flushedMsgIn));
      Atomics.add(m, M_BYTES_C2U, BigInt(this.bytesIn - this.#flushedBytesIn));
      this.#flushedMsgIn = s.messagesIn;
      this.#flushedBytesIn = this.bytesIn;
    }
    if (s.messagesOut !== this.#flushedMsgOut) {
      Atomics.add(m, M_MSG_U2C, BigInt(s.messagesOut - this.#flushedMsgOut));
      Atomics.add(m, M_BYTES_U2C, BigInt(this.bytesOut - this.#flushedBytesOut));
      this.#flushedMsgOut = s.messagesOut;
      this.#flushedBytesOut = this.bytesOut;
    }
  }

  /** The connection is over (refused, aborted, or both sides closed): give back what it held, log it once. */
  #end(): void {
    if (this.state === DONE) return;
    const wasOpen = this.openedAt > 0;
    this.state = DONE;
    if (this.#tableSlot >= 0) {
      this.host.table(this.route)!.release(this.#tableSlot);
      this.#tableSlot = -1;
    }
    if (this.nodeIndex >= 0) this.route.upstream.cluster.finish(this.nodeIndex);
    if (wasOpen) {
      this.flush();
      Atomics.add(this.#metrics, closeCell(this.summary.closeCode), 1n);
    }
    this.timing.end = performance.now();
    if (this.status === 0) this.status = 499;
    const log = this.route.log;
    if (log !== null) for (let i = 0; i < log.length; i++) log[i].log!(this);
    this.host.finished(this);
  }
}

import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import type { PlanNode, PlanUpstream } from '../config/plan.js';
import type { ErrorCode } from '../errors/codes.js';
import type { UpstreamConnection, UpstreamExchange } from './exchange.js';
import { BODY_CHUNKED, BODY_LENGTH, BODY_NONE, HeaderList, parseContentLength } from './h1-parse.js';
import { tlsConnectOptions } from './undici-pool.js';
import { clock } from '../shared/clock.js';
import { LateCheck } from './late-check.js';

/**
 * HTTP/2 to upstream nodes: `protocol: h2` (TLS, ALPN "h2") and `protocol: h2c` (cleartext, prior knowledge), on
 * node:http2 sessions.
 *
 * Why not undici's `allowH2` / H2CClient (7.30): its HTTP/2 client treats a request with a streamed body, or any
 * non-idempotent one, as "busy" while another runs on the connection (client-h2.js `busy()`), so POSTs (every gRPC
 * call) go one at a time per connection, and it does not hand response trailers to a dispatch handler in a way
 * that reaches the client before the end. Here a session takes up to `http2.maxConcurrentStreams` streams of any
 * kind (lowered by the node's SETTINGS_MAX_CONCURRENT_STREAMS), a new session opens only when every open one is
 * full, up to `connections`, and beyond that requests wait in order, up to the connect timeout.
 *
 * Timeouts follow the lean HTTP/1.1 client: no timers per request, the worker's sweep compares deadlines.
 */

/** Connection-specific fields RFC 9113 8.2.2 forbids in HTTP/2 (node:http2 throws on them), and framing. */
const DROP_REQUEST = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'host', 'http2-settings']);
const DROP_RESPONSE = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'date', 'x-request-id']);

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM } = constants;

class H2Session {
  readonly session: ClientHttp2Session;
  /** streams open on it now */
  streams = 0;
  /** the most it may carry: the configured limit, or the node's SETTINGS_MAX_CONCURRENT_STREAMS when lower */
  limit: number;
  /** no new streams: GOAWAY received, an error, or closed by the sweep */
  closing = false;
  /** the TLS/TCP handshake and the node's SETTINGS are done */
  connected = false;
  /** coarse clock when the last stream ended (idle timeout), or the connect deadline while connecting */
  since: number;
  /** why the session failed, for the streams it takes down (a connect failure is NG_ERR_UPSTREAM_CONNECT) */
  failure: string | null = null;

  constructor(session: ClientHttp2Session, limit: number, connectDeadline: number) {
    this.session = session;
    this.limit = limit;
    this.since = connectDeadline;
  }
}

class H2Stream implements UpstreamConnection {
  readonly #pool: H2NodePool;
  readonly #ex: UpstreamExchange;
  readonly #s: H2Session;
  readonly #stream: ClientHttp2Stream;
  /** read deadline (coarse clock): for the head, then between body reads */
  deadline: number;
  #head = false;
  #ended = false;
  #done = false;
  #more = true;
  #chunk: Buffer | null = null;
  #trailers: string[] | null = null;
  #error: (Error & { code?: string }) | null = null;

  constructor(pool: H2NodePool, ex: UpstreamExchange, s: H2Session, headers: OutgoingHttpHeaders) {
    this.#pool = pool;
    this.#ex = ex;
    this.#s = s;
    this.deadline = clock.now + ex.readTimeoutMs;
    const endStream = ex.requestBodyKind === BODY_NONE;
    const stream = (this.#stream = s.session.request(headers, { endStream }));
    stream.on('response', this.#onResponse);
    stream.on('data', this.#onData);
    stream.on('trailers', this.#onTrailers);
    stream.on('end', this.#onEnd);
    stream.on('error', this.#onError);
    stream.on('close', this.#onClose);
    if (!endStream) stream.on('drain', () => ex.onUpstreamDrain());
  }

  writeBody(chunk: Buffer): boolean {
    return this.#done ? true : this.#stream.write(chunk);
  }
  endBody(): void {
    if (!this.#done && !this.#stream.writableEnded) this.#stream.end();
  }
  resume(): void {
    if (!this.#done) this.#stream.resume();
  }
  /** the client went away: RST_STREAM(CANCEL); the session carries on */
  abort(): void {
    if (this.#done) return;
    this.#finish();
    this.#stream.close(NGHTTP2_CANCEL);
  }

  /** the sweep found the deadline passed */
  timeout(): void {
    if (this.#done) return;
    this.#finish();
    this.#stream.close(NGHTTP2_CANCEL);
    this.#ex.onError('NG_ERR_UPSTREAM_TIMEOUT', `${this.#pool.node.authority} did not answer within ${this.#ex.readTimeoutMs} ms`);
  }

  readonly #onResponse = (headers: IncomingHttpHeaders, flags: number): void => {
    if (this.#done) return;
    this.#head = true;
    this.deadline = clock.now + this.#ex.readTimeoutMs;
    const status = Number(headers[':status']);
    const list: string[] = [];
    let length = -1;
    let grpc = false;
    for (const name in headers) {
      if (name.charCodeAt(0) === 58 /* : */ || DROP_RESPONSE.has(name)) continue;
      const v = headers[name]!;
      if (name === 'content-length') {
        length = parseContentLength(String(v));
        continue;
      }
      if (name === 'content-type' && typeof v === 'string' && v.startsWith('application/grpc')) grpc = true;
      if (typeof v === 'string') list.push(name, v);
      else for (let i = 0; i < v.length; i++) list.push(name, v[i]);
    }
    const ex = this.#ex;
    const ended = (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    // A gRPC body ends with trailers, which the listener can only send after a chunked body: no Content-Length.
    // (the listener writes Content-Length itself from `length`, as for the HTTP/1.1 clients)
    const kind = ex.isHeadRequest || status === 204 || status === 304 || ended || length === 0 ? BODY_NONE : length > 0 && !grpc ? BODY_LENGTH : BODY_CHUNKED;
    const total = kind === BODY_LENGTH || ex.isHeadRequest ? length : kind === BODY_NONE ? 0 : -1;
    ex.batch(() => ex.onHead(status, new HeaderList(list), kind, total));
  };

  readonly #write = () => {
    this.#more = this.#ex.onBody(this.#chunk!);
  };

  readonly #onData = (chunk: Buffer): void => {
    if (this.#done) return;
    this.deadline = clock.now + this.#ex.readTimeoutMs;
    this.#chunk = chunk;
    this.#ex.batch(this.#write);
    this.#chunk = null;
    if (!this.#more) this.#stream.pause();
  };

  readonly #onTrailers = (headers: IncomingHttpHeaders): void => {
    const list: string[] = [];
    for (const name in headers) {
      if (name.charCodeAt(0) === 58) continue;
      const v = headers[name]!;
      if (typeof v === 'string') list.push(name, v);
      else for (let i = 0; i < v.length; i++) list.push(name, v[i]);
    }
    this.#trailers = list;
  };

  /**
   * The response body ended; the answer is complete only if the stream then closes without an error code (a
   * RST_STREAM after some DATA also ends the readable side): decided in #onClose.
   */
  readonly #onEnd = (): void => {
    this.#ended = true;
  };

  readonly #onError = (err: Error): void => {
    this.#error = err;
  };

  /** The stream closed: after 'end' this is the normal close; before it, a reset, GOAWAY or a dead session. */
  readonly #onClose = (): void => {
    if (this.#done) return;
    this.#finish();
    const rst = this.#stream.rstCode;
    if (this.#ended && this.#head && (rst === undefined || rst === NGHTTP2_NO_ERROR)) {
      const ex = this.#ex;
      const trailers = this.#trailers;
      ex.batch(() => {
        if (trailers !== null) ex.onTrailers(trailers);
        ex.onEnd();
      });
      return;
    }
    const node = this.#pool.node.authority;
    const s = this.#s;
    const why = s.failure ?? this.#error?.code ?? (rst !== undefined && rst !== 0 ? `RST_STREAM ${rst}` : 'closed');
    // a session that never connected failed its TCP or TLS handshake (or timed out in it)
    const code: ErrorCode = !s.connected ? 'NG_ERR_UPSTREAM_CONNECT' : this.#head ? 'NG_ERR_UPSTREAM_BAD_RESPONSE' : 'NG_ERR_UPSTREAM_RESET';
    const detail = !s.connected ? `connect to ${node} failed (${why})` : rst === NGHTTP2_REFUSED_STREAM ? `${node} refused the stream` : this.#head ? `${node} reset the stream mid-response (${why})` : `${node} reset the stream before answering (${why})`;
    this.#ex.onError(code, detail);
  };

  #finish(): void {
    this.#done = true;
    this.#pool.streamEnded(this.#s, this);
  }
}

export class H2NodePool {
  readonly node: PlanNode;
  readonly #origin: string;
  readonly #scheme: string;
  readonly #maxSessions: number;
  readonly #maxStreams: number;
  readonly #keepAliveMs: number;
  readonly #connectTimeoutMs: number;
  readonly #tls: ReturnType<typeof tlsConnectOptions> | null;
  readonly #sessions: H2Session[] = [];
  readonly #active = new Set<H2Stream>();
  /** requests waiting for a free stream (every session full and `connections` open), oldest first */
  readonly #waiting: { ex: UpstreamExchange; deadline: number }[] = [];
  #retired = false;
  inFlight = 0;
  /** sessions opened over this pool's life (for tests and the admin view) */
  sessionsOpened = 0;

  constructor(node: PlanNode, upstream: PlanUpstream) {
    this.node = node;
    this.#origin = node.url;
    this.#scheme = node.tls ? 'https' : 'http';
    this.#maxSessions = upstream.connections;
    this.#maxStreams = upstream.maxConcurrentStreams;
    this.#keepAliveMs = upstream.keepAliveMs;
    this.#connectTimeoutMs = upstream.connectTimeoutMs;
    this.#tls = node.tls ? tlsConnectOptions(upstream.tls) : null;
  }

  dispatch(ex: UpstreamExchange): void {
    this.inFlight++;
    const s = this.#pick();
    if (s === null) {
      this.#waiting.push({ ex, deadline: clock.now + ex.connectTimeoutMs });
      return;
    }
    this.#start(s, ex);
  }

  /** A session with room for a stream: the first open one that has room, else a new one while under `connections`. */
  #pick(): H2Session | null {
    const list = this.#sessions;
    for (let i = 0; i < list.length; i++) {
      const s = list[i];
      if (!s.closing && s.streams < s.limit && !s.session.destroyed) return s;
    }
    return list.length < this.#maxSessions && !this.#retired ? this.#open() : null;
  }

  #open(): H2Session {
    const session = connect(this.#origin, {
      ...(this.#tls ?? {}),
      // node:http2 refuses streams beyond the peer's limit itself; ours is kept below it by `limit`
      peerMaxConcurrentStreams: this.#maxStreams,
      settings: { enablePush: false },
    });
    const s = new H2Session(session, this.#maxStreams, clock.now + this.#connectTimeoutMs);
    this.sessionsOpened++;
    this.#sessions.push(s);
    session.on('connect', () => {
      s.connected = true;
      s.since = clock.now;
    });
    session.on('remoteSettings', (settings) => {
      const peer = settings.maxConcurrentStreams;
      s.limit = peer !== undefined && peer < this.#maxStreams ? Math.max(peer, 0) : this.#maxStreams;
      this.#drainWaiting();
    });
    session.on('goaway', () => {
      s.closing = true;
    });
    session.on('error', (err: Error & { code?: string }) => {
      s.failure ??= err.code ?? err.message;
      s.closing = true;
    });
    session.on('close', () => {
      s.closing = true;
      const i = this.#sessions.indexOf(s);
      if (i >= 0) this.#sessions.splice(i, 1);
      // a request waiting for room may now get a session of its own
      this.#drainWaiting();
    });
    // an idle session must not keep the worker's event loop alive on its own
    session.unref();
    return s;
  }

  #start(s: H2Session, ex: UpstreamExchange): void {
    const headers = this.#headers(ex);
    let conn: H2Stream;
    try {
      conn = new H2Stream(this, ex, s, headers);
    } catch (err) {
      // node:http2 checks the head as it builds the frame: a field it takes only once sent twice (two Content-Type
      // lines), an invalid value, is the request's fault; a session that just went away is not
      this.inFlight--;
      const code = (err as { code?: string }).code ?? '';
      if (code === 'ERR_INVALID_CHAR' || code.startsWith('ERR_HTTP2_INVALID_HEADER') || code === 'ERR_HTTP2_HEADER_SINGLE_VALUE' || code === 'ERR_HTTP2_INVALID_CONNECTION_HEADERS') {
        ex.onError('NG_ERR_REQUEST_BAD_HEADER', `the request head cannot be sent over HTTP/2 (${code})`);
      } else {
        s.closing = true;
        ex.onError('NG_ERR_UPSTREAM_RESET', `${this.node.authority}: the HTTP/2 session refused a new stream (${code || 'closed'})`);
      }
      return;
    }
    s.streams++;
    if (s.streams === 1) s.session.ref();
    this.#active.add(conn);
    ex.onConnected(conn);
  }

  /** The HTTP/2 request head from the forwarded HTTP/1.1 one: pseudo-headers first, connection fields dropped. */
  #headers(ex: UpstreamExchange): OutgoingHttpHeaders {
    const head = ex.requestHead;
    const eol = head.indexOf('\r\n');
    const line = head.slice(0, eol);
    const sp1 = line.indexOf(' ');
    const sp2 = line.lastIndexOf(' ');
    const out: OutgoingHttpHeaders = { ':method': line.slice(0, sp1), ':path': line.slice(sp1 + 1, sp2), ':scheme': this.#scheme, ':authority': this.node.authority };
    let pos = eol + 2;
    while (pos < head.length) {
      const end = head.indexOf('\r\n', pos);
      if (end === pos || end < 0) break;
      const colon = head.indexOf(':', pos);
      const name = head.slice(pos, colon).toLowerCase();
      const value = head.slice(colon + 1, end).trim();
      pos = end + 2;
      if (name === 'host') out[':authority'] = value;
      else if (!DROP_REQUEST.has(name)) {
        const prev = out[name];
        out[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [String(prev), value];
      }
    }
    // TE is hop-by-hop, but "trailers" is the one value HTTP/2 allows (RFC 9113 8.2.2): gRPC servers require it.
    if (ex.acceptsTrailers) out.te = 'trailers';
    return out;
  }

  streamEnded(s: H2Session, conn: H2Stream): void {
    this.#active.delete(conn);
    this.inFlight--;
    s.streams--;
    if (s.streams === 0) {
      s.since = clock.now;
      if (!s.session.destroyed) s.session.unref();
      if (this.#retired) s.session.close();
    }
    this.#drainWaiting();
  }

  #drainWaiting(): void {
    const w = this.#waiting;
    while (w.length > 0) {
      const s = this.#pick();
      if (s === null) return;
      this.#start(s, w.shift()!.ex);
    }
  }

  cancel(ex: UpstreamExchange): boolean {
    const w = this.#waiting;
    for (let i = 0; i < w.length; i++) {
      if (w[i].ex === ex) {
        w.splice(i, 1);
        this.inFlight--;
        return true;
      }
    }
    return false;
  }

  /**
   * Deadlines as the HTTP/1.1 pool keeps them (H1Pool.sweep): moved back by the time the thread was held
   * (clock.heldMs), and a passed one judged in setImmediate, once this turn's socket events have been read.
   */
  sweep(now: number): void {
    const held = clock.heldMs;
    const w = this.#waiting;
    const list = this.#sessions;
    if (held > 0) for (let i = 0; i < w.length; i++) w[i].deadline += held;
    let late = w.length > 0 && w[0].deadline <= now;
    for (const conn of this.#active) {
      if (held > 0) conn.deadline += held;
      if (conn.deadline <= now) late = true;
    }
    // backwards: a session closed here may leave the list at once
    for (let i = list.length - 1; i >= 0; i--) {
      const s = list[i];
      if (!s.connected) {
        if (held > 0) s.since += held;
        if (s.since <= now) late = true;
      } else if (s.streams === 0 && !s.closing && now - s.since >= this.#keepAliveMs) {
        s.closing = true;
        s.session.close();
      }
    }
    if (late) this.#late.arm(now);
  }

  readonly #late = new LateCheck((now) => {
    for (const conn of this.#active) if (conn.deadline <= now) conn.timeout();
    const w = this.#waiting;
    while (w.length > 0 && w[0].deadline <= now) {
      const { ex } = w.shift()!;
      this.inFlight--;
      ex.onError('NG_ERR_UPSTREAM_TIMEOUT', `no HTTP/2 stream to ${this.node.authority} became free in ${ex.connectTimeoutMs} ms`);
    }
    const list = this.#sessions;
    for (let i = list.length - 1; i >= 0; i--) {
      const s = list[i];
      if (!s.connected && s.since <= now) {
        s.failure ??= `timed out after ${this.#connectTimeoutMs} ms`;
        s.closing = true;
        s.session.destroy();
      }
    }
  });

  close(): void {
    this.#retired = true;
    for (const s of [...this.#sessions]) s.session.destroy();
  }

  /** stop taking requests: idle sessions close now, busy ones once their last stream ends */
  retire(): void {
    this.#retired = true;
    for (const s of this.#sessions) {
      s.closing = true;
      if (s.streams === 0) s.session.close();
    }
  }
}

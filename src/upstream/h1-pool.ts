import { performance } from 'node:perf_hooks';
import { connect, type Socket } from 'node:net';
import type { PlanNode, PlanUpstream } from '../config/plan.js';
import type { UpstreamConnection, UpstreamExchange } from './exchange.js';
import { BODY_CHUNKED, BODY_NONE, BODY_UNTIL_CLOSE } from './h1-parse.js';
import { H1Decoder, H1_BODY, H1_END, H1_HEAD, H1_NEED_MORE } from './h1-decoder.js';
import { clock } from '../shared/clock.js';
import { PipeliningProbe } from './h1-probe.js';
import { LateCheck } from './late-check.js';
import {
  PIPELINING,
  PIPE_OFF,
  PIPE_ON,
  PIPE_PROBING,
  PIPE_WHY_MID_BATCH,
  PIPE_WHY_NOT_YET,
  PIPE_WHY_RECONNECT,
  PIPE_WHY_UNREACHABLE,
  pipeCell,
  type ClusterState,
} from './cluster-state.js';

/**
 * A lean HTTP/1.1 client for plain-HTTP upstream nodes: one pool per node per worker, keep-alive connections.
 * It exists because the general-purpose client costs about as much CPU per request as a whole nginx proxy hop
 * (see docs/performance.md); this one reads into one shared buffer per worker (`onread`), decodes each read with
 * the pure response decoder (h1-decoder.ts: a handful of string scans per head) and hands body slices of the read
 * buffer straight to the response writer.
 *
 * Batched pipelining (upstream `pipelining: auto` or N, off at 1): GET and HEAD requests without a body that arrive
 * in the same event-loop turn share one idle connection, up to N of them, and leave in one write at the end of the
 * turn; their responses come back in one or a few reads. A connection that is already waiting for responses from an
 * earlier turn never gets more, so a slow response can only delay requests that arrived together with it, and those
 * for at most `pipeliningBounds.maxWaitMs`: then they are sent again on connections of their own (holCheck), as they
 * are at once when the answer ahead of them turns out to be a large or close-delimited body. When a connection fails
 * or closes with requests still unanswered behind the current one, those are sent again on a fresh connection (GET
 * and HEAD are safe to repeat). With `auto`, a node gets batches only once it passed the probe (h1-probe.ts), not
 * while its latency average is above `pipeliningBounds.slowNodeMs`, and no longer after it broke a batch.
 *
 * Timeouts are not timers: a per-worker sweep (clock.ts) compares deadlines, so a request costs no timer objects.
 */

/** Every socket of a worker reads into this buffer; a chunk must be consumed (copied) within the callback. */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** The connection's own state; where a response stands is the decoder's. */
const enum State {
  Connecting,
  Idle,
  /** a request is assigned: its response is being waited for or read */
  Active,
  Closed,
}

export class H1Connection implements UpstreamConnection {
  readonly socket: Socket;
  readonly pool: H1Pool;
  state = State.Connecting;
  exchange: UpstreamExchange | null = null;
  /** completed at least one response: a failure before any byte may be a stale keep-alive */
  reused = false;
  deadline = 0;
  idleSince = 0;
  responseBytes = 0;
  requestDone = false;
  readonly decoder = new H1Decoder();
  /** pipelined requests written after `exchange`, in order: their responses follow its response */
  readonly behind: UpstreamExchange[] = [];
  /** exchanges on this connection (current + behind): the pool's in-flight count moves with it */
  assigned = 0;
  /** request heads of this turn's batch, written by flushBatches() */
  pendingOut = '';
  /** a response of the current batch was answered and more are due: a close now breaks the batch */
  midBatch = false;
  /** performance.now() when the current batch was written, whether holCheck watches it, and whether it is listed */
  batchSentAt = 0;
  watched = false;
  listed = false;
  #nread = 0;
  #pos = 0;
  readonly #parseCorked = () => this.#parse(this.#nread);
  readonly #completeAtClose = () => this.#complete(false);

  constructor(pool: H1Pool) {
    this.pool = pool;
    this.socket = connect({
      host: pool.node.host,
      port: pool.node.port,
      noDelay: true,
      onread: { buffer: READ_BUFFER, callback: (n: number) => this.#onRead(n) },
    });
    this.socket.on('connect', () => this.#onConnect());
    this.socket.on('error', (err: NodeJS.ErrnoException) => this.#onSocketError(err.code ?? 'socket error'));
    this.socket.on('close', () => this.#onSocketClose());
    this.socket.on('drain', () => this.exchange?.onUpstreamDrain());
  }

  // ------------------------------------------------------------------------------ request side

  assign(ex: UpstreamExchange, batch: boolean): void {
    this.exchange = ex;
    this.assigned++;
    this.state = State.Active;
    this.responseBytes = 0;
    this.requestDone = false;
    this.midBatch = false;
    this.decoder.begin(ex.isHeadRequest);
    this.deadline = clock.now + ex.readTimeoutMs;
    if (batch) {
      this.pendingOut = ex.requestHead;
      scheduleFlush(this);
    } else this.socket.write(ex.requestHead, 'utf8');
    ex.onConnected(this);
  }

  /** Adds a request to this turn's batch (see the class comment); it has no body, so it is complete at once. */
  follow(ex: UpstreamExchange): void {
    this.behind.push(ex);
    this.assigned++;
    this.pendingOut += ex.requestHead;
    ex.onConnected(this);
  }

  flush(): void {
    const out = this.pendingOut;
    this.pendingOut = '';
    if (this.pool.batching === this) this.pool.batching = null;
    if (out.length > 0 && this.state !== State.Closed) {
      this.socket.write(out, 'utf8');
      if (this.behind.length > 0 && this.pool.maxWaitMs > 0) watchBatch(this);
    }
  }

  /**
   * The requests behind the current one are sent again on connections of their own (non-pipelined); their answers
   * here are read and dropped. `slow`: they waited too long, so the node gets no batches for a while.
   */
  hedge(slow: boolean): void {
    const behind = this.behind;
    for (let i = 0; i < behind.length; i++) {
      const ex = behind[i];
      if (ex instanceof Discard) continue;
      behind[i] = new Discard(ex);
      this.pool.resent++;
      this.pool.dispatch(ex, false, true);
    }
    if (slow) this.pool.pauseBatches();
  }

  writeBody(chunk: Buffer): boolean {
    if (this.state === State.Closed || chunk.length === 0) return true;
    if (this.exchange?.requestBodyKind !== BODY_CHUNKED) return this.socket.write(chunk);
    const socket = this.socket;
    socket.cork();
    socket.write(chunk.length.toString(16) + '\r\n', 'latin1');
    socket.write(chunk);
    const ok = socket.write('\r\n', 'latin1');
    socket.uncork();
    return ok;
  }

  endBody(): void {
    if (this.state === State.Closed || this.requestDone) return;
    this.requestDone = true;
    if (this.exchange?.requestBodyKind === BODY_CHUNKED) this.socket.write('0\r\n\r\n', 'latin1');
  }

  resume(): void {
    if (this.state !== State.Closed) this.socket.resume();
  }

  abort(ex?: UpstreamExchange): void {
    // A pipelined request whose client went away: its response still arrives and must be read, so it is read
    // into a sink instead of dropping the connection under the requests around it.
    if (ex !== undefined && this.requestDone) {
      const i = this.behind.indexOf(ex);
      if (i >= 0) {
        this.behind[i] = new Discard(ex);
        return;
      }
      if (ex === this.exchange && this.behind.length > 0) {
        this.exchange = new Discard(ex);
        return;
      }
    }
    this.exchange = null;
    this.#destroy();
  }

  // ------------------------------------------------------------------------------ response side

  #onConnect(): void {
    if (this.state !== State.Connecting) return;
    this.pool.onConnected(this);
  }

  #onRead(n: number): boolean {
    if (this.state === State.Idle || this.exchange === null) {
      // Bytes nobody asked for: the stream is out of sync, never reuse it.
      this.#destroy();
      return false;
    }
    this.deadline = clock.now + this.exchange.readTimeoutMs;
    this.#nread = n;
    this.#pos = 0;
    this.#paused = false;
    // One cork per response: pipelined responses in one read go to different clients.
    do this.exchange.batch(this.#parseCorked);
    while (this.#pos < n && this.exchange !== null);
    // A response held back by its client's backpressure must not hold back the requests pipelined behind it.
    if (this.#paused && this.behind.length > 0) this.hedge(false);
    // Bytes after the last response (nobody asked for them) never get here: #complete destroys the connection.
    return !this.#paused;
  }

  #paused = false;

  /** Decodes from #pos for the current exchange, until its response ends or the read is used up. */
  #parse(n: number): void {
    const buf = READ_BUFFER;
    const ex = this.exchange!;
    const dec = this.decoder;
    const from = this.#pos;
    let pos = from;
    for (;;) {
      const ev = dec.execute(buf, pos, n);
      pos = dec.pos;
      if (ev === H1_BODY) {
        const chunk = buf.subarray(dec.bodyStart, dec.bodyEnd);
        // Chunked data is collected and handed over once per read (#flushChunks): uWS 20.30 can break its own
        // chunk framing when one cork holds a small write followed by one larger than its cork buffer under
        // backpressure.
        if (dec.head.bodyKind === BODY_CHUNKED) this.#chunks.push(chunk);
        else if (!ex.onBody(chunk)) this.#paused = true;
      } else if (ev === H1_HEAD) {
        const head = dec.head;
        ex.onHead(head.status, head, head.bodyKind, head.contentLength);
        if (this.behind.length > 0 && (head.contentLength > LARGE_BODY_BYTES || head.bodyKind === BODY_UNTIL_CLOSE)) this.hedge(false);
      } else if (ev === H1_END) {
        this.responseBytes += pos - from;
        this.#pos = pos;
        return this.#complete(pos < n);
      } else if (ev === H1_NEED_MORE) break;
      else {
        this.#pos = n;
        return this.#protocolError(dec.error);
      }
      if (this.exchange !== ex) break; // aborted from a callback, or handed to a Discard
    }
    if (this.exchange === ex) {
      this.responseBytes += pos - from;
      this.#flushChunks();
    }
    this.#pos = pos;
  }

  #protocolError(why: string): void {
    if (this.midBatch) {
      this.midBatch = false;
      this.pool.batchBroken();
    }
    const ex = this.exchange;
    this.exchange = null;
    this.#destroy();
    ex?.onError('NG_ERR_UPSTREAM_BAD_RESPONSE', why);
  }

  /** Body slices of one read, joined into one write (see ChunkData in #parse). */
  readonly #chunks: Buffer[] = [];

  #flushChunks(): void {
    const chunks = this.#chunks;
    if (chunks.length === 0) return;
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    while (chunks.length > 0) chunks.pop();
    if (this.exchange !== null && !this.exchange.onBody(body)) this.#paused = true;
  }

  /** The current response ended; `extraBytes`: more bytes follow in this read (the next pipelined response). */
  #complete(extraBytes: boolean): void {
    this.#flushChunks();
    const ex = this.exchange!;
    this.exchange = null;
    this.assigned--;
    this.pool.inFlight--;
    // Backpressure asked for by the finished response is its own (its rest is queued at the client side): the
    // connection reads again, for the next response or once idle, or it would stall with the socket paused.
    this.#paused = false;
    // Extra bytes are the next pipelined response, or (with none behind) bytes nobody asked for.
    const reusable = (this.behind.length > 0 || !extraBytes) && !this.decoder.head.close && this.requestDone;
    if (reusable && this.behind.length > 0) {
      // The next pipelined response is the current one now.
      const next = this.behind.shift()!;
      this.exchange = next;
      this.midBatch = true;
      this.responseBytes = 0;
      this.decoder.begin(next.isHeadRequest);
      this.deadline = clock.now + next.readTimeoutMs;
      ex.onEnd();
      this.reused = true;
      return;
    }
    this.midBatch = false;
    ex.onEnd();
    this.reused = true;
    if (reusable) {
      this.state = State.Idle;
      this.pool.release(this);
    } else this.#destroy(); // requests still behind are sent again from there
    batchAnswered(this);
  }

  #onSocketError(code: string): void {
    this.#fail(code);
  }

  #onSocketClose(): void {
    if (this.state === State.Active && this.decoder.endsAtClose && this.exchange !== null) {
      this.decoder.head.close = true;
      // the end of a close-delimited body is a write to the client: corked like the others
      this.exchange.batch(this.#completeAtClose);
      return;
    }
    this.#fail('connection closed');
  }

  #fail(code: string): void {
    if (this.midBatch) {
      this.midBatch = false;
      this.pool.batchBroken();
    }
    const wasConnecting = this.state === State.Connecting;
    const ex = this.exchange;
    this.exchange = null;
    this.#destroy();
    if (ex === null) return;
    if (wasConnecting) return ex.onError('NG_ERR_UPSTREAM_CONNECT', `connect to ${this.pool.node.authority} failed (${code})`);
    if (this.responseBytes === 0 && this.reused && ex.replayable && this.pool.retryStale(ex)) return;
    if (this.responseBytes === 0) ex.onError('NG_ERR_UPSTREAM_RESET', `${this.pool.node.authority} closed the connection (${code})`);
    else ex.onError('NG_ERR_UPSTREAM_BAD_RESPONSE', `${this.pool.node.authority} closed the connection mid-response (${code})`);
  }

  /** Called by the sweep when a deadline passed. */
  timeout(): void {
    const ex = this.exchange;
    const connecting = this.state === State.Connecting;
    this.exchange = null;
    this.#destroy();
    if (!ex) return;
    if (connecting) ex.onError('NG_ERR_UPSTREAM_CONNECT', `connect to ${this.pool.node.authority} timed out`);
    else ex.onError('NG_ERR_UPSTREAM_TIMEOUT', `${this.pool.node.authority} did not answer within ${ex.readTimeoutMs} ms`);
  }

  #destroy(): void {
    if (this.state === State.Closed) return;
    const wasIdle = this.state === State.Idle;
    this.state = State.Closed;
    this.socket.destroy();
    this.pool.forget(this, wasIdle);
    // Requests pipelined behind the one that ended here got no answer: send them again on fresh connections.
    if (this.behind.length > 0) {
      const replay = this.behind.splice(0);
      for (const ex of replay) if (!(ex instanceof Discard)) this.pool.dispatch(ex, true);
    }
  }

  get busy(): boolean {
    return this.state !== State.Idle && this.state !== State.Closed;
  }

  get connecting(): boolean {
    return this.state === State.Connecting;
  }
}

/** A response body above this many bytes is streaming for a while: nothing should wait behind it. */
const LARGE_BODY_BYTES = 64 * 1024;

/**
 * Batches with requests still unanswered behind the head, checked `maxWaitMs` after they were written by one timer
 * per worker (armed only while there are such batches: a pool without pipelining never arms it). The check runs in
 * setImmediate, after the poll phase of that turn, so answers that were already there have been read first: an event
 * loop that was merely busy does not count as a slow node.
 *
 * The timer goes as soon as the last watched batch is answered (batchAnswered). Under light load a burst's batches
 * are answered in well under a millisecond, and a timer left to fire 20 ms later woke the idle worker between
 * bursts for nothing: 29-50 fires a second at 2,000 req/s in bursts of 50, none now (docs/performance.md, "Light
 * load in bursts").
 */
const watchedBatches: H1Connection[] = [];
/** how many connections of watchedBatches are `watched` (the rest wait to be dropped from the list) */
let watchedCount = 0;
let holTimer: NodeJS.Timeout | null = null;

function watchBatch(conn: H1Connection): void {
  conn.batchSentAt = performance.now();
  if (conn.watched) return;
  conn.watched = true;
  watchedCount++;
  if (!conn.listed) {
    conn.listed = true;
    watchedBatches.push(conn);
  }
  if (holTimer === null) armHol(conn.pool.maxWaitMs);
}

function unwatch(conn: H1Connection): void {
  if (!conn.watched) return;
  conn.watched = false;
  watchedCount--;
}

/** The connection's batch has no request left behind the head (answered, or the connection closed). */
function batchAnswered(conn: H1Connection): void {
  if (!conn.watched) return;
  unwatch(conn);
  if (watchedCount > 0) return;
  if (holTimer !== null) {
    clearTimeout(holTimer);
    holTimer = null;
  }
  for (let i = 0; i < watchedBatches.length; i++) watchedBatches[i].listed = false;
  watchedBatches.length = 0;
}

function armHol(ms: number): void {
  holTimer = setTimeout(holTick, ms);
  holTimer.unref();
}

function holTick(): void {
  // a batch written before the check runs arms a timer of its own; the check then keeps one, for the batch due first
  holTimer = null;
  setImmediate(holCheck);
}

function holCheck(): void {
  const now = performance.now();
  let next = Infinity;
  let keep = 0;
  for (let i = 0; i < watchedBatches.length; i++) {
    const conn = watchedBatches[i];
    if (!conn.watched || conn.behind.length === 0 || !conn.busy) {
      unwatch(conn);
      conn.listed = false;
      continue;
    }
    const due = conn.batchSentAt + conn.pool.maxWaitMs;
    if (now >= due) {
      unwatch(conn);
      conn.listed = false;
      conn.hedge(true);
      continue;
    }
    watchedBatches[keep++] = conn;
    if (due < next) next = due;
  }
  watchedBatches.length = keep;
  // one timer, for the batch due first (one written since the tick may have armed its own, for later)
  if (holTimer !== null) {
    clearTimeout(holTimer);
    holTimer = null;
  }
  if (keep > 0) armHol(Math.max(1, Math.ceil(next - now)));
}

/** Connections with a batch to write at the end of this event-loop turn (after every ready socket was read). */
const batches: H1Connection[] = [];
let flushScheduled = false;

function scheduleFlush(conn: H1Connection): void {
  batches.push(conn);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushBatches);
  }
}

function flushBatches(): void {
  flushScheduled = false;
  for (let i = 0; i < batches.length; i++) batches[i].flush();
  while (batches.length > 0) batches.pop();
}

/** Stands in for a pipelined request whose client went away: its response is read and dropped. */
class Discard implements UpstreamExchange {
  readonly requestHead = '';
  readonly isHeadRequest: boolean;
  readonly requestBodyKind = BODY_NONE;
  readonly replayable = false;
  readonly pipelinable = true;
  readonly acceptsTrailers = false;
  readonly readTimeoutMs: number;
  readonly connectTimeoutMs: number;
  constructor(of: UpstreamExchange) {
    this.isHeadRequest = of.isHeadRequest;
    this.readTimeoutMs = of.readTimeoutMs;
    this.connectTimeoutMs = of.connectTimeoutMs;
  }
  onConnected(): void {}
  onHead(): void {}
  onBody(): boolean {
    return true;
  }
  onTrailers(): void {}
  onEnd(): void {}
  onUpstreamDrain(): void {}
  onError(): void {}
  batch(fn: () => void): void {
    fn();
  }
}

/** What a pool takes from its upstream's plan. */
export type PoolSettings = Pick<
  PlanUpstream,
  'connections' | 'keepAliveMs' | 'pipelining' | 'pipeliningProbe' | 'pipeliningMaxWaitMs' | 'pipeliningSlowNodeMs' | 'probePath' | 'connectTimeoutMs' | 'readTimeoutMs'
>;

/** Waiting requests form a FIFO; a cancelled one is skipped when it reaches the front. */
interface Waiter {
  ex: UpstreamExchange;
  deadline: number;
  /** sent alone when its turn comes (a retry after a failed connection, or a request moved out of a batch) */
  fresh: boolean;
}

/** an off node is probed again when all its connections were lost, but not sooner than this after its last probe */
const REPROBE_OFF_MS = 30_000;
/** a node that could not be reached for the probe: the next probe waits this long */
const PROBE_RETRY_MS = 1_000;
/**
 * After requests had to be sent again because they waited too long behind others: no batches for this long, so a
 * slow spell sends few requests twice before the latency average (slowNodeMs) catches up with it. Short, and not
 * growing: measured with origin and gateway sharing one core, a 1 s pause doubling up to 30 s turned pipelining off
 * for most of a 5 s run after a handful of answers that waited for the CPU (16-33k req/s against 43-50k).
 */
const HOL_PAUSE_MS = 250;
/** the probe's answers must come within this (or the upstream's readTimeoutMs when shorter) */
const PROBE_TIMEOUT_MS = 5_000;

export class H1Pool {
  readonly node: PlanNode;
  readonly max: number;
  readonly keepAliveMs: number;
  /** most requests one connection takes in one batch (1: no pipelining) */
  readonly pipelining: number;
  /** `pipelining: auto`: batches only after the node passed the probe */
  readonly probing: boolean;
  readonly probePath: string;
  readonly probeTimeoutMs: number;
  /** head-of-line bounds (pipeliningBounds): ms behind others before a request is sent again; node latency limit, µs */
  readonly maxWaitMs: number;
  readonly slowNodeUs: number;
  /** PIPE_ON, PIPE_OFF or PIPE_PROBING, and why (PIPE_WHY_*): shown per node by GET /upstreams */
  pipeState = PIPE_PROBING;
  pipeWhy = PIPE_WHY_NOT_YET;
  /** requests sent again on a connection of their own because of the head-of-line bounds */
  resent = 0;
  /** this pool may form batches now: pipelining > 1 and the node is on (not the slow-node check, see #fastNode) */
  #batchOk: boolean;
  #probe: PipeliningProbe | null = null;
  /** clock.now before which no probe starts */
  #probeNotBefore = 0;
  /** the sweep is closing idle connections itself: losing them all says nothing new about the node */
  #expiring = false;
  #pausedUntil = 0;
  #judgedAt = -1;
  #fast = true;
  #state: ClusterState | null = null;
  #index = 0;
  #latencyAvgUs: Float64Array | null = null;
  readonly idle: H1Connection[] = [];
  readonly all = new Set<H1Connection>();
  readonly waiting: Waiter[] = [];
  #waitHead = 0;
  /** requests currently assigned or waiting: the least-connections balancer reads it */
  inFlight = 0;
  /** a newer plan no longer uses this pool (Runtime.retire): connections close as their request ends */
  retired = false;
  /** the connection taking this turn's batch of pipelined requests, until flushBatches() writes it */
  batching: H1Connection | null = null;

  constructor(node: PlanNode, u: PoolSettings) {
    this.node = node;
    this.max = u.connections;
    this.keepAliveMs = u.keepAliveMs;
    this.pipelining = u.pipelining;
    this.probing = u.pipelining > 1 && u.pipeliningProbe;
    this.probePath = u.probePath;
    this.probeTimeoutMs = Math.min(PROBE_TIMEOUT_MS, u.readTimeoutMs) + u.connectTimeoutMs;
    this.maxWaitMs = u.pipelining > 1 ? u.pipeliningMaxWaitMs : 0;
    this.slowNodeUs = u.pipeliningSlowNodeMs * 1000;
    // An explicit N is trusted without a probe; 1 is off.
    if (!this.probing) this.pipeState = u.pipelining > 1 ? PIPE_ON : PIPE_OFF;
    this.#batchOk = this.pipelining > 1 && this.pipeState === PIPE_ON;
  }

  /** The pool serves with these settings as they are (a reload that changed none of them keeps the pool). */
  sameSettings(u: PoolSettings): boolean {
    return (
      this.max === u.connections &&
      this.keepAliveMs === u.keepAliveMs &&
      this.pipelining === u.pipelining &&
      this.probing === (u.pipelining > 1 && u.pipeliningProbe) &&
      this.probePath === u.probePath &&
      this.maxWaitMs === (u.pipelining > 1 ? u.pipeliningMaxWaitMs : 0) &&
      this.slowNodeUs === u.pipeliningSlowNodeMs * 1000
    );
  }

  /** Where the node's state is: its shared cells (pipelining state, for the admin API) and its latency average. */
  bind(state: ClusterState, index: number, latencyAvgUs: Float64Array | null): void {
    this.#state = state;
    this.#index = index;
    this.#latencyAvgUs = latencyAvgUs;
    if (this.probing) state.set(index, PIPELINING, pipeCell(this.pipeState, this.pipeWhy));
  }

  #setPipe(state: number, why: number): void {
    this.pipeState = state;
    this.pipeWhy = why;
    this.#batchOk = this.pipelining > 1 && state === PIPE_ON;
    this.#state?.set(this.#index, PIPELINING, pipeCell(state, why));
  }

  #maybeProbe(): void {
    if (this.#probe !== null || clock.now < this.#probeNotBefore || this.retired) return;
    this.#probe = new PipeliningProbe(this.node, this.probePath, this.probeTimeoutMs, (state, why) => {
      this.#probe = null;
      if (this.retired) return;
      if (state === PIPE_OFF) this.#probeNotBefore = clock.now + REPROBE_OFF_MS;
      else if (why === PIPE_WHY_UNREACHABLE) this.#probeNotBefore = clock.now + PROBE_RETRY_MS;
      this.#setPipe(state, why);
    });
  }

  /** A connection closed in the middle of a batch, after answering part of it: no more batches until a new probe. */
  batchBroken(): void {
    if (!this.probing || this.pipeState !== PIPE_ON) return;
    this.#probeNotBefore = clock.now + REPROBE_OFF_MS;
    this.#setPipe(PIPE_OFF, PIPE_WHY_MID_BATCH);
  }

  pauseBatches(): void {
    this.#pausedUntil = clock.now + HOL_PAUSE_MS;
    this.#judgedAt = -1;
  }

  /**
   * Not paused and not slow: the node's latency average (UpstreamCluster.latencyAvgUs) is within slowNodeMs.
   * Judged at most once per clock tick (25 ms).
   */
  #fastNode(): boolean {
    const now = clock.now;
    if (now === this.#judgedAt) return this.#fast;
    this.#judgedAt = now;
    const avg = this.#latencyAvgUs;
    return (this.#fast = now >= this.#pausedUntil && (avg === null || avg[this.#index] <= this.slowNodeUs));
  }

  /** `fresh`: on a new connection (a reused one just failed it); `alone`: not in a batch. */
  dispatch(ex: UpstreamExchange, fresh = false, alone = false): void {
    this.inFlight++;
    if (!fresh && !alone && this.#batchOk && ex.pipelinable && this.#fastNode()) {
      const b = this.batching;
      if (b !== null && b.assigned < this.pipelining) return b.follow(ex); // forget() clears a closed one
      if (this.idle.length > 0) {
        const conn = this.idle.pop()!;
        this.batching = conn;
        return conn.assign(ex, true);
      }
    } else if (!fresh && this.idle.length > 0) {
      this.idle.pop()!.assign(ex, false);
      return;
    }
    if (this.all.size < this.max) {
      this.#open(ex);
      return;
    }
    this.waiting.push({ ex, deadline: clock.now + ex.connectTimeoutMs, fresh: fresh || alone });
  }

  #open(ex: UpstreamExchange): void {
    if (this.pipeState === PIPE_PROBING && this.probing) this.#maybeProbe();
    const conn = new H1Connection(this);
    conn.exchange = ex;
    conn.assigned = 1;
    conn.deadline = clock.now + ex.connectTimeoutMs;
    this.all.add(conn);
  }

  /** Removes a request that has not been given a connection yet (client went away). Returns true if found. */
  cancel(ex: UpstreamExchange): boolean {
    // Still connecting for it: the connection is opened for this request alone, so it goes too.
    for (const conn of this.all) {
      if (conn.connecting && conn.exchange === ex) {
        conn.abort();
        return true;
      }
    }
    for (let i = this.#waitHead; i < this.waiting.length; i++) {
      if (this.waiting[i].ex === ex) {
        this.waiting.splice(i, 1);
        this.inFlight--;
        return true;
      }
    }
    return false;
  }

  onConnected(conn: H1Connection): void {
    if (this.pipeState === PIPE_PROBING && this.probing) this.#maybeProbe();
    const ex = conn.exchange!;
    conn.assigned = 0;
    conn.assign(ex, false);
  }

  retryStale(ex: UpstreamExchange): boolean {
    this.dispatch(ex, true);
    return true;
  }

  /** The connection finished its last request (inFlight already counted it off). */
  release(conn: H1Connection): void {
    const next = this.#nextWaiter();
    if (next !== null) {
      if (!this.#batchOk || next.fresh || !next.ex.pipelinable || !this.#fastNode()) return conn.assign(next.ex, false);
      // Waiting requests that may share a connection leave together, in one write at the end of this turn.
      this.batching = conn;
      conn.assign(next.ex, true);
      while (conn.assigned < this.pipelining && this.#waitHead < this.waiting.length) {
        const w = this.waiting[this.#waitHead];
        if (w.fresh || !w.ex.pipelinable) break;
        conn.follow(this.#nextWaiter()!.ex);
      }
      return;
    }
    conn.idleSince = clock.now;
    this.idle.push(conn);
    if (this.retired) conn.abort();
  }

  forget(conn: H1Connection, wasIdle: boolean): void {
    if (!this.all.delete(conn)) return;
    if (this.batching === conn) this.batching = null;
    if (wasIdle) {
      const i = this.idle.indexOf(conn);
      if (i >= 0) this.idle.splice(i, 1);
    }
    this.inFlight -= conn.assigned;
    conn.assigned = 0;
    // Every connection is gone, and not because the sweep closed idle ones: the node may have restarted as something
    // else, so what the probe said is stale.
    if (this.all.size === 0 && this.probing && !this.#expiring && clock.now >= this.#probeNotBefore && this.pipeState !== PIPE_PROBING) this.#setPipe(PIPE_PROBING, PIPE_WHY_RECONNECT);
    // A slot opened: a waiting request gets a new connection.
    const next = this.#nextWaiter();
    if (next !== null) this.#open(next.ex);
  }

  #nextWaiter(): Waiter | null {
    if (this.#waitHead >= this.waiting.length) return null;
    const w = this.waiting[this.#waitHead];
    this.waiting[this.#waitHead++] = undefined as unknown as Waiter;
    if (this.#waitHead > 1024 && this.#waitHead * 2 > this.waiting.length) {
      this.waiting.splice(0, this.#waitHead);
      this.#waitHead = 0;
    }
    if (this.#waitHead === this.waiting.length) {
      this.waiting.length = 0;
      this.#waitHead = 0;
    }
    return w;
  }

  /**
   * Deadlines: connects, responses, queued requests, idle keep-alive connections. A deadline that has passed is
   * judged in setImmediate, after the poll phase of this turn: the tick runs before the turn reads its sockets, so
   * after the thread was held (a long GC pause, a CPU-heavy request, a stopped or starved VM) a connection that
   * connected, or an answer that arrived, while it was held would otherwise time out with its event still unread.
   * That made a 504 of every request in flight and ejected a healthy node (test/integration/paused-gateway-timeouts).
   * For the same reason every deadline moves back by the time the thread was held (clock.heldMs): a request that
   * was still in the write batch when the thread stopped had not even reached the upstream.
   */
  sweep(now: number): void {
    const held = clock.heldMs;
    let late = false;
    for (const conn of this.all) {
      if (conn.busy) {
        if (held > 0) conn.deadline += held;
        if (conn.exchange !== null && now > conn.deadline) late = true;
      } else if (now - conn.idleSince > this.keepAliveMs) {
        this.#expiring = true;
        conn.abort();
        this.#expiring = false;
      }
    }
    if (held > 0) for (let i = this.#waitHead; i < this.waiting.length; i++) this.waiting[i].deadline += held;
    if (this.#waitHead < this.waiting.length && now > this.waiting[this.#waitHead].deadline) late = true;
    if (late) this.#late.arm(now);
  }

  /** The second look at the deadlines the sweep saw pass, once this turn's socket events have been read. */
  readonly #late = new LateCheck((now) => {
    for (const conn of this.all) {
      if (conn.busy && conn.exchange !== null && now > conn.deadline) conn.timeout();
    }
    while (this.#waitHead < this.waiting.length && now > this.waiting[this.#waitHead].deadline) {
      const w = this.#nextWaiter()!;
      this.inFlight--;
      w.ex.onError('NG_ERR_UPSTREAM_TIMEOUT', `no connection to ${this.node.authority} became free in ${w.ex.connectTimeoutMs} ms`);
    }
  });

  close(): void {
    this.#probe?.cancel();
    this.#probe = null;
    for (const conn of [...this.all]) conn.abort();
  }

  /** Graceful close after a reload: idle connections go now, busy ones when their request ends (release). */
  retire(): void {
    this.retired = true;
    this.#probe?.cancel();
    this.#probe = null;
    for (const conn of [...this.idle]) conn.abort();
  }
}

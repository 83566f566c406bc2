import { connect, type Socket } from 'node:net';
import type { Histogram } from 'hdr-histogram-js';
import { encodeHistogram, newHistogram } from './hist.js';
import { ResponseReader, type ResponseSink } from './h1-reader.js';
import { Ticker } from './ticker.js';
import { buildRequests, emptyErrors, type LoadErrors, type LoadJob, type LoadResult } from './load-types.js';

/**
 * The fixed-rate, open-loop generator (the wrk2 method, on node:net).
 *
 * Request i is due at t0 + i / rate, whatever happened to the requests before it. It is sent on the first idle
 * connection; when none is idle it waits in a queue, and that wait is part of its latency: every request is timed
 * from its *scheduled* send time to the last byte of its response. A slow response therefore shows up in the
 * latency of every request scheduled behind it, instead of silently lowering the offered rate (coordinated
 * omission, which a closed-loop tool such as autocannon's --rate suffers: it just sends later).
 *
 * Three histograms (µs): latency (scheduled -> response end, the headline), service (write -> response end, what a
 * closed-loop tool would report) and send lag (scheduled -> write: generator lateness plus queueing for a connection).
 *
 * Idle connections are used in FIFO order so that every connection carries traffic (with 1,000 connections at a
 * low rate a LIFO stack would keep reusing a handful of them).
 */

const hr = (): number => Number(process.hrtime.bigint());
const toUs = (ns: number): number => (ns < 1000 ? 1 : Math.round(ns / 1000));

class Conn implements ResponseSink {
  readonly id: number;
  readonly gen: OpenLoop;
  socket: Socket | null = null;
  readonly reader: ResponseReader;
  connected = false;
  busy = false;
  scheduled = 0;
  sent = 0;
  /** set while the connection sits in the idle ring, so a dead connection is skipped */
  idle = false;

  constructor(id: number, gen: OpenLoop) {
    this.id = id;
    this.gen = gen;
    this.reader = new ResponseReader(this);
  }

  onResponse(status: number, bodyBytes: number, close: boolean): void {
    this.gen.completed(this, status, bodyBytes, close);
  }
}

export class OpenLoop {
  readonly job: LoadJob;
  readonly #requests: Buffer[];
  readonly #interval: number;
  readonly #total: number;
  readonly #conns: Conn[] = [];
  /** ring of idle connections (FIFO) */
  readonly #ring: Conn[];
  #ringHead = 0;
  #ringLen = 0;
  #t0 = 0;
  /** index of the next request to become due, and of the oldest due request not yet sent */
  #nextDue = 0;
  #nextSend = 0;
  #running = false;
  #stopping = false;
  readonly latency: Histogram = newHistogram();
  readonly service: Histogram = newHistogram();
  readonly sendLag: Histogram = newHistogram();
  readonly errors: LoadErrors = emptyErrors();
  readonly statuses: Record<string, number> = Object.create(null);
  responses = 0;
  sent = 0;
  /** connections the server closed with Connection: close after a response, and that were reopened */
  reconnects = 0;
  non2xx = 0;
  bytesIn = 0;
  readonly #ticker = new Ticker();
  #finish: (() => void) | null = null;
  #lastResponse = 0;

  constructor(job: LoadJob) {
    this.job = job;
    this.#requests = buildRequests(job);
    this.#interval = 1e9 / job.rate;
    this.#total = Math.max(1, Math.round((job.rate * job.durationMs) / 1000));
    this.#ring = new Array(job.connections);
  }

  async run(progress: (responses: number, elapsedMs: number) => void): Promise<LoadResult> {
    const job = this.job;
    await this.#ticker.open();
    for (let i = 0; i < job.connections; i++) this.#conns.push(new Conn(i, this));
    await this.#connectAll();
    const cpu0 = process.cpuUsage();
    this.#running = true;
    // Start a little in the future so the first requests are not already late.
    this.#t0 = hr() + 2e6;
    // The ticker wakes us at the request rate, at most every 200 µs: each wake costs ~40 µs of CPU on the reference
    // machine (futex sleep + cross-thread wake), so above 5,000 req/s several requests share a tick.
    this.#ticker.start(this.#t0, Math.max(this.#interval, 200_000));
    const done = new Promise<void>((resolve) => (this.#finish = resolve));
    void this.#ticker.run(() => this.#pump());
    const started = Date.now();
    const watchdog = setInterval(() => {
      this.#checkTimeouts();
      this.#pump();
      progress(this.responses, Date.now() - started);
    }, 250);
    // The schedule ends at durationMs; in-flight and queued requests get until the drain deadline.
    const drainMs = Math.min(job.timeoutMs, 2000);
    const hardStop = setTimeout(() => this.#end(), job.durationMs + 2 + drainMs);
    await done;
    clearTimeout(hardStop);
    clearInterval(watchdog);
    const endNs = hr();
    await this.#ticker.stop();
    const cpu = process.cpuUsage(cpu0);

    // Requests never answered count as errors, and go into the latency histogram with the time they had waited
    // so far (a lower bound): an overloaded target must not look fast by not answering.
    for (const c of this.#conns) {
      if (c.busy) {
        c.busy = false;
        this.errors.unfinished++;
        this.latency.recordValue(toUs(endNs - c.scheduled));
      }
      c.socket?.destroy();
    }
    for (let i = this.#nextSend; i < this.#nextDue; i++) {
      this.errors.unfinished++;
      this.latency.recordValue(toUs(endNs - (this.#t0 + i * this.#interval)));
    }
    this.errors.unfinished += this.#total - this.#nextDue;
    return {
      kind: 'fixed',
      responses: this.responses,
      sent: this.sent,
      scheduled: this.#total,
      elapsedMs: job.durationMs,
      // Achieved rate: responses over the schedule, or until the last response when a backlog drained after it.
      rps: (this.responses * 1000) / Math.max(job.durationMs, (this.#lastResponse - this.#t0) / 1e6),
      statuses: { ...this.statuses },
      non2xx: this.non2xx,
      errors: this.errors,
      latency: encodeHistogram(this.latency),
      service: encodeHistogram(this.service),
      sendLag: encodeHistogram(this.sendLag),
      bytesIn: this.bytesIn,
      reconnects: this.reconnects,
      generatorCpuPct: ((cpu.user + cpu.system) / 1000 / job.durationMs) * 100,
    };
  }

  #connectAll(): Promise<void> {
    return new Promise((resolve, reject) => {
      let pending = this.#conns.length;
      let failed = 0;
      const deadline = setTimeout(() => reject(new Error(`could not open ${pending} of ${this.#conns.length} connections in 10 s`)), 10_000);
      for (const c of this.#conns) {
        this.#open(c, (ok) => {
          if (!ok) failed++;
          if (--pending === 0) {
            clearTimeout(deadline);
            if (failed === this.#conns.length) reject(new Error(`cannot connect to ${this.job.host}:${this.job.port}`));
            else resolve();
          }
        });
      }
    });
  }

  #open(c: Conn, first?: (ok: boolean) => void): void {
    const socket = connect({ host: this.job.host, port: this.job.port, noDelay: true });
    c.socket = socket;
    c.reader.reset();
    let settled = false;
    socket.on('connect', () => {
      c.connected = true;
      this.#release(c);
      if (!settled) { settled = true; first?.(true); }
    });
    socket.on('data', (buf: Buffer) => {
      this.bytesIn += buf.length;
      c.reader.feed(buf);
      if (c.reader.broken) {
        this.errors.parse++;
        this.#drop(c, socket);
      }
    });
    socket.on('error', () => {
      if (!c.connected && !settled) this.errors.connect++;
    });
    socket.on('close', () => {
      if (c.socket !== socket) return;
      if (!settled) { settled = true; first?.(false); }
      this.#drop(c, socket);
    });
  }

  /**
   * The connection is gone: its request (if any) failed; it reconnects while the phase runs, at once after an
   * orderly close, 10 ms later after a failure (so a refusing target is not hammered in a tight loop).
   */
  #drop(c: Conn, socket: Socket, orderly = false): void {
    if (c.socket !== socket) return;
    // Not connected any more before the reader finishes a read-until-close body, so the completion cannot hand
    // this connection a new request.
    c.connected = false;
    c.idle = false;
    c.reader.end();
    if (c.busy) {
      c.busy = false;
      this.errors.reset++;
    }
    c.socket = null;
    socket.destroy();
    // Reconnect while requests remain to be sent (the schedule, or a backlog draining after it).
    if (this.#running && (!this.#stopping || this.#nextSend < this.#total)) {
      if (orderly) this.#open(c);
      else setTimeout(() => { if (this.#running && c.socket === null) this.#open(c); }, 10);
    }
    this.#maybeFinish();
  }

  #release(c: Conn): void {
    c.busy = false;
    if (!c.connected || c.idle) return;
    c.idle = true;
    this.#ring[(this.#ringHead + this.#ringLen) % this.#ring.length] = c;
    this.#ringLen++;
  }

  #takeIdle(): Conn | null {
    while (this.#ringLen > 0) {
      const c = this.#ring[this.#ringHead];
      this.#ringHead = (this.#ringHead + 1) % this.#ring.length;
      this.#ringLen--;
      if (c.idle && c.connected) {
        c.idle = false;
        return c;
      }
      c.idle = false;
    }
    return null;
  }

  /** Makes due requests and sends as many as there are idle connections. */
  #pump(): void {
    if (!this.#running) return;
    const now = hr();
    if (!this.#stopping) {
      const due = Math.min(this.#total, Math.floor((now - this.#t0) / this.#interval) + 1);
      if (due > this.#nextDue) this.#nextDue = due;
      if (this.#nextDue >= this.#total) this.#stopping = true;
    }
    while (this.#nextSend < this.#nextDue) {
      const c = this.#takeIdle();
      if (c === null) break;
      const i = this.#nextSend++;
      c.busy = true;
      c.scheduled = this.#t0 + i * this.#interval;
      c.sent = now;
      c.reader.headRequest = this.job.method === 'HEAD';
      this.sent++;
      c.socket!.write(this.#requests[i % this.#requests.length]);
    }
    this.#maybeFinish();
  }

  completed(c: Conn, status: number, bodyBytes: number, close: boolean): void {
    if (!c.busy) {
      // A response nobody asked for (the server spoke first): the connection is out of step; drop it.
      this.errors.parse++;
      if (c.socket) this.#drop(c, c.socket);
      return;
    }
    const now = hr();
    this.#lastResponse = now;
    this.responses++;
    this.latency.recordValue(toUs(now - c.scheduled));
    this.service.recordValue(toUs(now - c.sent));
    this.sendLag.recordValue(toUs(Math.max(0, c.sent - c.scheduled)));
    this.statuses[status] = (this.statuses[status] ?? 0) + 1;
    if (status < 200 || status > 299) this.non2xx++;
    else if (this.job.expectBodyBytes !== null && bodyBytes !== this.job.expectBodyBytes) this.errors.mismatch++;
    if (close && c.socket) {
      // The server closes this connection after this response, as any client would, open a new one (not an error).
      this.reconnects++;
      c.busy = false;
      this.#drop(c, c.socket, true);
    } else this.#release(c);
    this.#pump();
  }

  #checkTimeouts(): void {
    const now = hr();
    const limit = now - this.job.timeoutMs * 1e6;
    for (const c of this.#conns) {
      if (c.busy && c.sent < limit && c.socket) {
        this.errors.timeout++;
        this.latency.recordValue(toUs(now - c.scheduled));
        c.busy = false;
        this.#drop(c, c.socket);
      }
    }
  }

  #maybeFinish(): void {
    if (!this.#stopping || this.#nextSend < this.#total) return;
    for (const c of this.#conns) if (c.busy) return;
    this.#end();
  }

  #end(): void {
    if (!this.#running) return;
    this.#running = false;
    this.#finish?.();
  }
}

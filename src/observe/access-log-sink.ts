import pino from 'pino';
import type { AccessLogDestinationConfig } from './schema.js';
import { BatchPoster } from './batch-poster.js';
import { countStat } from './thread-stats.js';
import { W_LOGS_DROPPED, W_LOGS_WRITTEN } from './metrics-layout.js';

/**
 * Access-log destinations of this thread: one sink per destination, created on first use and kept across config
 * reloads (a reload with the same destination keeps the same file handle). Lines arrive as finished JSON text
 * (src/policies/access-log/line.ts builds them) and leave in batches, like nginx's `access_log ... buffer= flush=`:
 * stdout and files collect lines in memory and hand them to sonic-boom (pino's destination, so SIGUSR2 rotation keeps
 * working) in one write when the next line would not fit in BATCH_BYTES or `flushMs` after the first line of a
 * batch, whichever comes first. Every worker appends whole batches of whole lines to the same file: O_APPEND keeps
 * them from interleaving. An HTTP endpoint gets NDJSON POSTs through a bounded queue that drops and counts when full.
 *
 * Why batches and not a write per line or per event-loop turn: each write is a syscall (and, to stdout, a threadpool
 * round trip: a futex wake and a completion callback on the loop), which cost more than building the line; under load
 * a batch carries about a hundred lines, under light load the timer fires a few times a second.
 */
export interface AccessLogSink {
  /** one line of ASCII text (line.ts escapes the rest), ending in "\n" */
  write(line: string): void;
  reopen(): void;
  flush(): Promise<void>;
}

const sinks = new Map<string, AccessLogSink>();

/** a batch leaves when it holds this much (sonic-boom's maxWrite is raised to take it in one write) */
const BATCH_BYTES = 64 * 1024;
/** stdout and file destinations: a line waits at most this long (the http destination's default is its own) */
export const FILE_FLUSH_MS = 100;

/** The sink of a destination (one per thread and destination). */
export function accessLogSink(dest: AccessLogDestinationConfig): AccessLogSink {
  const key = JSON.stringify(dest);
  let sink = sinks.get(key);
  if (sink === undefined) {
    sink = open(dest);
    sinks.set(key, sink);
  }
  return sink;
}

function open(dest: AccessLogDestinationConfig): AccessLogSink {
  if (dest.type === 'http') {
    const poster = new BatchPoster<string>(
      { url: dest.url!, batchSize: dest.batchSize, flushMs: dest.flushMs ?? 1000, queueLimit: dest.queueLimit, timeoutMs: dest.timeoutMs, headers: dest.headers },
      'application/x-ndjson',
      (lines) => lines.join(''),
      (n) => countStat(W_LOGS_WRITTEN, n),
      (n) => countStat(W_LOGS_DROPPED, n),
    );
    return { write: (line) => void poster.push(line), reopen() {}, flush: () => poster.close() };
  }
  return new BatchedFile(dest);
}

class BatchedFile implements AccessLogSink {
  readonly #boom: ReturnType<typeof pino.destination>;
  readonly #file: boolean;
  readonly #flushMs: number;
  // Each line is copied into the batch's buffer as it comes (latin1: the lines are ASCII, one byte per character),
  // and the buffer is handed to sonic-boom as it is when full (buffer mode: no conversion). Joining lines into one
  // string and encoding it on the way out cost more (native-bench/profile.sh, standard set): the batch's tree of
  // concatenations (some 10,000 nodes for 100 lines) was copied by every scavenge while it grew, then walked node
  // by node, cold, to flatten it. A line copied at once is flattened while its nodes are still in cache.
  #buf: Buffer | null = null;
  /**
   * The last batch's buffer, when sonic-boom let go of it: a file is written synchronously, and a batch written
   * whole is held nowhere after the write returns. Reused, so that a busy log does not allocate a 64 KiB buffer
   * outside the heap per batch (about 24 MB a second at 35,000 lines).
   */
  #spare: Buffer | null = null;
  #len = 0;
  #timer: NodeJS.Timeout | null = null;
  readonly #onTimer = (): void => {
    this.#timer = null;
    this.#send();
  };

  constructor(dest: AccessLogDestinationConfig) {
    this.#file = dest.type === 'file';
    this.#flushMs = dest.flushMs ?? FILE_FLUSH_MS;
    // maxWrite above a batch: a batch leaves whole in one write.
    // A file is written synchronously, from the worker itself, as nginx writes its buffered access log: a 64 KiB
    // write() into the page cache takes tens of µs, where handing it to the threadpool costs two thread wake-ups and
    // a completion callback per batch (measured: native-bench/ab.sh, access-log row). stdout stays asynchronous: a
    // pipe whose reader stalls must not stall the worker.
    const options = { dest: this.#file ? dest.path! : 1, mkdir: this.#file, minLength: 0, maxWrite: BATCH_BYTES * 4, contentMode: 'buffer' as const };
    let boom: ReturnType<typeof pino.destination> | null = null;
    if (this.#file) {
      try {
        boom = pino.destination({ ...options, sync: true });
      } catch {
        // cannot be opened now (a missing directory that cannot be made, no permission): the asynchronous
        // destination reports it as an error and keeps trying on reopen, and every lost batch is counted
        boom = null;
      }
    }
    this.#boom = boom ?? pino.destination({ ...options, sync: false });
    // a full disk or a closed pipe must not take the worker down: the batch is lost, the next one tries again
    this.#boom.on('error', () => countStat(W_LOGS_DROPPED, 1));
  }

  write(line: string): void {
    countStat(W_LOGS_WRITTEN, 1);
    let buf = this.#buf;
    if (buf !== null && line.length > buf.length - this.#len) {
      this.#send();
      buf = null;
    }
    if (buf === null) {
      // a line longer than a batch leaves alone, in a buffer of its own
      if (line.length > BATCH_BYTES) return this.#out(Buffer.from(line, 'latin1'));
      // not from Node's shared pool (that is for small buffers); the spare if the last batch left one, else a new
      // one, since sonic-boom may hold a batch it could not write at once
      buf = this.#buf = this.#spare ?? Buffer.allocUnsafeSlow(BATCH_BYTES);
      this.#spare = null;
      this.#len = 0;
      if (this.#timer === null) {
        this.#timer = setTimeout(this.#onTimer, this.#flushMs);
        this.#timer.unref();
      }
    }
    this.#len += buf.write(line, this.#len, 'latin1');
  }

  #send(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    const buf = this.#buf;
    if (buf === null) return;
    const len = this.#len;
    this.#buf = null;
    this.#len = 0;
    if (len > 0) this.#out(buf.subarray(0, len));
    // written whole and synchronously: sonic-boom holds no part of it (its queue is empty), so it can be filled again
    const boom = this.#boom as unknown as { _writing: boolean; _len: number; sync: boolean };
    if (boom.sync && !boom._writing && boom._len === 0) this.#spare = buf;
  }

  #out(bytes: Buffer): void {
    try {
      this.#boom.write(bytes as unknown as string);
    } catch {
      countStat(W_LOGS_DROPPED, 1);
    }
  }

  reopen(): void {
    this.#send();
    if (this.#file) this.#boom.reopen();
  }

  flush(): Promise<void> {
    this.#send();
    // sonic-boom emits 'drain' when its queue is written out (async mode, minLength 0); wait for it while a write is
    // in flight or bytes are queued (also before the file is open). Its flushSync would reorder: it writes what is
    // queued while the write in flight has not completed.
    const boom = this.#boom as unknown as { _writing: boolean; _len: number; once(e: string, f: () => void): void; off(e: string, f: () => void): void };
    if (!boom._writing && boom._len === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        boom.off('drain', done);
        boom.off('error', done);
        resolve();
      };
      boom.once('drain', done);
      boom.once('error', done);
    });
  }
}

/** Log rotation: every file destination of this thread reopens its path (the control plane relays SIGUSR2). */
export function reopenAccessLogs(): void {
  for (const s of sinks.values()) s.reopen();
}

/** Before the thread exits: write out what is buffered. */
export async function flushAccessLogs(): Promise<void> {
  await Promise.all([...sinks.values()].map((s) => s.flush().catch(() => {})));
}

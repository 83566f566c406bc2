import pino, { type Logger } from 'pino';
import type { AccessLogDestinationConfig } from './schema.js';
import { BatchPoster } from './batch-poster.js';
import { LOG_FORMAT } from './log-format.js';
import { countStat } from './thread-stats.js';
import { W_LOGS_DROPPED, W_LOGS_WRITTEN } from './metrics-layout.js';

/**
 * Access-log destinations of this thread: one pino logger per destination, created on first use and kept across
 * config reloads (a reload with the same destination keeps the same file handle). Lines are formatted by pino on the
 * worker after the response has been sent, and written asynchronously: stdout and files through sonic-boom with
 * `sync: false` (every worker appends whole lines to the same file, O_APPEND keeps them from interleaving), an HTTP
 * endpoint through a bounded batch queue (NDJSON POSTs) that drops and counts when full.
 */
interface Sink {
  readonly logger: Logger;
  reopen(): void;
  flush(): Promise<void>;
}

const sinks = new Map<string, Sink>();

/** sonic-boom writes when this much is buffered, else at the end of the event-loop turn */
const BATCH_BYTES = 8 * 1024;

// the process-wide line format (log-format.ts); no pid/hostname on each access line
const PINO_OPTIONS: pino.LoggerOptions = { ...LOG_FORMAT, base: null };

/** The logger for a destination (one per thread and destination). */
export function accessLogger(dest: AccessLogDestinationConfig): Logger {
  const key = JSON.stringify(dest);
  let sink = sinks.get(key);
  if (sink === undefined) {
    sink = open(dest);
    sinks.set(key, sink);
  }
  return sink.logger;
}

function open(dest: AccessLogDestinationConfig): Sink {
  if (dest.type === 'http') {
    const poster = new BatchPoster<string>(
      { url: dest.url!, batchSize: dest.batchSize, flushMs: dest.flushMs, queueLimit: dest.queueLimit, timeoutMs: dest.timeoutMs, headers: dest.headers },
      'application/x-ndjson',
      (lines) => lines.join(''),
      (n) => countStat(W_LOGS_WRITTEN, n),
      (n) => countStat(W_LOGS_DROPPED, n),
    );
    const stream = { write: (line: string) => void poster.push(line) };
    return { logger: pino(PINO_OPTIONS, stream), reopen() {}, flush: () => poster.close() };
  }
  // Lines collect in sonic-boom's buffer (minLength) and leave in one write per event-loop turn (the setImmediate
  // below), not one write per line: under load a turn answers dozens of requests. A line waits at most one turn.
  const boom = pino.destination({ dest: dest.type === 'file' ? dest.path! : 1, sync: false, mkdir: dest.type === 'file', minLength: BATCH_BYTES });
  // a full disk or a closed pipe must not take the worker down: the line is lost, the next one tries again
  boom.on('error', () => countStat(W_LOGS_DROPPED, 1));
  let flushing = false;
  const flushTurn = () => {
    flushing = false;
    try {
      boom.flush();
    } catch {
      /* nothing buffered, or the fd is gone */
    }
  };
  const stream = {
    write(line: string): void {
      boom.write(line);
      if (!flushing) {
        flushing = true;
        setImmediate(flushTurn);
      }
    },
  };
  return {
    logger: pino(PINO_OPTIONS, stream),
    reopen: () => {
      if (dest.type === 'file') boom.reopen();
    },
    flush: () =>
      new Promise<void>((resolve) => {
        try {
          boom.flushSync();
        } catch {
          /* nothing buffered, or the fd is gone */
        }
        resolve();
      }),
  };
}

/** Log rotation: every file destination of this thread reopens its path (the control plane relays SIGUSR2). */
export function reopenAccessLogs(): void {
  for (const s of sinks.values()) s.reopen();
}

/** Before the thread exits: write out what is buffered. */
export async function flushAccessLogs(): Promise<void> {
  await Promise.all([...sinks.values()].map((s) => s.flush().catch(() => {})));
}

/** Counts a line handed to a destination (stdout and file; the HTTP sink counts on delivery). */
export function countWritten(dest: AccessLogDestinationConfig): void {
  if (dest.type !== 'http') countStat(W_LOGS_WRITTEN, 1);
}

import pino, { type DestinationStream, type Logger, type LoggerOptions } from 'pino';

/**
 * The one line format of everything the gateway logs: control-plane logs, the audit trail and access logs share a
 * stream (stdout by default), so they share `time` as ISO 8601 UTC ("2026-11-22T04:30:19.102Z") and `level` as a
 * label ("info"), not pino's defaults of epoch milliseconds and level numbers. A log shipper then needs one parser.
 *
 * The timestamp is cached per millisecond: access-log lines come in bursts under load, and one Date +
 * toISOString per line is the most expensive part of the header pino writes; within one millisecond the text is the
 * same.
 */
let lastMs = -1;
let lastStamp = '';

/** pino `timestamp` function: `,"time":"<ISO 8601 UTC>"`, rebuilt at most once per millisecond. */
export function isoTime(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastStamp = `,"time":"${new Date(now).toISOString()}"`;
  }
  return lastStamp;
}

/** The options every logger of the process is made with; spread them first, then add a logger's own. */
export const LOG_FORMAT: Pick<LoggerOptions, 'timestamp' | 'formatters'> = Object.freeze({
  timestamp: isoTime,
  formatters: Object.freeze({ level: (label: string) => ({ level: label }) }),
});

/** A logger in the gateway's line format (`nanogate start` makes its log with this). */
export function createLogger(options: LoggerOptions = {}, stream?: DestinationStream): Logger {
  const opts = { ...LOG_FORMAT, ...options };
  return stream === undefined ? pino(opts) : pino(opts, stream);
}

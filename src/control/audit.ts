import { createHash } from 'node:crypto';
import pino, { type Logger } from 'pino';
import { redactUrl } from '../config/secrets.js';
import { LOG_FORMAT } from '../observe/log-format.js';

/**
 * The admin audit log: one JSON line per change made to a running gateway (config apply, rollback, reload, drain,
 * undrain, disable, enable), whoever made it: the admin API, a config file change or SIGHUP.
 *
 *   {"level":30,"time":"2025-01-01T12:00:00.000Z","audit":true,"who":"token:3f9a1c2b4d5e6f70","from":"127.0.0.1",
 *    "action":"route.disable","target":"checkout","result":"ok","version":7,"msg":"admin change"}
 *
 * `who` is a fingerprint of the bearer token (the first 64 bits of its SHA-256), never the token: it tells two
 * tokens apart after a rotation without giving anything away. Without a configured token it is "anonymous";
 * changes not made through the API say where they came from ("file-watch", "SIGHUP").
 * `error` never quotes a credential of the config (src/config/secrets.ts).
 * `result` is "ok", "refused" (bad input or an invalid config; the old state stays), "failed" (the gateway could
 * not carry it out) or "unauthorized" (a change attempted without a valid token).
 *
 * Entries are written synchronously: they are rare, and an entry must be on disk before the API answers.
 * "stderr" (the default) follows the gateway's log level; a file gets every entry whatever the level.
 */
export interface AuditEntry {
  who: string;
  from?: string;
  action: string;
  target?: string;
  result: 'ok' | 'refused' | 'failed' | 'unauthorized';
  version?: number;
  fromVersion?: number;
  error?: string;
  /** route.traffic: the weights set, in percent by version */
  weights?: Record<string, number>;
}

export function tokenFingerprint(token: string): string {
  return 'token:' + createHash('sha256').update(token).digest('hex').slice(0, 16);
}

export class AuditLog {
  readonly destination: string;
  readonly #logger: Logger;
  readonly #file: ReturnType<typeof pino.destination> | null;

  constructor(destination: string, gatewayLog: Logger) {
    this.destination = destination;
    const toStderr = destination === 'stderr';
    this.#file = toStderr ? null : pino.destination({ dest: destination, sync: true, mkdir: true });
    this.#logger = pino(
      // On stderr the gateway's log level applies (silent in tests); a file gets every entry.
      { ...LOG_FORMAT, level: toStderr ? gatewayLog.level : 'info', base: { audit: true } },
      this.#file ?? pino.destination({ dest: 2, sync: true }),
    );
  }

  write(entry: AuditEntry): void {
    const clean: Record<string, unknown> = {};
    // The gateway scrubs credentials of the configs out of `error` (src/config/secrets.ts); a URL password in any
    // text (a target named after a URL, a message quoting one) is taken out here too.
    for (const [k, v] of Object.entries(entry)) if (v !== undefined) clean[k] = typeof v === 'string' ? redactUrl(v) : v;
    if (entry.result === 'ok') this.#logger.info(clean, 'admin change');
    else this.#logger.warn(clean, 'admin change not made');
  }

  close(): void {
    this.#file?.end();
  }
}

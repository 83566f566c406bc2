import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Gateway } from '../../src/control/gateway.js';

export interface AdminGateway {
  gateway: Gateway;
  port: number;
  url: string;
  adminUrl: string;
  dir: string;
  configFile: string;
  /** writes the config file in place (truncate + write) */
  write(yaml: string): void;
  /** writes a temporary file and renames it over the config file, as most editors do */
  writeAtomic(yaml: string): void;
  stop(): Promise<void>;
}

/**
 * Starts a real gateway from a complete config (the yaml sets listen, admin and the rest itself, unlike
 * startGateway), in a fresh temp directory that also holds whatever the test writes there (audit log).
 * `{{dir}}` in the yaml is replaced by that directory.
 */
export async function startAdminGateway(yaml: string, opts: { workers?: number } = {}): Promise<AdminGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'nanogate-admin-'));
  const configFile = join(dir, 'gateway.yaml');
  const fill = (y: string) => y.replaceAll('{{dir}}', dir);
  writeFileSync(configFile, fill(yaml));
  const gateway = new Gateway({ configFile, workers: opts.workers ?? 1, logger: pino({ level: process.env.NANOGATE_TEST_LOG ?? 'silent' }) });
  try {
    await gateway.start();
  } catch (err) {
    await gateway.stop().catch(() => {});
    throw err;
  }
  let n = 0;
  return {
    gateway,
    port: gateway.port,
    url: `http://127.0.0.1:${gateway.port}`,
    adminUrl: `http://127.0.0.1:${gateway.admin!.port}`,
    dir,
    configFile,
    write: (y) => writeFileSync(configFile, fill(y)),
    writeAtomic: (y) => {
      const tmp = join(dir, `.gateway.yaml.${++n}.tmp`);
      writeFileSync(tmp, fill(y));
      renameSync(tmp, configFile);
    },
    stop: () => gateway.stop(),
  };
}

export interface AdminReply {
  status: number;
  headers: Headers;
  body: any;
}

/** One admin API call; `token` null sends no Authorization header. */
export async function admin(
  base: string,
  method: string,
  path: string,
  opts: { token?: string | null; body?: string; contentType?: string } = {},
): Promise<AdminReply> {
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.contentType) headers['content-type'] = opts.contentType;
  const res = await fetch(base + path, { method, headers, body: opts.body });
  const text = await res.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, headers: res.headers, body };
}

/** Polls `check` every 25 ms until it returns true or `ms` pass. */
export async function eventually(check: () => boolean | Promise<boolean>, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return check();
}

import { readFileSync } from 'node:fs';
import { UsageError } from './args.js';

/**
 * The admin API as `nanogate diff`, `apply` and `dump` talk to it: the URL from --admin, NANOGATE_ADMIN_URL or
 * http://127.0.0.1:9901; the bearer token from --token-file or NANOGATE_ADMIN_TOKEN (a file wins: it keeps the
 * token out of the process list and the shell history).
 */

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:9901';

/** The admin API did not answer, or answered with a refusal that is not about the config: exit 4. */
export class AdminUnavailable extends Error {
  override readonly name = 'AdminUnavailable';
}

export interface AdminTarget {
  base: string;
  token: string | null;
}

export function adminTarget(values: { admin?: string; 'token-file'?: string }, env: NodeJS.ProcessEnv): AdminTarget {
  const given = values.admin ?? env.NANOGATE_ADMIN_URL ?? DEFAULT_ADMIN_URL;
  let url: URL;
  try {
    url = new URL(given);
  } catch {
    throw new UsageError(`the admin URL "${given}" is not a URL (e.g. http://127.0.0.1:9901)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`the admin URL "${given}" must be http:// or https://`);
  if (url.username || url.password) throw new UsageError('the admin URL may not carry credentials: give the token with --token-file or NANOGATE_ADMIN_TOKEN');
  let token: string | null = null;
  const file = values['token-file'];
  if (file !== undefined) {
    try {
      token = readFileSync(file, 'utf8').replace(/(?:\r?\n)+$/, '');
    } catch (err) {
      throw new UsageError(`--token-file: cannot read "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (token === '') throw new UsageError(`--token-file: "${file}" is empty`);
  } else if (env.NANOGATE_ADMIN_TOKEN) token = env.NANOGATE_ADMIN_TOKEN;
  return { base: url.href.replace(/\/+$/, ''), token };
}

export interface AdminAnswer {
  status: number;
  body: any;
}

/** One admin request, bounded in time; a network failure or a 401/403 is AdminUnavailable. */
export async function adminRequest(target: AdminTarget, method: string, path: string, opts: { body?: string; contentType?: string; timeoutMs?: number } = {}): Promise<AdminAnswer> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (target.token !== null) headers.authorization = `Bearer ${target.token}`;
  if (opts.contentType) headers['content-type'] = opts.contentType;
  let res: Response;
  try {
    res = await fetch(target.base + path, { method, headers, body: opts.body, signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000) });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${(opts.timeoutMs ?? 30_000) / 1000} s` : (e.cause?.code ?? e.cause?.message ?? e.message);
    throw new AdminUnavailable(`cannot reach the admin API at ${target.base}: ${why} (is the gateway running? --admin URL or NANOGATE_ADMIN_URL says where)`);
  }
  const text = await res.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: shown as it is
  }
  if (res.status === 401 || res.status === 403) {
    throw new AdminUnavailable(`the admin API at ${target.base} refused the request (${res.status}): ${target.token === null ? 'it wants a token: set NANOGATE_ADMIN_TOKEN or give --token-file' : 'the token is not the one it expects'}`);
  }
  return { status: res.status, body };
}

/** An answer the command did not expect: AdminUnavailable with the problem's code and detail. */
export function unexpected(answer: AdminAnswer, what: string): AdminUnavailable {
  const b = answer.body;
  const detail = b && typeof b === 'object' ? `${b.code ?? ''}${b.detail ? `: ${b.detail}` : ''}` : String(b).slice(0, 200);
  return new AdminUnavailable(`${what}: the admin API answered ${answer.status}${detail ? ` (${detail})` : ''}`);
}

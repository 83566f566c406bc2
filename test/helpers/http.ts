import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  /** name, value, name, value… exactly as received (repeated fields stay apart) */
  rawHeaders: string[];
  body: Buffer;
  text: string;
}

/**
 * One request over a fresh connection (no agent, so no pooling between tests). Unlike fetch, it lets a test set
 * Host, Connection and other fields a browser-grade client refuses to send, and it keeps repeated fields apart.
 */
export function send(
  port: number,
  opts: { method?: string; path?: string; headers?: OutgoingHttpHeaders | string[]; body?: string | Buffer; timeoutMs?: number; host?: string } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: opts.host ?? '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.path ?? '/', headers: opts.headers, agent: false, setHost: !hasHost(opts.headers) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body, text: body.toString('utf8') });
        });
      },
    );
    req.setTimeout(opts.timeoutMs ?? 10_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

function hasHost(headers: OutgoingHttpHeaders | string[] | undefined): boolean {
  if (!headers) return false;
  if (Array.isArray(headers)) return headers.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'host');
  return Object.keys(headers).some((h) => h.toLowerCase() === 'host');
}

/** Every value of a field, in order, from a rawHeaders list. */
export function fieldValues(rawHeaders: readonly string[], name: string): string[] {
  const out: string[] = [];
  const lower = name.toLowerCase();
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i].toLowerCase() === lower) out.push(rawHeaders[i + 1]);
  return out;
}

/**
 * Asserts a gateway-produced error: the status, `application/problem+json`, the stable code, a requestId that
 * matches the X-Request-Id header, and nothing internal (no stack trace, no source path).
 */
export function assertProblem(
  res: { status: number; headers: Record<string, string | string[] | undefined>; body: string | Buffer },
  status: number,
  code: string,
): Record<string, unknown> {
  const text = typeof res.body === 'string' ? res.body : res.body.toString('utf8');
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status}: ${text}`);
  assert.equal(res.headers['content-type'], 'application/problem+json');
  const body = JSON.parse(text) as Record<string, unknown>;
  assert.equal(body.code, code);
  assert.equal(body.status, status);
  assert.equal(typeof body.requestId, 'string');
  assert.ok((body.requestId as string).length > 0);
  assert.equal(body.requestId, res.headers['x-request-id']);
  assertNothingInternal(text);
  return body;
}

/** No stack frames, source paths or exception names in a body meant for clients. */
export function assertNothingInternal(text: string): void {
  assert.doesNotMatch(text, /\bat [\w.<>]+ \(|\.[jt]s:\d+|node:internal|\/src\/|\/dist\/|TypeError|ReferenceError|stack/i);
}

/** Polls `check` until it is true or `timeoutMs` passes; returns the last result. */
export async function waitFor(check: () => boolean, timeoutMs = 3000, stepMs = 20): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return true;
    await sleep(stepMs);
  }
  return check();
}

/**
 * Runs every cleanup even when some throw (a `before` that failed half-way leaves some servers unset), so a failed
 * start cannot leave listening sockets that keep the test process alive. Rethrows the first error afterwards.
 */
export async function closeAll(...steps: Array<() => Promise<unknown> | unknown>): Promise<void> {
  let first: unknown = null;
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      first ??= err;
    }
  }
  if (first !== null) throw first;
}

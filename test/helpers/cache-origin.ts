import type { IncomingMessage, ServerResponse } from 'node:http';
import { startUpstream, type Received, type TestUpstream } from './upstream.js';

export type OriginHandler = (req: IncomingMessage, res: ServerResponse, n: number) => void;

/**
 * An origin for cache tests: a real HTTP server where each test gives its own path a handler that sets exactly the
 * headers of the case (Cache-Control, Expires, ETag, Vary…), and counts what reached it per path, so a test asserts
 * "the second request did not reach the origin" by a number, not by timing. `n` is the request's number on its path
 * (1 for the first).
 */
export interface CacheOrigin {
  up: TestUpstream;
  url: string;
  on(path: string, handler: OriginHandler): void;
  /** requests that reached the origin for this path (any query) */
  count(path: string): number;
  /** what the origin received for this path, in order */
  seen(path: string): Received[];
  close(): Promise<void>;
}

export async function startCacheOrigin(): Promise<CacheOrigin> {
  const handlers = new Map<string, OriginHandler>();
  const counts = new Map<string, number>();
  const up = await startUpstream((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const n = (counts.get(path) ?? 0) + 1;
    counts.set(path, n);
    const h = handlers.get(path);
    if (h === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('no handler');
      return;
    }
    h(req, res, n);
  });
  return {
    up,
    url: up.url,
    on: (path, handler) => void handlers.set(path, handler),
    count: (path) => counts.get(path) ?? 0,
    seen: (path) => up.received.filter((r) => r.url.split('?')[0] === path),
    close: () => up.close(),
  };
}

/** A handler that answers `body` with these headers (and a request counter in x-n). */
export function answer(headers: Record<string, string>, body = 'ok', status = 200): OriginHandler {
  return (_req, res, n) => {
    res.writeHead(status, { 'content-type': 'text/plain', 'x-n': String(n), ...headers });
    res.end(status === 204 || status === 304 ? undefined : `${body} ${n}`);
  };
}

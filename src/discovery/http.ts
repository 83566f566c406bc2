import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

/**
 * The HTTP client of the Consul and Kubernetes sources: node:http(s) directly, because the Kubernetes watch is a
 * long-lived stream of lines that has to be read as it comes, an https API server usually needs its own CA, and both
 * want a hard cap on how much a misbehaving server can make us buffer.
 */

export interface GetOptions {
  headers: Record<string, string>;
  /** the whole exchange (connect, head and body) must finish in this time */
  timeoutMs: number;
  /** PEM CA bundle for https */
  ca?: string | Buffer;
  /** a larger body is refused */
  maxBytes?: number;
}

export interface GetResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

const DEFAULT_MAX_BYTES = 32 * 1024 * 1024;

/** One in-flight request that stop() can cancel. */
export class Requests {
  readonly #open = new Set<{ destroy(err?: Error): void }>();

  add(r: { destroy(err?: Error): void }): void {
    this.#open.add(r);
  }

  delete(r: { destroy(err?: Error): void }): void {
    this.#open.delete(r);
  }

  abortAll(): void {
    for (const r of this.#open) r.destroy(new Error('stopped'));
    this.#open.clear();
  }
}

/** GET with a deadline on the whole exchange and a body cap. Rejects on transport errors, never on a status. */
export function get(url: URL, opts: GetOptions, requests: Requests): Promise<GetResult> {
  return new Promise((resolve, reject) => {
    const max = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(url, { method: 'GET', headers: opts.headers, ...(opts.ca ? { ca: opts.ca } : {}) });
    requests.add(req);
    const timer = setTimeout(() => req.destroy(new Error(`no complete answer within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    const finish = (err: Error | null, res?: GetResult) => {
      clearTimeout(timer);
      requests.delete(req);
      err ? reject(err) : resolve(res!);
    };
    req.on('error', (err) => finish(err));
    req.on('response', (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > max) req.destroy(new Error(`answer larger than ${max} bytes`));
        else chunks.push(c);
      });
      res.on('error', (err) => finish(err));
      res.on('aborted', () => finish(new Error('connection closed mid-answer')));
      res.on('end', () => finish(null, { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.end();
  });
}

export interface StreamHandlers {
  /** the response head; returning false ends the stream (the body is read by the caller through onLine otherwise) */
  onResponse(status: number, headers: IncomingHttpHeaders): boolean;
  /** one line of the body (without the newline); returning false ends the stream */
  onLine(line: string): boolean;
  /** the stream is over: null when the server ended it, an Error otherwise; called once */
  onEnd(err: Error | null): void;
}

/**
 * GET a body of newline-delimited lines (a Kubernetes watch). `idleMs` bounds silence: a connection that delivers
 * nothing for that long (a half-open TCP connection, a proxy that holds it) is dropped. Returns a function that ends
 * the stream early.
 */
export function getLines(url: URL, opts: GetOptions & { idleMs: number; maxLineBytes?: number }, requests: Requests, h: StreamHandlers): () => void {
  const maxLine = opts.maxLineBytes ?? 16 * 1024 * 1024;
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const req = send(url, { method: 'GET', headers: opts.headers, ...(opts.ca ? { ca: opts.ca } : {}) });
  requests.add(req);
  let ended = false;
  let idle: NodeJS.Timeout | null = null;
  const arm = () => {
    if (idle) clearTimeout(idle);
    idle = setTimeout(() => req.destroy(new Error(`no data for ${opts.idleMs} ms`)), opts.idleMs);
    idle.unref();
  };
  const end = (err: Error | null) => {
    if (ended) return;
    ended = true;
    if (idle) clearTimeout(idle);
    requests.delete(req);
    req.destroy();
    h.onEnd(err);
  };
  arm();
  req.on('error', (err) => end(err));
  req.on('response', (res: IncomingMessage) => {
    arm();
    if (!h.onResponse(res.statusCode ?? 0, res.headers)) {
      // The caller wants the body as a whole (an error Status): read it as one line.
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.length < 64 && chunks.push(c));
      res.on('end', () => {
        if (!ended) h.onLine(Buffer.concat(chunks).toString('utf8'));
        end(null);
      });
      res.on('error', (err) => end(err));
      return;
    }
    let pending = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      if (ended) return;
      arm();
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line.trim() === '') continue;
        if (!h.onLine(line)) return end(null);
        if (ended) return;
      }
      if (pending.length > maxLine) end(new Error(`a line longer than ${maxLine} bytes`));
    });
    res.on('aborted', () => end(new Error('connection closed mid-stream')));
    res.on('error', (err) => end(err));
    res.on('end', () => end(pending.trim() === '' ? null : new Error('stream ended inside a line')));
  });
  req.end();
  return () => end(null);
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { ClientCertificate } from './client-cert.js';

/**
 * The uWS request/response pair the worker's handler and Exchange are written against, implemented over node:http2's
 * compatibility API (Http2ServerRequest/Response for HTTP/2, http's IncomingMessage/ServerResponse for HTTP/1.1 on
 * the same port). Only the subset that src/worker/handler.ts, src/worker/exchange.ts and src/errors/problem.ts call
 * exists here, with uWS's semantics, so the pipeline runs unchanged and no policy knows which front end ran:
 *
 *   writeStatus / writeHeader   collected, sent as one head at the first body write or end. onHead may hand
 *                               writeStatus a whole block ("200 OK\r\nname: value\r\n…"): it is split here.
 *   write(chunk) -> boolean     node's write; false = buffered, and the next 'drain' calls onWritable(offset)
 *   tryEnd(chunk, total)        node buffers the whole chunk, so it is always taken whole: [ok, done] with done at
 *                               `total` bytes; ok false = wait for onWritable (the Exchange's backlog is then empty)
 *   getWriteOffset              body bytes written so far
 *   onData(chunk, isLast)       one ArrayBuffer per chunk (exactly the chunk's bytes), then an empty last one at 'end'
 *   pause / resume              of the request stream (HTTP/2 flow control / TCP backpressure do the rest)
 *   onAborted                   the client went away before the response ended (stream reset, socket closed)
 *   cork(fn)                    fn() (node batches writes of one tick itself)
 *   close()                     cuts the stream (HTTP/2 RST_STREAM) or the connection (HTTP/1.1)
 *
 * Body bytes are copied on the way in, as uWS copies them: the Exchange hands over views of the upstream pool's read
 * buffer, which is reused once the call returns, and node keeps a queued chunk by reference.
 *
 * Fields a response must not carry on HTTP/2 (RFC 9113 8.2.2: Connection and the hop-by-hop fields it names) are
 * dropped from what the Exchange writes; on HTTP/1.1 node frames the body itself, so Content-Length and
 * Transfer-Encoding are the adapter's alone.
 */

type NodeReq = Http2ServerRequest | IncomingMessage;
type NodeRes = Http2ServerResponse | ServerResponse;

/** response fields this adapter or node owns (lower case) */
const OWNED = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'content-length', 'te', 'trailer']);

const EMPTY = new ArrayBuffer(0);

/** The request side: what the handler reads synchronously (method, URL, query, every header field). */
export class NodeRequest {
  readonly #method: string;
  readonly #url: string;
  readonly #query: string | undefined;
  readonly #raw: string[];
  readonly #h2: boolean;
  /** a stream with a body but no Content-Length: HTTP/2 frames it itself, the handler is told "chunked" */
  readonly #implicitChunked: boolean;
  constructor(req: NodeReq, h2: boolean) {
    this.#method = req.method ?? 'GET';
    const target = req.url ?? '/';
    const q = target.indexOf('?');
    this.#url = q < 0 ? target : target.slice(0, q);
    this.#query = q < 0 ? undefined : target.slice(q + 1);
    this.#raw = req.rawHeaders;
    this.#h2 = h2;
    this.#implicitChunked = h2 && (req as Http2ServerRequest).stream.endAfterHeaders === false && req.headers['content-length'] === undefined;
  }

  getCaseSensitiveMethod(): string {
    return this.#method;
  }
  getMethod(): string {
    return this.#method.toLowerCase();
  }
  getUrl(): string {
    return this.#url;
  }
  getQuery(): string | undefined {
    return this.#query;
  }

  /**
   * Every field line, lower-case names, in order. HTTP/2's pseudo-headers are not fields: `:authority` becomes the
   * Host field when the request has none (RFC 9113 8.3.1).
   */
  forEach(visit: (name: string, value: string) => void): void {
    const raw = this.#raw;
    let authority: string | null = null;
    let host = false;
    for (let i = 0; i < raw.length; i += 2) {
      let name = raw[i];
      if (this.#h2) {
        if (name.charCodeAt(0) === 58 /* : */) {
          if (name === ':authority') authority = raw[i + 1];
          continue;
        }
      } else name = name.toLowerCase();
      if (name === 'host') host = true;
      visit(name, raw[i + 1]);
    }
    if (!host && authority !== null) visit('host', authority);
    if (this.#implicitChunked) visit('transfer-encoding', 'chunked');
  }

  getHeader(lowerCaseKey: string): string {
    let out = '';
    this.forEach((n, v) => {
      if (out === '' && n === lowerCaseKey) out = v;
    });
    return out;
  }
}

/** The response side, over node's response object; see the file comment for the uWS semantics it keeps. */
export class NodeResponse {
  readonly #req: NodeReq;
  readonly #res: NodeRes;
  readonly #h2: boolean;
  readonly #remote: ArrayBuffer;
  /** the verified client certificate of the connection (mTLS), read by the clientCert auth method */
  readonly clientCert: ClientCertificate | null;
  #status = 200;
  #headers: Record<string, string | string[]> = Object.create(null);
  #headSent = false;
  #offset = 0;
  #ended = false;
  #aborted = false;
  #onAborted: (() => void) | null = null;
  #onWritable: ((offset: number) => boolean) | null = null;
  #waiting = false;

  constructor(req: NodeReq, res: NodeRes, h2: boolean, remote: ArrayBuffer, clientCert: ClientCertificate | null) {
    this.#req = req;
    this.#res = res;
    this.#h2 = h2;
    this.#remote = remote;
    this.clientCert = clientCert;
    res.on('close', () => this.#closed());
    res.on('drain', () => this.#drained());
  }

  #closed(): void {
    if (this.#ended || this.#aborted) return;
    this.#aborted = true;
    const h = this.#onAborted;
    if (h !== null) h();
  }

  #drained(): void {
    if (!this.#waiting || this.#aborted) return;
    this.#waiting = false;
    const h = this.#onWritable;
    // false: the handler wrote again and met backpressure again; the next 'drain' calls it once more
    if (h !== null && !h(this.#offset)) this.#waiting = !this.#ended;
  }

  writeStatus(status: string | Buffer): this {
    const text = typeof status === 'string' ? status : status.toString('latin1');
    const eol = text.indexOf('\r\n');
    this.#status = parseInt(eol < 0 ? text : text.slice(0, eol), 10) || 502;
    if (eol >= 0) {
      // the Exchange's one-call head: status line, then field lines
      let pos = eol + 2;
      while (pos < text.length) {
        let end = text.indexOf('\r\n', pos);
        if (end < 0) end = text.length;
        const colon = text.indexOf(':', pos);
        if (colon > pos && colon < end) this.#add(text.slice(pos, colon), text.slice(colon + 1, end).trim());
        pos = end + 2;
      }
    }
    return this;
  }

  writeHeader(key: string, value: string | Buffer): this {
    this.#add(key, typeof value === 'string' ? value : value.toString('latin1'));
    return this;
  }

  #add(key: string, value: string): void {
    const name = key.toLowerCase();
    if (OWNED.has(name)) {
      // "connection: close" from the Exchange (drain, a client still sending): HTTP/1.1 closes after this response
      if (name === 'connection' && !this.#h2 && value.toLowerCase() === 'close') (this.#res as ServerResponse).shouldKeepAlive = false;
      return;
    }
    const h = this.#headers;
    const prev = h[name];
    if (prev === undefined) h[name] = value;
    else if (typeof prev === 'string') h[name] = [prev, value];
    else prev.push(value);
  }

  #head(length: number): void {
    if (this.#headSent) return;
    this.#headSent = true;
    if (length >= 0) this.#headers['content-length'] = String(length);
    try {
      (this.#res as ServerResponse).writeHead(this.#status, this.#headers as Record<string, string>);
    } catch {
      // a field node refuses (an invalid name or value from the upstream): the response cannot be sent as is
      this.#headers = Object.create(null);
      (this.#res as ServerResponse).writeHead(502, { 'content-length': '0' });
    }
  }

  write(chunk: Uint8Array | string): boolean {
    if (this.#ended || this.#aborted) return true;
    this.#head(-1);
    this.#offset += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength;
    const ok = (this.#res as ServerResponse).write(typeof chunk === 'string' ? chunk : Buffer.from(chunk));
    if (!ok) this.#waiting = true;
    return ok;
  }

  tryEnd(chunk: Uint8Array, total: number): [boolean, boolean] {
    if (this.#ended || this.#aborted) return [true, true];
    this.#head(total);
    this.#offset += chunk.byteLength;
    if (this.#offset >= total) {
      this.#ended = true;
      (this.#res as ServerResponse).end(Buffer.from(chunk));
      return [true, true];
    }
    const ok = (this.#res as ServerResponse).write(Buffer.from(chunk));
    if (!ok) this.#waiting = true;
    return [ok, false];
  }

  getWriteOffset(): number {
    return this.#offset;
  }

  end(body?: string | Uint8Array, closeConnection?: boolean): this {
    if (this.#ended || this.#aborted) return this;
    if (closeConnection === true && !this.#h2) (this.#res as ServerResponse).shouldKeepAlive = false;
    this.#head(this.#headSent ? -1 : body === undefined ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength);
    this.#ended = true;
    if (body === undefined) (this.#res as ServerResponse).end();
    else (this.#res as ServerResponse).end(typeof body === 'string' ? body : Buffer.from(body));
    return this;
  }

  endWithoutBody(): this {
    if (this.#ended || this.#aborted) return this;
    this.#head(-1);
    this.#ended = true;
    (this.#res as ServerResponse).end();
    return this;
  }

  /**
   * Response trailers (HTTP/2; on HTTP/1.1 only a chunked response carries them): a flat [name, value, …] list,
   * sent with the end of the body. Call before the response ends (before the Exchange's onEnd). uWS has no trailers,
   * so its HttpResponse lacks this method: callers test for it.
   */
  writeTrailers(list: readonly string[]): void {
    if (this.#ended || this.#aborted) return;
    const t: Record<string, string> = Object.create(null);
    for (let i = 0; i < list.length; i += 2) t[list[i].toLowerCase()] = list[i + 1];
    (this.#res as ServerResponse).addTrailers(t);
  }

  close(): this {
    if (this.#aborted) return this;
    this.#ended = true;
    if (this.#h2) (this.#req as Http2ServerRequest).stream.close(0x2 /* INTERNAL_ERROR */);
    else this.#req.socket.destroy();
    return this;
  }

  cork(fn: () => void): this {
    fn();
    return this;
  }

  onWritable(handler: (offset: number) => boolean): this {
    this.#onWritable = handler;
    return this;
  }

  onAborted(handler: () => void): this {
    this.#onAborted = handler;
    return this;
  }

  onData(handler: (chunk: ArrayBuffer, isLast: boolean) => void): this {
    const req = this.#req;
    req.on('data', (b: Buffer) => {
      // exactly the chunk's bytes (the Exchange copies what it is given; a pooled Buffer's ArrayBuffer is larger)
      handler(b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? (b.buffer as ArrayBuffer) : (b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer), false);
    });
    req.on('end', () => handler(EMPTY, true));
    return this;
  }

  pause(): void {
    this.#req.pause();
  }

  resume(): void {
    this.#req.resume();
  }

  /** uWS's binary form: 4 bytes for IPv4, 16 for IPv6 (listener.ts remoteOf) */
  getRemoteAddress(): ArrayBuffer {
    return this.#remote;
  }
}

/** The pair as the handler's types name them. */
export function asUws(req: NodeRequest, res: NodeResponse): [HttpResponse, HttpRequest] {
  return [res as unknown as HttpResponse, req as unknown as HttpRequest];
}

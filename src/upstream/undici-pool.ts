import { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import type { ConnectionOptions } from 'node:tls';
import type { PlanNode, PlanUpstream } from '../config/plan.js';
import type { PlanUpstreamTls } from '../tls/compile.js';
import type { ErrorCode } from '../errors/codes.js';
import type { UpstreamConnection, UpstreamExchange } from './exchange.js';
import { BODY_CHUNKED, BODY_LENGTH, BODY_NONE, HeaderList, parseContentLength } from './h1-parse.js';

/**
 * The general path: undici for TLS upstream nodes (and anything the lean HTTP/1.1 client does not speak).
 * It drives the same UpstreamExchange as the lean client, so the worker does not know which one it talks to.
 */

const DROP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'content-length', 'date', 'x-request-id']);

function errorCode(err: Error & { code?: string }): ErrorCode {
  switch (err.code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'NG_ERR_UPSTREAM_CONNECT';
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return 'NG_ERR_UPSTREAM_TIMEOUT';
    case 'UND_ERR_SOCKET':
    case 'ECONNRESET':
      return 'NG_ERR_UPSTREAM_RESET';
    default:
      return isTlsFailure(err.code) ? 'NG_ERR_UPSTREAM_CONNECT' : 'NG_ERR_UPSTREAM_BAD_RESPONSE';
  }
}

/**
 * A handshake that failed: Node's own TLS errors (ERR_TLS_*), OpenSSL alerts (ERR_SSL_*, e.g. a client certificate
 * the upstream required) and the certificate verification results (X509_V_ERR_* names without the prefix).
 */
function isTlsFailure(code: string | undefined): boolean {
  return code !== undefined && (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || code.includes('CERT') || code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' || code === 'HOSTNAME_MISMATCH');
}

class UndiciConnection implements UpstreamConnection, Dispatcher.DispatchHandler {
  readonly #owner: UndiciNodePool;
  readonly #ex: UpstreamExchange;
  readonly body: Readable | null;
  #abort: ((err: Error) => void) | null = null;
  #resume: (() => void) | null = null;
  #done = false;
  #more = true;
  #chunk: Buffer | null = null;

  constructor(owner: UndiciNodePool, ex: UpstreamExchange) {
    this.#owner = owner;
    this.#ex = ex;
    this.body = ex.requestBodyKind === BODY_NONE ? null : new Readable({ read: () => ex.onUpstreamDrain() });
  }

  writeBody(chunk: Buffer): boolean {
    return this.body === null || this.#done ? true : this.body.push(chunk);
  }
  endBody(): void {
    if (this.body !== null && !this.#done) this.body.push(null);
  }
  resume(): void {
    this.#resume?.();
  }
  abort(): void {
    if (this.#done) return;
    this.#finish();
    this.#abort?.(new Error('client went away'));
    this.body?.destroy();
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void): boolean {
    if (status < 200) return true;
    this.#resume = resume;
    const headers: string[] = [];
    let length = -1;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i].toString('latin1');
      const lower = name.toLowerCase();
      if (lower === 'content-length') length = parseContentLength(raw[i + 1].toString('latin1'));
      if (!DROP.has(lower) && !lower.startsWith('proxy-')) headers.push(name, raw[i + 1].toString('latin1'));
    }
    const ex = this.#ex;
    const kind = ex.isHeadRequest || status === 204 || status === 304 ? BODY_NONE : length === 0 ? BODY_NONE : length > 0 ? BODY_LENGTH : BODY_CHUNKED;
    ex.batch(() => ex.onHead(status, new HeaderList(headers), kind, length));
    return true;
  }

  readonly #write = () => {
    this.#more = this.#ex.onBody(this.#chunk!);
  };

  onData(chunk: Buffer): boolean {
    this.#chunk = chunk;
    this.#ex.batch(this.#write);
    this.#chunk = null;
    return this.#more;
  }

  onComplete(): void {
    if (this.#finish()) this.#ex.batch(() => this.#ex.onEnd());
  }

  onError(err: Error): void {
    if (this.#finish()) this.#ex.onError(errorCode(err), `${this.#owner.node.authority}: ${(err as { code?: string }).code ?? err.message}`);
  }

  #finish(): boolean {
    if (this.#done) return false;
    this.#done = true;
    this.#owner.inFlight--;
    return true;
  }
}

/**
 * The upstream's TLS as tls.connect options (undici's `connect`, and node:https for the health checks), so both
 * see the same CA, SNI name, client certificate and version floor. The environment switch
 * NANOGATE_UPSTREAM_TLS_INSECURE=1 (for tests against self-signed nodes) only applies to an upstream without `tls`.
 */
export function tlsConnectOptions(tls: PlanUpstreamTls | null): ConnectionOptions {
  if (tls === null) return { rejectUnauthorized: process.env.NANOGATE_UPSTREAM_TLS_INSECURE !== '1' };
  return {
    rejectUnauthorized: tls.rejectUnauthorized,
    minVersion: tls.minVersion,
    ...(tls.ca !== null ? { ca: tls.ca } : {}),
    ...(tls.servername !== null ? { servername: tls.servername } : {}),
    ...(tls.cert !== null && tls.key !== null ? { cert: tls.cert, key: tls.key } : {}),
    ...(tls.passphrase !== null ? { passphrase: tls.passphrase } : {}),
  };
}

export class UndiciNodePool {
  readonly node: PlanNode;
  readonly #pool: Pool;
  inFlight = 0;

  constructor(node: PlanNode, upstream: PlanUpstream) {
    this.node = node;
    this.#pool = new Pool(node.url, {
      connections: upstream.connections,
      keepAliveTimeout: upstream.keepAliveMs,
      connect: { timeout: upstream.connectTimeoutMs, ...tlsConnectOptions(upstream.tls) },
    });
  }

  dispatch(ex: UpstreamExchange): void {
    this.inFlight++;
    const lines = ex.requestHead.split('\r\n');
    const [method, path] = lines[0].split(' ');
    const headers: string[] = [];
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i];
      if (!line) continue;
      const colon = line.indexOf(':');
      const name = line.slice(0, colon);
      if (name === 'transfer-encoding') continue;
      headers.push(name, line.slice(colon + 1).trim());
    }
    const conn = new UndiciConnection(this, ex);
    this.#pool.dispatch(
      { method, path, headers, body: conn.body, headersTimeout: ex.readTimeoutMs, bodyTimeout: ex.readTimeoutMs, blocking: false },
      conn,
    );
    ex.onConnected(conn);
  }

  cancel(): boolean {
    return false;
  }

  sweep(): void {}

  close(): void {
    void this.#pool.close();
  }

  /** undici's close() already lets dispatched requests finish. */
  retire(): void {
    void this.#pool.close();
  }
}

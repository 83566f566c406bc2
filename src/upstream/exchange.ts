import type { ErrorCode } from '../errors/codes.js';
import type { ForwardedHeaders } from './h1-parse.js';

/**
 * What an upstream client needs from one proxied request, and how it reports back. The worker's Exchange class
 * implements it; both the lean HTTP/1.1 client and the undici path drive it the same way.
 */
export interface UpstreamExchange {
  /** the request line and headers, ending with the blank line */
  readonly requestHead: string;
  readonly isHeadRequest: boolean;
  /** BODY_NONE, BODY_LENGTH or BODY_CHUNKED (h1-parse.ts): how the request body is framed upstream */
  readonly requestBodyKind: number;
  /** a request that may be sent again on a fresh connection when a reused one turns out to be dead */
  readonly replayable: boolean;
  /** GET or HEAD without a body: may share a connection in a pipelined batch (h1-pool.ts) */
  readonly pipelinable: boolean;
  /** absolute deadline (ms, coarse clock) for the response head; refreshed by body reads */
  readonly readTimeoutMs: number;
  readonly connectTimeoutMs: number;
  /** the client sent `te: trailers` (an HTTP/2 client, e.g. gRPC): an HTTP/2 upstream is told so, the only TE it takes */
  readonly acceptsTrailers: boolean;

  /** the connection is ready: write the request body (if any) with `conn.writeBody` */
  onConnected(conn: UpstreamConnection): void;
  /** head parsed; `headers` (the forwarded fields) is valid only during the call */
  onHead(status: number, headers: ForwardedHeaders, bodyKind: number, contentLength: number): void;
  /** a body chunk valid only during the call; return false to pause the upstream until `conn.resume()` */
  onBody(chunk: Buffer): boolean;
  /** the response's trailer fields (name, value, …, lower-case names), just before onEnd; HTTP/2 upstreams only */
  onTrailers(list: readonly string[]): void;
  onEnd(): void;
  /** the upstream socket accepted buffered request body bytes: the client may send more */
  onUpstreamDrain(): void;
  /**
   * failure; headSent tells whether onHead already ran. `detail` names the node and the cause ("connect to
   * 10.0.0.5:8080 failed (ECONNREFUSED)"): it is for the access log and the admin API, never for the client.
   */
  onError(code: ErrorCode, detail: string): void;
  /** wraps a synchronous burst of callbacks (uWS cork), so head, body and end leave in one write */
  batch(fn: () => void): void;
}

export interface UpstreamConnection {
  /** writes raw body bytes (the connection frames them); false means wait for onUpstreamDrain */
  writeBody(chunk: Buffer): boolean;
  /** the request body is complete */
  endBody(): void;
  resume(): void;
  /** gives up on the exchange (the connection is destroyed unless the request was pipelined and is complete) */
  abort(ex?: UpstreamExchange): void;
}

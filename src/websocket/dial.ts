import WebSocket from 'ws';
import type { ErrorCode } from '../errors/codes.js';

/**
 * Opens the upstream WebSocket with `ws` (ws:// for an http:// node, wss:// for an https:// one, certificates
 * checked unless NANOGATE_UPSTREAM_TLS_INSECURE=1, as for HTTP upstreams). Compression is off on this leg
 * (messages are relayed, not frames, so each leg negotiates its own; uWS's side has it off too), and the largest
 * message the upstream may send is the route's limit: ws closes a larger one with 1009.
 */
export interface DialOptions {
  /** an https:// node: the upstream leg is wss:// */
  readonly tls: boolean;
  /** host:port of the node */
  readonly authority: string;
  /** path and query as forwarded */
  readonly target: string;
  readonly protocols: readonly string[];
  readonly headers: Record<string, string>;
  readonly maxMessageBytes: number;
  readonly connectTimeoutMs: number;
}

export function dial(o: DialOptions): WebSocket {
  const url = (o.tls ? 'wss://' : 'ws://') + o.authority + o.target;
  return new WebSocket(url, o.protocols as string[], {
    headers: o.headers,
    perMessageDeflate: false,
    maxPayload: o.maxMessageBytes,
    handshakeTimeout: o.connectTimeoutMs,
    followRedirects: false,
    rejectUnauthorized: process.env.NANOGATE_UPSTREAM_TLS_INSECURE !== '1',
  });
}

/** The error code of a handshake that failed before any answer: a timeout, or a connection that failed. */
export function dialFailure(err: Error): { code: ErrorCode; cause: string } {
  const code = (err as NodeJS.ErrnoException).code;
  if (err.message === 'Opening handshake has timed out') return { code: 'NG_ERR_UPSTREAM_TIMEOUT', cause: 'no handshake answer in time' };
  if (code !== undefined) return { code: 'NG_ERR_UPSTREAM_CONNECT', cause: code };
  return { code: 'NG_ERR_UPSTREAM_BAD_RESPONSE', cause: err.message.slice(0, 200) };
}

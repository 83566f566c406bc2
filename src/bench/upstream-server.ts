/**
 * The benchmark upstream: a separate process that answers as cheaply as this stack allows, so that what the bench
 * measures is the gateway, not the origin. It is a single-threaded uWebSockets.js App (about 8.5 µs of CPU per
 * request on the reference machine; see docs/performance.md), not node:http (5-10x more).
 *
 *   GET/HEAD  /bytes/<n>   200 with n bytes of body (n <= 64 MiB; buffers are built once and cached)
 *   POST/PUT  /echo        200 with the request body sent back (Content-Length framing)
 *   POST/PUT  any other    the body is read and dropped; 200 with the 100-byte body
 *   any       any other    200 with a fixed 100-byte text body
 *   WebSocket /ws/echo     every message sent back as it came (text or binary), no compression
 *
 * Usage: node dist/src/bench/upstream-server.js [--host 127.0.0.1] [--port 0]
 * Prints one JSON line {"port":N} on stdout once listening; SIGTERM/SIGINT close it and exit 0.
 */
import uWS from 'uWebSockets.js';
import { parseArgs } from 'node:util';

/** The body of every small answer: exactly 100 bytes, like native-bench's nginx origin. */
export const SMALL_BODY = 'nanogate-bench-ok-' + '0'.repeat(82);
const SMALL = Buffer.from(SMALL_BODY, 'latin1');
const MAX_BYTES = 64 * 1024 * 1024;
const cache = new Map<number, Buffer>();

function bytes(n: number): Buffer {
  let b = cache.get(n);
  if (b === undefined) {
    b = Buffer.alloc(n, 0x61);
    if (cache.size < 32) cache.set(n, b);
  }
  return b;
}

function main(): void {
  const { values } = parseArgs({ options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '0' } } });
  const app = uWS.App();
  app.ws('/ws/echo', {
    compression: uWS.DISABLED,
    maxPayloadLength: 16 * 1024 * 1024,
    idleTimeout: 0,
    message: (ws, message, isBinary) => {
      ws.send(message, isBinary);
    },
  });

  app.any('/*', (res, req) => {
    const method = req.getCaseSensitiveMethod();
    const url = req.getUrl();
    if (method === 'POST' || method === 'PUT' || method === 'PATCH') {
      const echo = url === '/echo';
      const parts: Buffer[] = [];
      let aborted = false;
      res.onAborted(() => { aborted = true; });
      res.onData((chunk, last) => {
        // The ArrayBuffer is only valid during this callback: copy it when it has to live longer.
        if (echo) parts.push(Buffer.from(Buffer.from(chunk)));
        if (!last || aborted) return;
        res.cork(() => {
          res.writeHeader('content-type', echo ? 'application/octet-stream' : 'text/plain');
          res.end(echo ? (parts.length === 1 ? parts[0] : Buffer.concat(parts)) : SMALL);
        });
      });
      return;
    }
    if (url.startsWith('/bytes/')) {
      const n = Number(url.slice(7));
      if (Number.isInteger(n) && n >= 0 && n <= MAX_BYTES) {
        res.writeHeader('content-type', 'application/octet-stream');
        // uWS keeps what the socket cannot take yet and sends it as the client reads (no chunked framing).
        res.end(bytes(n));
        return;
      }
      res.writeStatus('400 Bad Request').end('bad size');
      return;
    }
    res.writeHeader('content-type', 'text/plain');
    res.end(SMALL);
  });

  let token: uWS.us_listen_socket | null = null;
  app.listen(values.host!, Number(values.port), (t) => {
    if (!t) {
      process.stderr.write(`bench upstream: cannot listen on ${values.host}:${values.port}\n`);
      process.exit(1);
    }
    token = t;
    process.stdout.write(JSON.stringify({ port: uWS.us_socket_local_port(t) }) + '\n');
  });

  const stop = () => {
    if (token) uWS.us_listen_socket_close(token);
    token = null;
    (app as unknown as { close?: () => void }).close?.();
    setTimeout(() => process.exit(0), 50);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  // The parent may die without a signal reaching us: an IPC disconnect or a closed stdin ends us too.
  process.on('disconnect', stop);
}

main();

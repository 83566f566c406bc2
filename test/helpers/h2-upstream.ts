import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { constants, createSecureServer, createServer, type Http2Server, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream, type Settings } from 'node:http2';
import type { AddressInfo } from 'node:net';

/**
 * A real HTTP/2 upstream (node:http2: `createServer` for h2c, `createSecureServer` with a test certificate for h2)
 * with the behaviours the HTTP/2 upstream tests need, chosen by path:
 *
 *   /echo              JSON of the request's head (pseudo-headers included) and its body's length and sha256
 *   /slow?ms=N         answers after N ms (for concurrency and stream-limit counts)
 *   /late-read?ms=N    reads nothing of the request body for N ms, then reads it all and answers its length
 *   /big?mb=N          N MiB of body, written with backpressure
 *   /reset             RST_STREAM(INTERNAL_ERROR) before any answer
 *   /goaway            GOAWAY and the session destroyed while the request waits
 *   /reset-mid         head and a first chunk, then RST_STREAM
 *   /grpc/unary        one length-prefixed message back ("echo:" + the request's), trailers grpc-status 0
 *   /grpc/stream?n=N   N messages, then trailers grpc-status 0
 *   /grpc/collect      client streaming: every request message, joined with "+", in one reply; grpc-status 0
 *   /grpc/fail         one message, then trailers grpc-status 13 (INTERNAL)
 *   /grpc/not-found    a trailers-only answer: grpc-status 5 in the headers, no body
 *   /health            200 "ok"
 *
 * It counts sessions, and the most streams one session had open at once.
 */
export interface H2Upstream {
  port: number;
  url: string;
  /** sessions accepted so far */
  sessions: number;
  /** the most streams open at once on any one session */
  peakStreams: number;
  /** requests seen (any path) */
  requests: number;
  /** bytes /big has handed to its stream so far (it stops when the stream's flow-control window is full) */
  bigSent: number;
  close(): Promise<void>;
}

/** A gRPC message frame: 1 byte compressed flag (0), 4 bytes big-endian length, the payload. */
export function grpcFrame(payload: string | Buffer): Buffer {
  const body = Buffer.from(payload);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** The payloads of a run of gRPC frames. */
export function grpcMessages(bytes: Buffer): string[] {
  const out: string[] = [];
  let at = 0;
  while (at + 5 <= bytes.length) {
    const len = bytes.readUInt32BE(at + 1);
    out.push(bytes.subarray(at + 5, at + 5 + len).toString('utf8'));
    at += 5 + len;
  }
  return out;
}

export async function startH2Upstream(opts: { tls?: { cert: string; key: string }; settings?: Settings } = {}): Promise<H2Upstream> {
  const server: Http2Server = opts.tls
    ? createSecureServer({ cert: readFileSync(opts.tls.cert), key: readFileSync(opts.tls.key), settings: opts.settings })
    : createServer({ settings: opts.settings });
  const state = { sessions: 0, peakStreams: 0, requests: 0, bigSent: 0 };
  const open = new Map<Http2Session, number>();
  const sessions = new Set<Http2Session>();
  server.on('session', (session) => {
    state.sessions++;
    sessions.add(session);
    open.set(session, 0);
    session.on('close', () => {
      sessions.delete(session);
      open.delete(session);
    });
  });
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    state.requests++;
    const session = stream.session!;
    const n = (open.get(session) ?? 0) + 1;
    open.set(session, n);
    if (n > state.peakStreams) state.peakStreams = n;
    stream.on('close', () => open.set(session, (open.get(session) ?? 1) - 1));
    stream.on('error', () => {});
    const url = new URL(String(headers[':path']), 'http://x');
    handle(stream, headers, url, state);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    get sessions() {
      return state.sessions;
    },
    get peakStreams() {
      return state.peakStreams;
    },
    get requests() {
      return state.requests;
    },
    get bigSent() {
      return state.bigSent;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function readBody(stream: ServerHttp2Stream): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
  });
}

function handle(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, url: URL, state: { bigSent: number }): void {
  const grpcHead = { ':status': 200, 'content-type': 'application/grpc' };
  switch (url.pathname) {
    case '/echo':
      void readBody(stream).then((body) => {
        const head: Record<string, unknown> = {};
        for (const k of Object.keys(headers)) head[k] = headers[k];
        stream.respond({ ':status': 200, 'content-type': 'application/json' });
        stream.end(JSON.stringify({ headers: head, bodyLength: body.length, sha256: createHash('sha256').update(body).digest('hex') }));
      });
      return;
    case '/slow': {
      const ms = Number(url.searchParams.get('ms') ?? 200);
      const timer = setTimeout(() => {
        if (stream.destroyed) return;
        stream.respond({ ':status': 200 });
        stream.end('slow');
      }, ms);
      stream.on('close', () => clearTimeout(timer));
      stream.resume();
      return;
    }
    case '/late-read': {
      stream.pause();
      setTimeout(() => {
        let n = 0;
        stream.on('data', (c: Buffer) => (n += c.length));
        stream.on('end', () => {
          stream.respond({ ':status': 200 });
          stream.end(String(n));
        });
        stream.resume();
      }, Number(url.searchParams.get('ms') ?? 300));
      return;
    }
    case '/big': {
      const total = Number(url.searchParams.get('mb') ?? 1) * 1024 * 1024;
      const chunk = Buffer.alloc(64 * 1024, 'x');
      let sent = 0;
      stream.respond({ ':status': 200, 'content-type': 'application/octet-stream' });
      const pump = () => {
        while (sent < total) {
          sent += chunk.length;
          state.bigSent = sent;
          if (!stream.write(chunk)) return void stream.once('drain', pump);
        }
        stream.end();
      };
      pump();
      return;
    }
    case '/reset':
      stream.close(constants.NGHTTP2_INTERNAL_ERROR);
      return;
    case '/goaway':
      setTimeout(() => {
        stream.session?.goaway(constants.NGHTTP2_INTERNAL_ERROR);
        stream.session?.destroy();
      }, 20);
      return;
    case '/reset-mid':
      stream.respond({ ':status': 200, 'content-type': 'text/plain' });
      stream.write('first part, ');
      // destroy sends RST_STREAM(INTERNAL_ERROR); close() would first end the stream cleanly
      setTimeout(() => stream.destroy(new Error('reset mid-stream')), 50);
      return;
    case '/grpc/unary':
      void readBody(stream).then((body) => {
        const [msg] = grpcMessages(body);
        stream.respond({ ...grpcHead, 'x-seen-te': String(headers.te ?? '') }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'OK' }));
        stream.end(grpcFrame(`echo:${msg ?? ''}`));
      });
      return;
    case '/grpc/collect':
      void readBody(stream).then((body) => {
        stream.respond(grpcHead, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(grpcFrame(grpcMessages(body).join('+')));
      });
      return;
    case '/grpc/stream': {
      const n = Number(url.searchParams.get('n') ?? 3);
      stream.resume();
      stream.respond(grpcHead, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      let i = 0;
      const next = () => {
        if (stream.destroyed) return;
        if (i === n) return void stream.end();
        stream.write(grpcFrame(`message ${i++}`));
        setTimeout(next, 5);
      };
      next();
      return;
    }
    case '/grpc/fail':
      stream.resume();
      stream.respond(grpcHead, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '13', 'grpc-message': 'backend exploded' }));
      stream.end(grpcFrame('partial'));
      return;
    case '/grpc/not-found':
      stream.resume();
      stream.respond({ ...grpcHead, 'grpc-status': '5', 'grpc-message': 'no such thing' }, { endStream: true });
      return;
    case '/health':
      stream.resume();
      stream.respond({ ':status': 200 });
      stream.end('ok');
      return;
    default:
      stream.resume();
      stream.respond({ ':status': 404 });
      stream.end('not found');
  }
}

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { H2NodePool } from '../../src/upstream/h2-pool.js';
import type { UpstreamConnection, UpstreamExchange } from '../../src/upstream/exchange.js';
import type { ForwardedHeaders } from '../../src/upstream/h1-parse.js';
import { BODY_CHUNKED, BODY_NONE } from '../../src/upstream/h1-parse.js';
import type { PlanNode, PlanUpstream } from '../../src/config/plan.js';
import type { ErrorCode } from '../../src/errors/codes.js';
import { grpcFrame, grpcMessages, startH2Upstream, type H2Upstream } from '../helpers/h2-upstream.js';
import { closeAll, waitFor } from '../helpers/http.js';

/**
 * The HTTP/2 pool (src/upstream/h2-pool.ts) against a real node:http2 server, driven the way the worker's Exchange
 * drives it: what reaches the upstream, what comes back (trailers included), stream limits and backpressure.
 */

/** One request as the pool sees it, recording what it hands back. */
class Call implements UpstreamExchange {
  readonly requestHead: string;
  readonly isHeadRequest = false;
  readonly requestBodyKind: number;
  readonly replayable = false;
  readonly pipelinable = false;
  readonly readTimeoutMs = 10_000;
  readonly connectTimeoutMs = 5_000;
  readonly acceptsTrailers: boolean;
  status = 0;
  head: string[] = [];
  chunks: Buffer[] = [];
  trailers: readonly string[] | null = null;
  error: ErrorCode | null = null;
  conn: UpstreamConnection | null = null;
  /** onBody answers false (a slow client) until resumed */
  hold = false;
  /** onUpstreamDrain calls: the node took buffered request body bytes */
  drains = 0;
  readonly done: Promise<void>;
  #resolve!: () => void;
  constructor(method: string, path: string, opts: { body?: boolean; te?: boolean; headers?: string } = {}) {
    this.requestHead = `${method} ${path} HTTP/1.1\r\nhost: upstream.test\r\n${opts.headers ?? ''}${opts.body ? 'transfer-encoding: chunked\r\n' : ''}\r\n`;
    this.requestBodyKind = opts.body ? BODY_CHUNKED : BODY_NONE;
    this.acceptsTrailers = opts.te ?? false;
    this.done = new Promise((r) => (this.#resolve = r));
  }
  get body(): Buffer {
    return Buffer.concat(this.chunks);
  }
  onConnected(conn: UpstreamConnection): void {
    this.conn = conn;
    if (this.requestBodyKind === BODY_NONE) conn.endBody();
  }
  onHead(status: number, headers: ForwardedHeaders): void {
    this.status = status;
    this.head = [...headers.list()];
  }
  onBody(chunk: Buffer): boolean {
    this.chunks.push(Buffer.from(chunk));
    return !this.hold;
  }
  onTrailers(list: readonly string[]): void {
    this.trailers = [...list];
  }
  onEnd(): void {
    this.#resolve();
  }
  onUpstreamDrain(): void {
    this.drains++;
  }
  onError(code: ErrorCode): void {
    this.error = code;
    this.#resolve();
  }
  batch(fn: () => void): void {
    fn();
  }
}

function pool(u: H2Upstream, opts: { connections?: number; maxConcurrentStreams?: number } = {}): H2NodePool {
  const url = new URL(u.url);
  const node: PlanNode = { url: u.url, tls: false, host: url.hostname, port: Number(url.port), authority: url.host, weight: 1 };
  const plan = { connections: opts.connections ?? 4, maxConcurrentStreams: opts.maxConcurrentStreams ?? 100, keepAliveMs: 4000, connectTimeoutMs: 2000, tls: null, protocol: 'h2c' } as unknown as PlanUpstream;
  return new H2NodePool(node, plan);
}

let up: H2Upstream;
let limited: H2Upstream;
const pools: H2NodePool[] = [];
before(async () => {
  up = await startH2Upstream();
  limited = await startH2Upstream({ settings: { maxConcurrentStreams: 3 } });
});
after(() => closeAll(...pools.map((p) => () => p.close()), () => up.close(), () => limited.close()));

function field(list: readonly string[] | null, name: string): string | undefined {
  if (list === null) return undefined;
  for (let i = 0; i < list.length; i += 2) if (list[i] === name) return list[i + 1];
  return undefined;
}

test('a gRPC unary call: te: trailers and the request head reach the node, the reply and its grpc-status trailers come back', async () => {
  const p = pool(up);
  pools.push(p);
  const call = new Call('POST', '/grpc/unary', { body: true, te: true, headers: 'content-type: application/grpc\r\nconnection: keep-alive\r\nkeep-alive: 5\r\n' });
  p.dispatch(call);
  call.conn!.writeBody(grpcFrame('hello'));
  call.conn!.endBody();
  await call.done;
  assert.equal(call.error, null);
  assert.equal(call.status, 200);
  assert.equal(field(call.head, 'content-type'), 'application/grpc');
  assert.equal(field(call.head, 'x-seen-te'), 'trailers');
  assert.deepEqual(grpcMessages(call.body), ['echo:hello']);
  assert.equal(field(call.trailers, 'grpc-status'), '0');
  assert.equal(field(call.trailers, 'grpc-message'), 'OK');
});

test('pseudo-headers are built from the request, connection-specific fields are dropped, TE only when the client sent trailers', async () => {
  const p = pool(up);
  pools.push(p);
  const call = new Call('GET', '/echo?x=1', { headers: 'connection: keep-alive\r\nkeep-alive: 5\r\nx-custom: yes\r\n' });
  p.dispatch(call);
  await call.done;
  const seen = JSON.parse(call.body.toString()) as { headers: Record<string, string> };
  assert.equal(seen.headers[':method'], 'GET');
  assert.equal(seen.headers[':path'], '/echo?x=1');
  assert.equal(seen.headers[':scheme'], 'http');
  assert.equal(seen.headers[':authority'], 'upstream.test');
  assert.equal(seen.headers['x-custom'], 'yes');
  for (const f of ['connection', 'keep-alive', 'host', 'te', 'transfer-encoding']) assert.equal(seen.headers[f], undefined, f);
});

test('a server-streaming call: every message in order, then the trailers', async () => {
  const p = pool(up);
  pools.push(p);
  const call = new Call('POST', '/grpc/stream?n=5', { te: true, headers: 'content-type: application/grpc\r\n' });
  p.dispatch(call);
  await call.done;
  assert.deepEqual(grpcMessages(call.body), ['message 0', 'message 1', 'message 2', 'message 3', 'message 4']);
  assert.equal(field(call.trailers, 'grpc-status'), '0');
});

test('a trailers-only gRPC error arrives as response headers (grpc-status in the head, no body)', async () => {
  const p = pool(up);
  pools.push(p);
  const call = new Call('POST', '/grpc/not-found', { te: true });
  p.dispatch(call);
  await call.done;
  assert.equal(field(call.head, 'grpc-status'), '5');
  assert.equal(field(call.head, 'grpc-message'), 'no such thing');
  assert.equal(call.body.length, 0);
});

test('a request body streamed in pieces arrives whole (client streaming)', async () => {
  const p = pool(up);
  pools.push(p);
  const call = new Call('POST', '/echo', { body: true });
  p.dispatch(call);
  const hash = createHash('sha256');
  let total = 0;
  for (let i = 0; i < 40; i++) {
    const piece = Buffer.alloc(32 * 1024, i);
    hash.update(piece);
    total += piece.length;
    call.conn!.writeBody(piece);
    if (i % 10 === 0) await sleep(5);
  }
  call.conn!.endBody();
  await call.done;
  const seen = JSON.parse(call.body.toString()) as { bodyLength: number; sha256: string };
  assert.equal(seen.bodyLength, total);
  assert.equal(seen.sha256, hash.digest('hex'));
});

test('many concurrent requests share one session; POSTs with streamed bodies multiplex too', async () => {
  const p = pool(up, { connections: 1, maxConcurrentStreams: 100 });
  pools.push(p);
  const before = up.sessions;
  const calls = Array.from({ length: 30 }, (_, i) => new Call(i % 2 ? 'POST' : 'GET', '/slow?ms=150', { body: i % 2 === 1 }));
  for (const c of calls) {
    p.dispatch(c);
    if (c.requestBodyKind !== BODY_NONE) c.conn!.writeBody(Buffer.from('x'));
  }
  for (const c of calls) if (c.requestBodyKind !== BODY_NONE) c.conn!.endBody();
  await Promise.all(calls.map((c) => c.done));
  assert.ok(calls.every((c) => c.status === 200), calls.map((c) => c.error).join());
  assert.equal(up.sessions - before, 1);
  // all 30 were open at once on that one session: streams, not a queue
  assert.ok(up.peakStreams >= 30, `peak ${up.peakStreams}`);
});

test('the configured stream limit opens a second session; the node\'s SETTINGS limit is respected', async () => {
  const p = pool(up, { connections: 4, maxConcurrentStreams: 5 });
  pools.push(p);
  const before = up.sessions;
  const calls = Array.from({ length: 10 }, () => new Call('GET', '/slow?ms=150'));
  for (const c of calls) p.dispatch(c);
  await Promise.all(calls.map((c) => c.done));
  assert.ok(calls.every((c) => c.status === 200));
  assert.equal(up.sessions - before, 2);

  // the node allows 3 streams per session, and the pool may open one session: the rest wait their turn
  const q = pool(limited, { connections: 1, maxConcurrentStreams: 100 });
  pools.push(q);
  const first = new Call('GET', '/slow?ms=10');
  q.dispatch(first);
  await first.done; // the node's SETTINGS are known from here on
  const more = Array.from({ length: 9 }, () => new Call('GET', '/slow?ms=100'));
  for (const c of more) q.dispatch(c);
  await Promise.all(more.map((c) => c.done));
  assert.ok(more.every((c) => c.status === 200), more.map((c) => c.error).join());
  assert.equal(limited.sessions, 1);
  assert.ok(limited.peakStreams <= 3, `peak ${limited.peakStreams}`);
});

test('a slow reader holds the node back through HTTP/2 flow control (backpressure), then gets every byte', async () => {
  const p = pool(up);
  pools.push(p);
  const call = new Call('GET', '/big?mb=16');
  call.hold = true;
  p.dispatch(call);
  assert.ok(await waitFor(() => call.chunks.length > 0, 5000));
  await sleep(300);
  // paused: the node could hand over only what the stream and session windows take, far from 16 MiB
  assert.ok(up.bigSent < 8 * 1024 * 1024, `the node wrote ${up.bigSent} bytes to a paused stream`);
  call.hold = false;
  call.conn!.resume();
  await call.done;
  assert.equal(call.body.length, 16 * 1024 * 1024);
});

test('a reset before the answer, and a GOAWAY with the request in flight, are NG_ERR_UPSTREAM_RESET; after the head, a bad response', async () => {
  const p = pool(up);
  pools.push(p);
  const reset = new Call('GET', '/reset');
  const goaway = new Call('GET', '/goaway');
  const mid = new Call('GET', '/reset-mid');
  p.dispatch(reset);
  await reset.done;
  assert.equal(reset.error, 'NG_ERR_UPSTREAM_RESET');
  p.dispatch(goaway);
  await goaway.done;
  assert.equal(goaway.error, 'NG_ERR_UPSTREAM_RESET');
  p.dispatch(mid);
  await mid.done;
  assert.equal(mid.status, 200);
  assert.equal(mid.error, 'NG_ERR_UPSTREAM_BAD_RESPONSE');
  // the pool goes on with a new session after the GOAWAY
  const ok = new Call('GET', '/health');
  p.dispatch(ok);
  await ok.done;
  assert.equal(ok.status, 200);
  assert.equal(p.inFlight, 0);
});

test('a node that is not listening is NG_ERR_UPSTREAM_CONNECT', async () => {
  const dead = await startH2Upstream();
  await dead.close();
  const p = pool(dead);
  pools.push(p);
  const call = new Call('GET', '/health');
  p.dispatch(call);
  await call.done;
  assert.equal(call.error, 'NG_ERR_UPSTREAM_CONNECT');
});

test('a request head HTTP/2 cannot carry (Content-Type twice, a single-value field in node:http2) is a 400-class error, never a throw', async () => {
  const p = pool(up);
  pools.push(p);
  for (const extra of ['content-type: a/b\r\ncontent-type: c/d\r\n', 'user-agent: a\r\nuser-agent: b\r\n']) {
    const call = new Call('GET', '/echo', { headers: extra });
    p.dispatch(call);
    await call.done;
    assert.equal(call.error, 'NG_ERR_REQUEST_BAD_HEADER', JSON.stringify(extra));
  }
  assert.equal(p.inFlight, 0);
  const ok = new Call('GET', '/health');
  p.dispatch(ok);
  await ok.done;
  assert.equal(ok.status, 200);
});

test('a node that does not read the request body holds the sender back (writeBody false), then drains it', async () => {
  const p = pool(up);
  pools.push(p);
  const call = new Call('POST', '/late-read?ms=400', { body: true });
  p.dispatch(call);
  const piece = Buffer.alloc(64 * 1024, 1);
  let written = 0;
  let refused = false;
  // the stream's flow-control window (64 KiB by default) and its write buffer fill long before 16 MiB
  while (written < 16 * 1024 * 1024) {
    written += piece.length;
    if (!call.conn!.writeBody(piece)) {
      refused = true;
      break;
    }
  }
  assert.ok(refused, 'writeBody never asked the sender to wait');
  assert.ok(written < 4 * 1024 * 1024, `${written} bytes taken before the first refusal`);
  assert.ok(await waitFor(() => call.drains > 0, 5000), 'no drain once the node read');
  call.conn!.endBody();
  await call.done;
  assert.equal(call.body.toString(), String(written));
});

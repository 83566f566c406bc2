import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest, type Server } from 'node:http';
import { connect as http2connect, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCa, makeLeaf, type TestCa } from '../helpers/certs.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { assertProblem, closeAll, send, waitFor } from '../helpers/http.js';
import { runCli } from '../helpers/cli.js';
import { grpcFrame, grpcMessages, startH2Upstream, type H2Upstream } from '../helpers/h2-upstream.js';

/**
 * Through a real gateway to real HTTP/2 upstreams: h2 over TLS with a private CA, h2c in the clear. The client side is
 * the uWS listener (HTTP/1.1), so gRPC here is the upstream half: what the node gets, what the client gets, and what
 * happens to trailers this listener cannot send.
 */

let dir: string;
let ca: TestCa;
let tlsUp: H2Upstream;
let h2c: H2Upstream;
let limited: H2Upstream;
let g: TestGateway;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nanogate-h2-'));
  ca = makeCa(dir, 'ca');
  const leaf = makeLeaf(dir, 'upstream', ca, ['upstream.test']);
  tlsUp = await startH2Upstream({ tls: leaf });
  h2c = await startH2Upstream();
  limited = await startH2Upstream({ settings: { maxConcurrentStreams: 2 } });
  g = await startGateway(`
upstreams:
  secure:
    protocol: h2
    nodes: [{ url: https://127.0.0.1:${tlsUp.port} }]
    tls: { ca: ${ca.cert}, servername: upstream.test }
  clear:
    protocol: h2c
    connections: 1
    nodes: [{ url: ${h2c.url} }]
  limited:
    protocol: h2c
    connections: 1
    nodes: [{ url: ${limited.url} }]
routes:
  - { name: secure, match: { prefix: /s }, upstream: secure, stripPrefix: true }
  - { name: limited, match: { prefix: /l }, upstream: limited, stripPrefix: true }
  - { name: clear, match: { prefix: / }, upstream: clear }
`);
});
after(() => closeAll(() => g?.stop(), () => tlsUp?.close(), () => h2c?.close(), () => limited?.close()));

test('h2 over TLS (ALPN, private CA): the request head, a streamed request body and a large streamed response cross intact', async () => {
  const r = await send(g.port, { path: '/s/echo?q=1', headers: { 'x-custom': 'yes', connection: 'keep-alive' } });
  assert.equal(r.status, 200, r.text);
  const seen = JSON.parse(r.text) as { headers: Record<string, string> };
  assert.equal(seen.headers[':scheme'], 'https');
  assert.equal(seen.headers[':path'], '/echo?q=1');
  assert.equal(seen.headers[':method'], 'GET');
  assert.equal(seen.headers['x-custom'], 'yes');
  assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
  assert.equal(seen.headers.connection, undefined);

  // 3 MiB sent chunked by the client, streamed through
  const body = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < body.length; i++) body[i] = i * 7;
  const posted = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: g.port, method: 'POST', path: '/s/echo', agent: false, headers: { 'transfer-encoding': 'chunked' } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, text }));
    });
    req.on('error', reject);
    for (let at = 0; at < body.length; at += 256 * 1024) req.write(body.subarray(at, at + 256 * 1024));
    req.end();
  });
  assert.equal(posted.status, 200);
  const echoed = JSON.parse(posted.text) as { bodyLength: number; sha256: string };
  assert.equal(echoed.bodyLength, body.length);
  assert.equal(echoed.sha256, createHash('sha256').update(body).digest('hex'));

  const big = await send(g.port, { path: '/s/big?mb=8', timeoutMs: 20_000 });
  assert.equal(big.status, 200);
  assert.equal(big.body.length, 8 * 1024 * 1024);
});

test('h2c: 40 concurrent client connections go over one upstream session (connections: 1)', async () => {
  const before = h2c.sessions;
  const results = await Promise.all(Array.from({ length: 40 }, () => send(g.port, { path: '/slow?ms=200' })));
  assert.ok(results.every((r) => r.status === 200 && r.text === 'slow'), results.map((r) => r.status).join());
  assert.ok(h2c.sessions - before <= 1, `${h2c.sessions - before} sessions`);
  assert.ok(h2c.peakStreams > 1, 'the requests were multiplexed');
});

test("the node's stream limit (SETTINGS_MAX_CONCURRENT_STREAMS 2) is respected: requests wait their turn, none fail", async () => {
  await send(g.port, { path: '/l/health' }); // the session and its SETTINGS are up
  const results = await Promise.all(Array.from({ length: 8 }, () => send(g.port, { path: '/l/slow?ms=100' })));
  assert.ok(results.every((r) => r.status === 200), results.map((r) => r.status).join());
  assert.equal(limited.sessions, 1);
  assert.ok(limited.peakStreams <= 2, `peak ${limited.peakStreams}`);
});

test('an upstream RST_STREAM or GOAWAY before the answer is a 502 NG_ERR_UPSTREAM_RESET with nothing internal', async () => {
  for (const path of ['/reset', '/goaway']) {
    const r = await send(g.port, { path });
    const body = assertProblem(r, 502, 'NG_ERR_UPSTREAM_RESET');
    assert.doesNotMatch(String(body.detail), /127\.0\.0\.1|RST|GOAWAY/);
  }
  // after the GOAWAY the upstream is reached again on a new session
  assert.equal((await send(g.port, { path: '/health' })).status, 200);
});

test('a reset after the head cuts the client connection (an incomplete response, never a complete-looking one)', async () => {
  await assert.rejects(send(g.port, { path: '/reset-mid' }));
});

test('gRPC unary and server-streaming calls: te: trailers and application/grpc reach the node, the messages come back', async () => {
  const grpc = { 'content-type': 'application/grpc', te: 'trailers', connection: 'te' };
  const unary = await send(g.port, { method: 'POST', path: '/grpc/unary', headers: grpc, body: grpcFrame('ping') });
  assert.equal(unary.status, 200);
  assert.equal(unary.headers['content-type'], 'application/grpc');
  assert.equal(unary.headers['x-seen-te'], 'trailers');
  assert.deepEqual(grpcMessages(unary.body), ['echo:ping']);

  const stream = await send(g.port, { method: 'POST', path: '/grpc/stream?n=4', headers: grpc, body: Buffer.alloc(0) });
  assert.equal(stream.status, 200);
  assert.deepEqual(grpcMessages(stream.body), ['message 0', 'message 1', 'message 2', 'message 3']);

  // without te: trailers from the client, the node is not told either
  const plain = await send(g.port, { method: 'POST', path: '/grpc/unary', headers: { 'content-type': 'application/grpc' }, body: grpcFrame('x') });
  assert.equal(plain.headers['x-seen-te'], '');
});

test('on the uWS listener a gRPC failure in trailers cuts the response; a trailers-only error passes as headers', async () => {
  const grpc = { 'content-type': 'application/grpc', te: 'trailers', connection: 'te' };
  await assert.rejects(send(g.port, { method: 'POST', path: '/grpc/fail', headers: grpc, body: grpcFrame('x') }));
  const notFound = await send(g.port, { method: 'POST', path: '/grpc/not-found', headers: grpc, body: grpcFrame('x') });
  assert.equal(notFound.status, 200);
  assert.equal(notFound.headers['grpc-status'], '5');
  assert.equal(notFound.headers['grpc-message'], 'no such thing');
});

test('health checks speak the upstream protocol: a node that only speaks HTTP/1.1 fails an h2c check and gets no traffic', async () => {
  const h1: Server = createHttpServer((_req, res) => res.end('h1 only'));
  await new Promise<void>((r) => h1.listen(0, '127.0.0.1', r));
  const h1Port = (h1.address() as AddressInfo).port;
  const gw = await startGateway(`
upstreams:
  mixed:
    protocol: h2c
    nodes: [{ url: http://127.0.0.1:${h1Port} }, { url: ${h2c.url} }]
    healthCheck: { path: /health, intervalMs: 200, timeoutMs: 150, healthyThreshold: 1, unhealthyThreshold: 1 }
routes:
  - { name: all, match: { prefix: / }, upstream: mixed }
`);
  try {
    type View = { nodes: { url: string; health: string }[] };
    let view: View | null = null;
    for (let i = 0; i < 100; i++) {
      const r = await fetch(`${gw.adminUrl}/upstreams/mixed`);
      view = (await r.json()) as View;
      if (view.nodes?.[0]?.health === 'unhealthy' && view.nodes[1].health === 'healthy') break;
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.equal(view?.nodes[0].health, 'unhealthy', JSON.stringify(view));
    assert.equal(view?.nodes[1].health, 'healthy', JSON.stringify(view));
    const results = [];
    for (let i = 0; i < 10; i++) results.push(await send(gw.port, { path: '/health' }));
    assert.ok(results.every((r) => r.status === 200 && r.text === 'ok'), results.map((r) => `${r.status} ${r.text.slice(0, 60)}`).join(' | '));
  } finally {
    await closeAll(() => gw.stop(), () => new Promise((r) => h1.close(r)));
  }
});

test('validate refuses protocol h2 on an http:// node and h2c on an https:// node, naming the path', async () => {
  const file = join(dir, 'bad.yaml');
  writeFileSync(
    file,
    `upstreams:
  a: { protocol: h2, nodes: [{ url: http://127.0.0.1:1 }] }
  b: { protocol: h2c, nodes: [{ url: https://127.0.0.1:2 }] }
routes:
  - { name: a, match: { prefix: /a }, upstream: a }
  - { name: b, match: { prefix: /b }, upstream: b }
`,
  );
  const r = await runCli(['validate', file]);
  assert.notEqual(r.code, 0);
  const out = r.stdout + r.stderr;
  assert.match(out, /upstreams\.a\.nodes\[0\]\.url/);
  assert.match(out, /protocol h2 needs https:\/\/ nodes/);
  assert.match(out, /upstreams\.b\.nodes\[0\]\.url/);
  assert.match(out, /protocol h2c needs http:\/\/ nodes/);
});

// ------------------------------------------------------------------------------------------------ gRPC end to end

/** One call from a node:http2 client: status, head, body and trailers as received. */
function h2call(session: ClientHttp2Session, path: string, body: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; head: IncomingHttpHeaders; body: Buffer; trailers: IncomingHttpHeaders | null }> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers });
    let head: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | null = null;
    const chunks: Buffer[] = [];
    req.on('response', (h) => (head = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ status: Number(head[':status']), head, body: Buffer.concat(chunks), trailers }));
    req.on('error', reject);
    req.end(body);
  });
}

test('gRPC through the HTTP/2 listener: unary, server-streaming and failing calls keep their grpc-status trailers end to end', async () => {
  const gw = await startGateway(
    `
upstreams:
  grpc: { protocol: h2c, nodes: [{ url: ${h2c.url} }] }
routes:
  - { name: grpc, match: { prefix: / }, upstream: grpc }
`,
    { listen: '{ host: 127.0.0.1, port: 0, http2: { port: 0, h2c: true } }' },
  );
  const session = http2connect(`http://127.0.0.1:${gw.gateway.http2Port}`);
  session.on('error', () => {});
  try {
    const unary = await h2call(session, '/grpc/unary', grpcFrame('ping'));
    assert.equal(unary.status, 200);
    assert.equal(unary.head['content-type'], 'application/grpc');
    assert.equal(unary.head['x-seen-te'], 'trailers');
    assert.deepEqual(grpcMessages(unary.body), ['echo:ping']);
    assert.equal(unary.trailers?.['grpc-status'], '0');
    assert.equal(unary.trailers?.['grpc-message'], 'OK');

    const streamed = await h2call(session, '/grpc/stream?n=6', Buffer.alloc(0));
    assert.deepEqual(grpcMessages(streamed.body), [0, 1, 2, 3, 4, 5].map((i) => `message ${i}`));
    assert.equal(streamed.trailers?.['grpc-status'], '0');

    const failed = await h2call(session, '/grpc/fail', grpcFrame('x'));
    assert.deepEqual(grpcMessages(failed.body), ['partial']);
    assert.equal(failed.trailers?.['grpc-status'], '13');
    assert.equal(failed.trailers?.['grpc-message'], 'backend exploded');

    // client streaming: the messages leave the client one by one, with pauses, and reach the node as one stream
    const collected = await new Promise<{ body: Buffer; trailers: IncomingHttpHeaders | null }>((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': '/grpc/collect', 'content-type': 'application/grpc', te: 'trailers' });
      const chunks: Buffer[] = [];
      let trailers: IncomingHttpHeaders | null = null;
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('trailers', (t) => (trailers = t));
      req.on('end', () => resolve({ body: Buffer.concat(chunks), trailers }));
      req.on('error', reject);
      let i = 0;
      const next = () => {
        if (i === 5) return void req.end();
        req.write(grpcFrame(`part${i++}`));
        setTimeout(next, 20);
      };
      next();
    });
    assert.deepEqual(grpcMessages(collected.body), ['part0+part1+part2+part3+part4']);
    assert.equal(collected.trailers?.['grpc-status'], '0');

    const notFound = await h2call(session, '/grpc/not-found', grpcFrame('x'));
    assert.equal(notFound.head['grpc-status'], '5');

    // many calls at once on the one client connection
    const many = await Promise.all(Array.from({ length: 20 }, (_, i) => h2call(session, '/grpc/unary', grpcFrame(`n${i}`))));
    assert.deepEqual(many.map((m) => grpcMessages(m.body)[0]), many.map((_, i) => `echo:n${i}`));
    assert.ok(many.every((m) => m.trailers?.['grpc-status'] === '0'));
  } finally {
    session.close();
    await gw.stop();
  }
});

test('on the uWS listener a gRPC failure lost with its trailers is logged as NG_ERR_UPSTREAM_TRAILERS_LOST; a success is not an error', async () => {
  const log = join(dir, 'access.log');
  const gw = await startGateway(`
observability:
  accessLog: { destination: { type: file, path: ${log}, flushMs: 20 } }
policies: { accessLog: {} }
upstreams:
  grpc: { protocol: h2c, nodes: [{ url: ${h2c.url} }] }
routes:
  - { name: grpc, match: { prefix: / }, upstream: grpc }
`);
  try {
    const grpc = { 'content-type': 'application/grpc', te: 'trailers', connection: 'te' };
    await assert.rejects(send(gw.port, { method: 'POST', path: '/grpc/fail', headers: grpc, body: grpcFrame('x') }));
    assert.equal((await send(gw.port, { method: 'POST', path: '/grpc/unary', headers: grpc, body: grpcFrame('y') })).status, 200);
    const lines = () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) : []);
    assert.ok(await waitFor(() => lines().length >= 2, 5000), 'two access-log lines');
    const byPath = new Map(lines().map((l) => [String(l['url.path']), l]));
    assert.equal(byPath.get('/grpc/fail')?.['error.type'], 'NG_ERR_UPSTREAM_TRAILERS_LOST', JSON.stringify([...byPath.values()]));
    assert.equal(byPath.get('/grpc/unary')?.['error.type'], undefined);
  } finally {
    await gw.stop();
  }
});

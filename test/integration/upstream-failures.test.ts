import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { closedPort, startRawUpstream, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startWatchedUpstream, type WatchedUpstream } from '../helpers/watched-upstream.js';
import { RawClient } from '../helpers/raw-client.js';
import { assertProblem, closeAll, send, waitFor } from '../helpers/http.js';
import { scrape } from '../helpers/prometheus.js';

/**
 * When the upstream side goes wrong: refused connections, silence, a dead node among live ones, clients that leave
 * mid-request, and upstreams that answer with hostile framing. Errors the gateway produces are problem+json with a
 * stable code; a broken response is never passed on as if it were whole, and never followed by smuggled bytes.
 */

/** Every test and hook here has a bound, so a gateway that stops answering fails the file instead of hanging it. */
const T = { timeout: 30_000 };

let refusedPort: number;
let good: TestUpstream;
let slow: WatchedUpstream;
let hold: WatchedUpstream;
let hostile: Awaited<ReturnType<typeof startRawUpstream>>;
/** sockets the hostile upstream has accepted, to tell a reused connection from a fresh one */
const hostileSockets = new Set<Socket>();
let gw: TestGateway;

const HOSTILE: Record<string, string | ((s: Socket) => void)> = {
  '/two-lengths': 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!',
  '/length-and-chunked':
    'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled',
  '/bad-chunk-size': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nsmuggled\r\n0\r\n\r\n',
  '/chunk-size-overflow': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nsmuggled\r\n0\r\n\r\n',
  '/gzip-coding': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nsmuggled',
  '/bad-length': 'HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello',
  '/obs-fold': 'HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok',
  '/space-before-colon': 'HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok',
  '/nul-in-value': 'HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\nok',
  '/garbage': 'NOT HTTP AT ALL\r\n\r\n',
  '/bad-status': 'HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok',
  '/extra-bytes': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled',
  '/close-before-response': (s) => s.end(),
  '/close-mid-body': (s) => {
    s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part');
    setTimeout(() => s.destroy(), 50);
  },
  '/bad-chunk-later': (s) => {
    s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
    setTimeout(() => s.write('zz\r\nsmuggled\r\n0\r\n\r\n'), 100);
  },
  '/ok': 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nclean',
};

before(async () => {
  refusedPort = await closedPort();
  good = await startUpstream((req, res) => res.end('good'));
  slow = await startWatchedUpstream((req, res) => {
    if (req.url === '/slow') return; // never answers
    if (req.url === '/slow/body') {
      res.writeHead(200, { 'content-length': '10' });
      res.write('part');
      return; // the rest never comes
    }
    res.end('fast');
  });
  hold = await startWatchedUpstream((req, res) => {
    if (req.url === '/download') {
      // writes until the reader goes away (bounded), honouring backpressure
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 7);
      let left = 4096; // at most 256 MiB
      const pump = () => {
        while (left-- > 0 && !res.destroyed) if (!res.write(chunk)) return void res.once('drain', pump);
        if (!res.destroyed) res.end();
      };
      pump();
      return;
    }
    req.resume(); // reads any body, answers never
  });
  hostile = await startRawUpstream((socket, head) => {
    hostileSockets.add(socket);
    const answer = HOSTILE[head.split(' ')[1]];
    if (typeof answer === 'function') answer(socket);
    else if (answer !== undefined) socket.write(answer);
  });
  gw = await startGateway(`
upstreams:
  refused: { nodes: [{ url: http://127.0.0.1:${refusedPort} }] }
  half: { nodes: [{ url: http://127.0.0.1:${refusedPort} }, { url: ${good.url} }] }
  slow: { nodes: [{ url: ${slow.url} }] }
  hold: { nodes: [{ url: ${hold.url} }] }
  hostile: { nodes: [{ url: ${hostile.url} }] }
routes:
  - { name: refused, match: { prefix: /refused }, upstream: refused }
  - { name: half, match: { prefix: /half }, upstream: half }
  - { name: slow, match: { prefix: /slow }, upstream: slow, timeouts: { readMs: 300 } }
  - { name: hold, match: { prefix: / }, upstream: hold }
  - { name: hostile, match: { prefix: /h }, upstream: hostile, stripPrefix: true }
`);
}, T);

after(() => closeAll(() => gw?.stop(), () => good?.close(), () => slow?.close(), () => hold?.close(), () => hostile?.close()), T);

// ------------------------------------------------------------------------------------------------ connect and timeouts

test('connection refused: 502 NG_ERR_UPSTREAM_CONNECT', T, async () => {
  const res = await send(gw.port, { path: '/refused/x' });
  const body = assertProblem(res, 502, 'NG_ERR_UPSTREAM_CONNECT');
  assert.doesNotMatch(String(body.detail ?? ''), /ECONNREFUSED.*\n|at /, 'no internals');
});

test('a slow upstream: 504 NG_ERR_UPSTREAM_TIMEOUT, and the upstream request is abandoned', T, async () => {
  const started = Date.now();
  const res = await send(gw.port, { path: '/slow' });
  assertProblem(res, 504, 'NG_ERR_UPSTREAM_TIMEOUT');
  // deadlines run on a coarse per-worker clock, so only a gross early answer counts as wrong here
  assert.ok(Date.now() - started >= 100, `answered after ${Date.now() - started} ms, long before readMs (300)`);
  assert.ok(await waitFor(() => slow.arrivals.at(-1)!.abandoned, 2000), 'the upstream request was left open');
});

test('an upstream that stalls mid-body: the client connection is cut, never a short response passed as whole', T, async () => {
  const c = await RawClient.connect(gw.port);
  try {
    c.send('GET /slow/body HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.ok(await c.waitClosed(3000), 'the client connection was left open');
    // whatever arrived must still announce 10 bytes, so the client knows it got a short body
    assert.match(c.pending, /^HTTP\/1\.1 200 /);
    assert.match(c.pending, /content-length: 10\r\n/i);
    await assert.rejects(c.readResponse({ timeoutMs: 100 }), Error, 'the client got a complete response');
  } finally {
    c.close();
  }
});

test('with two nodes where one refuses, every request succeeds', T, async () => {
  for (let i = 0; i < 12; i++) {
    const res = await send(gw.port, { path: `/half/${i}` });
    assert.equal(res.status, 200, `request ${i}: ${res.text}`);
    assert.equal(res.text, 'good');
  }
  for (let i = 0; i < 4; i++) {
    const res = await send(gw.port, { method: 'POST', path: `/half/post/${i}`, body: 'x'.repeat(1000) });
    assert.equal(res.status, 200, `POST ${i}: ${res.text}`);
  }
  // and the refusing node was really tried: the successes are retries, not a balancer that never picked it. Every
  // attempt counts at its node; the first refusal ejected it, so it is out of rotation now.
  const m = await scrape(gw.adminUrl);
  assert.ok(m.sum('nanogate_upstream_failures_total', { upstream: 'half', node: `127.0.0.1:${refusedPort}`, kind: 'connect' }) >= 1, 'no request was ever sent to the refusing node');
  assert.equal(m.sum('nanogate_upstream_node_ejected', { upstream: 'half', node: `127.0.0.1:${refusedPort}` }), 1);
});

// ------------------------------------------------------------------------------------------------ clients that leave

test('a client that goes away while the upstream is thinking: the upstream request is aborted, no socket leaks', T, async () => {
  const before = hold.arrivals.length;
  const c = await RawClient.connect(gw.port);
  c.send('GET /think HTTP/1.1\r\nHost: a\r\n\r\n');
  assert.ok(await waitFor(() => hold.arrivals.length > before), 'the request never reached the upstream');
  const open = hold.openSockets();
  c.close();
  assert.ok(await waitFor(() => hold.arrivals.at(-1)!.abandoned, 3000), 'the upstream request was not aborted');
  assert.ok(await waitFor(() => hold.openSockets() < open, 3000), 'the upstream socket of the abandoned request is still open');
});

test('a client that goes away mid-upload: the upstream request is aborted, no socket leaks', T, async () => {
  const before = hold.arrivals.length;
  const c = await RawClient.connect(gw.port);
  // Larger than requestBody.bufferBytes (1 MiB), so the body streams and the upstream request is under way.
  c.send(`POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: ${4 * 1024 * 1024}\r\n\r\n`);
  c.send(Buffer.alloc(100_000, 1));
  assert.ok(await waitFor(() => hold.arrivals.length > before), 'the request never reached the upstream');
  const open = hold.openSockets();
  c.close();
  assert.ok(await waitFor(() => hold.arrivals.at(-1)!.abandoned, 3000), 'the upstream request was not aborted');
  assert.ok(await waitFor(() => hold.openSockets() < open, 3000), 'the upstream socket of the abandoned request is still open');
});

test('a client that goes away mid-download: the upstream response is abandoned, no socket leaks', T, async () => {
  const before = hold.arrivals.length;
  const c = await RawClient.connect(gw.port);
  c.send('GET /download HTTP/1.1\r\nHost: a\r\n\r\n');
  assert.ok(await waitFor(() => c.pending.length > 1024 * 1024, 5000), 'the download did not start');
  const open = hold.openSockets();
  c.close();
  assert.equal(hold.arrivals.length, before + 1);
  assert.ok(await waitFor(() => hold.arrivals.at(-1)!.abandoned, 3000), 'the upstream kept sending');
  assert.ok(await waitFor(() => hold.openSockets() < open, 3000), 'the upstream socket of the abandoned request is still open');
});

test('clients that go away before the upstream connection is up: nothing is left open upstream', T, async () => {
  // The request is dispatched while its upstream connection is still being opened; the client's close arrives in
  // the same loop turn, so the gateway learns of it before the connect completes.
  const open = hold.openSockets();
  const before = hold.arrivals.length;
  for (let i = 0; i < 5; i++) {
    const c = await RawClient.connect(gw.port);
    c.send(`POST /early-${i} HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n${'x'.repeat(100_000)}`);
    c.close();
  }
  // give any connect the gateway started time to complete, so a leak has the chance to show
  await sleep(300);
  const settled = await waitFor(() => hold.openSockets() <= open && hold.arrivals.slice(before).every((a) => a.abandoned), 3000);
  const left = hold.arrivals.slice(before).filter((a) => !a.abandoned).map((a) => a.url);
  assert.ok(settled, `${hold.openSockets() - open} upstream socket(s) still open; requests still pending upstream: ${left.join(', ')}`);
});

test('the gateway still serves after clients went away', T, async () => {
  const res = await send(gw.port, { path: '/half/after' });
  assert.equal(res.status, 200);
});

// ------------------------------------------------------------------------------------------------ hostile responses

const BAD_RESPONSES: Array<[string, string]> = [
  ['two different Content-Length fields', '/two-lengths'],
  ['Content-Length together with Transfer-Encoding', '/length-and-chunked'],
  ['an invalid chunk size', '/bad-chunk-size'],
  ['a chunk size too large to be real', '/chunk-size-overflow'],
  ['a transfer coding other than chunked', '/gzip-coding'],
  ['a malformed Content-Length', '/bad-length'],
  ['obsolete line folding', '/obs-fold'],
  ['whitespace before a colon', '/space-before-colon'],
  ['NUL in a field value', '/nul-in-value'],
  ['something that is not HTTP', '/garbage'],
  ['a four-digit status', '/bad-status'],
];
/**
 * What the gateway sends on `c` after the response just read, up to a point that cannot come early: the close of
 * the connection, or the whole next response on it (smuggled bytes would come before it, in order).
 */
async function rest(c: RawClient): Promise<string> {
  c.send('GET /h/ok HTTP/1.1\r\nHost: a\r\n\r\n');
  try {
    return (await c.readResponse({ timeoutMs: 10_000 })).raw + c.pending;
  } catch {
    return c.pending; // closed (the usual end after a bad upstream response): everything sent is here
  }
}

for (const [what, path] of BAD_RESPONSES) {
  test(`an upstream response with ${what}: 502 NG_ERR_UPSTREAM_BAD_RESPONSE, nothing smuggled`, T, async () => {
    const c = await RawClient.connect(gw.port);
    try {
      c.send(`GET /h${path} HTTP/1.1\r\nHost: a\r\n\r\n`);
      const r = await c.readResponse();
      assertProblem(r, 502, 'NG_ERR_UPSTREAM_BAD_RESPONSE');
      assert.doesNotMatch(r.raw + (await rest(c)), /smuggled/);
    } finally {
      c.close();
    }
  });
}

test('an upstream connection that sent a hostile response is never reused', T, async () => {
  // after each hostile answer the next request must arrive on a new connection, or it could read the leftovers
  for (const path of ['/length-and-chunked', '/extra-bytes']) {
    await send(gw.port, { path: `/h${path}` }).catch(() => undefined);
    const used = hostileSockets.size;
    const res = await send(gw.port, { path: '/h/ok' });
    assert.equal(res.status, 200);
    assert.equal(res.text, 'clean', `after ${path}`);
    assert.equal(hostileSockets.size, used + 1, `the request after ${path} reused the connection`);
  }
});

test('bytes after a complete response are not passed to the client as another response', T, async () => {
  const c = await RawClient.connect(gw.port);
  try {
    c.send('GET /h/extra-bytes HTTP/1.1\r\nHost: a\r\n\r\n');
    const r = await c.readResponse();
    assert.equal(r.status, 200);
    assert.equal(r.body, 'ok');
    // a smuggled second response would be read here first, instead of the answer to this request
    c.send('GET /h/ok HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal((await c.readResponse()).body, 'clean');
    assert.equal(c.pending, '');
  } finally {
    c.close();
  }
});

test('an upstream that closes without answering: 502 NG_ERR_UPSTREAM_RESET', T, async () => {
  const res = await send(gw.port, { path: '/h/close-before-response' });
  assertProblem(res, 502, 'NG_ERR_UPSTREAM_RESET');
});

test('an upstream that closes mid-body or breaks chunking later: the client connection is cut, never completed', T, async () => {
  for (const path of ['/close-mid-body', '/bad-chunk-later']) {
    const c = await RawClient.connect(gw.port);
    try {
      c.send(`GET /h${path} HTTP/1.1\r\nHost: a\r\n\r\n`);
      assert.ok(await c.waitClosed(3000), `${path}: the client connection was left open`);
      await assert.rejects(c.readResponse({ timeoutMs: 200 }), Error, `${path}: the client got a complete response`);
      assert.doesNotMatch(c.pending, /smuggled/);
    } finally {
      c.close();
    }
  }
});

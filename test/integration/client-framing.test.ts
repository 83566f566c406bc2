import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startWatchedUpstream, type WatchedUpstream } from '../helpers/watched-upstream.js';
import { RawClient, type ParsedResponse } from '../helpers/raw-client.js';
import { assertNothingInternal, assertProblem, closeAll, waitFor } from '../helpers/http.js';

/**
 * Hostile or malformed client framing, sent as raw bytes. Each request must be refused before anything reaches the
 * upstream: either with a problem+json error from the gateway, or (where uWS's own parser stops it first) with a
 * closed connection and no response. The upstream records each request as soon as its head arrives.
 */

/** Every test and hook here has a bound, so a gateway that stops answering fails the file instead of hanging it. */
const T = { timeout: 30_000 };

let up: WatchedUpstream;
let gw: TestGateway;
let defaults: TestGateway;

before(async () => {
  up = await startWatchedUpstream();
  gw = await startGateway(`
limits: { maxUrlLength: 1024, maxHeaderCount: 20 }
upstreams:
  u: { nodes: [{ url: ${up.url} }] }
routes:
  - { name: small, match: { prefix: /small }, upstream: u, maxBodyBytes: 100 }
  - { name: all, match: { prefix: / }, upstream: u }
`);
  defaults = await startGateway(`
upstreams:
  u: { nodes: [{ url: ${up.url} }] }
routes:
  - { name: all, match: { prefix: / }, upstream: u }
`);
}, T);

after(() => closeAll(() => gw?.stop(), () => defaults?.stop(), () => up?.close()), T);

interface Outcome {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** everything received */
  text: string;
  closed: boolean;
}

/** Sends `bytes` on a fresh connection; returns the response (status 0 if none) and what reached the upstream. */
async function attempt(port: number, bytes: string | Buffer, waitMs = 1000): Promise<{ r: Outcome; reached: string[] }> {
  const before = up.arrivals.length;
  const c = await RawClient.connect(port);
  c.send(bytes);
  let res: ParsedResponse | null = null;
  try {
    res = await c.readResponse({ timeoutMs: waitMs });
  } catch {
    // no complete response: dropped by the parser, or still waiting
  }
  // an answer that announces a close must be followed by one
  const closed = await c.waitClosed(res === null || /close/i.test(res.headers.connection ?? '') ? 1000 : 50);
  const text = (res?.raw ?? '') + c.pending;
  c.close();
  await barrier(port);
  const r = { status: res?.status ?? 0, headers: res?.headers ?? {}, body: res?.body ?? '', text, closed };
  return { r, reached: up.arrivals.slice(before).filter((a) => !a.url.startsWith(BARRIER)).map((a) => `${a.method} ${a.url}`) };
}

const BARRIER = '/barrier-';
let barriers = 0;

/**
 * "Nothing reached the upstream" needs a point after which a request that slipped through would have arrived: not
 * a pause (too short on a loaded machine, and the check then passes for the wrong reason), but a well-formed request
 * sent afterwards through the same gateway and answered by the upstream. A request the gateway dispatched before it
 * was written to the upstream before this one, so its head has been recorded by the time this answer is back.
 */
async function barrier(port: number): Promise<void> {
  const path = `${BARRIER}${++barriers}`;
  const c = await RawClient.connect(port);
  try {
    c.send(`GET ${path} HTTP/1.1\r\nHost: a\r\n\r\n`);
    const res = await c.readResponse({ timeoutMs: 10_000 });
    assert.equal(res.status, 200, `the barrier request was not served: ${res.raw.slice(0, 200)}`);
    assert.ok(up.arrivals.some((a) => a.url === path));
  } finally {
    c.close();
  }
}

/** A gateway refusal: the status and code, problem+json, and the connection closed when framing is in doubt. */
function assertRefused(r: Outcome, status: number, code: string, closes: boolean): void {
  assertProblem(r, status, code);
  if (closes) {
    assert.equal(r.closed, true, 'the connection stayed open after a framing error');
    assert.match(r.headers.connection ?? '', /close/i);
  }
}

const GET = (extra: string, target = '/x') => `GET ${target} HTTP/1.1\r\nHost: a.example\r\n${extra}\r\n`;
const POST = (extra: string, body = '') => `POST /x HTTP/1.1\r\nHost: a.example\r\n${extra}\r\n${body}`;

// ------------------------------------------------------------------------------------------------ answered by the gateway

test('two different Content-Length fields: 400 NG_ERR_REQUEST_BAD_FRAMING, nothing upstream', T, async () => {
  const { r, reached } = await attempt(gw.port, POST('Content-Length: 5\r\nContent-Length: 6\r\n', 'hello!'));
  assertRefused(r, 400, 'NG_ERR_REQUEST_BAD_FRAMING', true);
  assert.deepEqual(reached, []);
});

test('a Content-Length list with differing values: refused, nothing upstream', T, async () => {
  const { r, reached } = await attempt(gw.port, POST('Content-Length: 5, 6\r\n', 'hello!'));
  // the parser may drop it before the gateway sees it; either way the connection must not carry on
  if (r.status !== 0) assertRefused(r, 400, 'NG_ERR_REQUEST_BAD_FRAMING', true);
  else assert.equal(r.closed, true, 'neither answered nor closed');
  assert.deepEqual(reached, []);
});

test('an unsupported Transfer-Encoding: 501 NG_ERR_REQUEST_TRANSFER_CODING, nothing upstream', T, async () => {
  for (const te of ['gzip', 'gzip, chunked', 'identity', 'chunked, chunked']) {
    const { r, reached } = await attempt(gw.port, POST(`Transfer-Encoding: ${te}\r\n`, '0\r\n\r\n'));
    assertRefused(r, 501, 'NG_ERR_REQUEST_TRANSFER_CODING', true);
    assert.deepEqual(reached, [], te);
  }
});

test('more than one Host: 400 NG_ERR_REQUEST_BAD_HEADER, nothing upstream', T, async () => {
  const { r, reached } = await attempt(gw.port, 'GET /x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n');
  assertRefused(r, 400, 'NG_ERR_REQUEST_BAD_HEADER', true);
  assert.deepEqual(reached, []);
});

test('an over-long request target: 414 NG_ERR_REQUEST_URL_TOO_LONG, nothing upstream', T, async () => {
  const { r, reached } = await attempt(gw.port, GET('', `/${'a'.repeat(600)}?q=${'b'.repeat(600)}`));
  assertRefused(r, 414, 'NG_ERR_REQUEST_URL_TOO_LONG', false);
  assert.deepEqual(reached, []);
  const over = await attempt(gw.port, GET('', `/${'a'.repeat(1024)}`));
  assertRefused(over.r, 414, 'NG_ERR_REQUEST_URL_TOO_LONG', false);
  assert.deepEqual(over.reached, []);
});

test('a request target exactly limits.maxUrlLength long is accepted', T, async () => {
  // "longer request targets get 414": 1024 bytes is not longer than 1024
  for (const target of [`/${'a'.repeat(1023)}`, `/${'a'.repeat(1000)}?${'q'.repeat(22)}`]) {
    assert.equal(target.length, 1024);
    const ok = await attempt(gw.port, GET('', target));
    assert.equal(ok.r.status, 200, `${target.length}-byte target with${target.includes('?') ? '' : 'out'} a query: ${ok.r.status}`);
    assert.deepEqual(ok.reached, [`GET ${target}`]);
  }
});

test('a header section over limits.maxHeaderBytes: 431 NG_ERR_REQUEST_HEADERS_TOO_LARGE, nothing upstream', T, async () => {
  // the default limit is 32 KiB
  const { r, reached } = await attempt(defaults.port, GET(`X-Big: ${'a'.repeat(40_000)}\r\n`));
  assertRefused(r, 431, 'NG_ERR_REQUEST_HEADERS_TOO_LARGE', true);
  assert.deepEqual(reached, []);
});

test('more fields than limits.maxHeaderCount: 431 NG_ERR_REQUEST_HEADERS_TOO_LARGE, nothing upstream', T, async () => {
  const fields = Array.from({ length: 25 }, (_, i) => `X-F${i}: v\r\n`).join('');
  const { r, reached } = await attempt(gw.port, GET(fields));
  assertRefused(r, 431, 'NG_ERR_REQUEST_HEADERS_TOO_LARGE', true);
  assert.deepEqual(reached, []);
});

test('a header section within the default limits is proxied (47 fields, 6 KiB)', T, async () => {
  // limits.maxHeaderCount defaults to 48 (the most uWS accepts) and maxHeaderBytes to 32 KiB: this is inside both
  const fields = Array.from({ length: 46 }, (_, i) => `X-F${i}: ${'v'.repeat(120)}\r\n`).join('');
  const { r, reached } = await attempt(defaults.port, GET(fields), 1000);
  assert.equal(r.status, 200, `got ${JSON.stringify(r.text.slice(0, 200))} closed=${r.closed}`);
  assert.deepEqual(reached, ['GET /x']);
});

test('a Content-Length body over the route maxBodyBytes: 413 NG_ERR_REQUEST_BODY_TOO_LARGE, nothing upstream', T, async () => {
  const { r, reached } = await attempt(gw.port, `POST /small HTTP/1.1\r\nHost: a\r\nContent-Length: 200\r\n\r\n${'a'.repeat(200)}`);
  assertRefused(r, 413, 'NG_ERR_REQUEST_BODY_TOO_LARGE', true);
  assert.deepEqual(reached, []);
  // the limit is per route: the same body elsewhere is fine
  const ok = await attempt(gw.port, `POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 200\r\n\r\n${'a'.repeat(200)}`);
  assert.equal(ok.r.status, 200);
});

test('a chunked body over the route maxBodyBytes: 413, nothing upstream, no upstream socket left open', T, async () => {
  // idle keep-alive connections from earlier tests may stay pooled; this request must not add one
  const sockets = up.openSockets();
  const { r, reached } = await attempt(gw.port, `POST /small HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nc8\r\n${'a'.repeat(200)}\r\n0\r\n\r\n`);
  assertRefused(r, 413, 'NG_ERR_REQUEST_BODY_TOO_LARGE', true);
  assert.ok(await waitFor(() => up.openSockets() <= sockets, 2000), `${up.openSockets() - sockets} more upstream socket(s) open`);
  assert.deepEqual(reached, []);
});

test('"." and ".." path segments, plain or percent-encoded: 400 NG_ERR_REQUEST_BAD_PATH, nothing upstream', T, async () => {
  for (const target of ['/a/../b', '/a/./b', '/..', '/a/.', '/a/%2e%2E/b', '/a/%2E/b', '/a/.%2e/b', '/a/..?x=1']) {
    const { r, reached } = await attempt(gw.port, GET('', target));
    assertRefused(r, 400, 'NG_ERR_REQUEST_BAD_PATH', false);
    assert.deepEqual(reached, [], target);
  }
  // dots inside a segment are ordinary characters
  const ok = await attempt(gw.port, GET('', '/a/..b/c.d/...'));
  assert.equal(ok.r.status, 200);
});

test('after a refused request that left framing intact, the connection still serves', T, async () => {
  const c = await RawClient.connect(gw.port);
  try {
    c.send(GET('', '/a/../b'));
    assertProblem(await c.readResponse(), 400, 'NG_ERR_REQUEST_BAD_PATH');
    c.send(GET('', '/fine'));
    assert.equal((await c.readResponse()).status, 200);
  } finally {
    c.close();
  }
});

// ------------------------------------------------------------------------------------------------ stopped by the parser

test('Content-Length together with Transfer-Encoding: dropped or refused, nothing upstream', T, async () => {
  const { r, reached } = await attempt(gw.port, POST('Content-Length: 5\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n'));
  if (r.status !== 0) assertRefused(r, 400, 'NG_ERR_REQUEST_BAD_FRAMING', true);
  else assert.equal(r.closed, true, 'neither answered nor closed');
  assert.deepEqual(reached, []);
});

test('an invalid chunk size: the connection is closed and nothing reaches the upstream', T, async () => {
  const sockets = up.openSockets();
  const { r, reached } = await attempt(gw.port, POST('Transfer-Encoding: chunked\r\n', 'zz\r\nhello\r\n0\r\n\r\n'));
  if (r.status !== 0) assertRefused(r, 400, 'NG_ERR_REQUEST_BAD_FRAMING', true);
  else assert.equal(r.closed, true, 'neither answered nor closed');
  assert.ok(await waitFor(() => up.openSockets() <= sockets, 2000), `${up.openSockets() - sockets} more upstream socket(s) open`);
  assert.deepEqual(reached, []);
});

// uWS's parser stops these without a response and closes the connection only at its idle timeout (about 10 s), so
// they run side by side.
const SILENT: Array<[string, string]> = [
  ['CR inside a field value', GET('X-A: a\rb\r\n')],
  ['LF inside a field value', GET('X-A: a\nX-Injected: 1\r\n')],
  ['NUL inside a field value', GET('X-A: a\0b\r\n')],
  ['NUL inside a field name', GET('X\0A: b\r\n')],
  ['CR inside a field name', GET('X\rA: b\r\n')],
  ['whitespace between a field name and the colon', GET('X-A : b\r\n')],
  ['no Host', 'GET /x HTTP/1.1\r\nX-A: b\r\n\r\n'],
];
describe('requests the parser refuses without a response', { concurrency: true }, () => {
  for (const [what, bytes] of SILENT) {
    test(`${what}: no response but an error, the connection closes, nothing upstream`, T, async () => {
      const before = up.arrivals.length;
      const c = await RawClient.connect(gw.port);
      try {
        c.send(bytes);
        // a follow-up request on the same connection must not be read as a fresh start either
        c.send(GET('', '/after-bad'));
        assert.ok(await c.waitClosed(20_000), 'the connection stayed open');
        if (c.pending !== '') {
          const res = await c.readResponse();
          assert.equal(res.status, 400, `answered ${res.status}`);
          assertNothingInternal(res.body);
        }
        assert.doesNotMatch(c.pending, /HTTP\/1\.1 200/);
        assert.deepEqual(
          up.arrivals.slice(before).filter((a) => a.url === '/x' || a.url === '/after-bad'),
          [],
        );
      } finally {
        c.close();
      }
    });
  }
});

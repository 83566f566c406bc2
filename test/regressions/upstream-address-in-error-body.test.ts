import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { closedPort } from '../helpers/upstream.js';
import { startWatchedUpstream, type WatchedUpstream } from '../helpers/watched-upstream.js';
import { assertProblem, closeAll, send, waitFor } from '../helpers/http.js';
import { admin } from '../helpers/admin.js';

/**
 * Public 502/504 bodies once named the node and the cause ("detail":"connect to 127.0.0.1:22199 failed
 * (ECONNREFUSED)", "no connection to 127.0.0.1:22200 became free in 200 ms"), which maps the internal network for
 * anyone able to make a request fail. Clients now get the code and a fixed sentence; the node and the cause go to
 * the access log (`upstreamError`, beside `upstream`) and to GET /upstreams (`lastError` per node).
 */

const T = { timeout: 30_000 };
let deadPort: number;
let hung: WatchedUpstream;
let gw: TestGateway;
let logFile: string;

before(async () => {
  deadPort = await closedPort();
  hung = await startWatchedUpstream(() => {}); // accepts, reads the head, never answers
  logFile = join(mkdtempSync(join(tmpdir(), 'nanogate-upstream-errors-')), 'access.log');
  gw = await startGateway(`
observability:
  accessLog: { destination: { type: file, path: ${logFile} } }
policies:
  accessLog: {}
upstreams:
  dead: { nodes: [{ url: http://127.0.0.1:${deadPort} }] }
  hung: { nodes: [{ url: ${hung.url} }], readTimeoutMs: 300 }
  # one connection, held by a request that never gets an answer: the next one waits for it in vain
  busy: { nodes: [{ url: ${hung.url} }], connections: 1, connectTimeoutMs: 200, readTimeoutMs: 20000 }
routes:
  - { name: dead, match: { prefix: /dead }, upstream: dead }
  - { name: hung, match: { prefix: /hung }, upstream: hung }
  - { name: busy, match: { prefix: /busy }, upstream: busy }
`);
}, T);

after(() => closeAll(() => gw?.stop(), () => hung?.close()), T);

/** The access log line of a request, once the asynchronous logger wrote it. */
async function logLine(reqId: string): Promise<Record<string, any>> {
  let line: Record<string, any> | undefined;
  const found = await waitFor(() => {
    let text = '';
    try {
      text = readFileSync(logFile, 'utf8');
    } catch {
      return false;
    }
    line = text.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((l) => l['nanogate.request_id'] === reqId);
    return line !== undefined;
  }, 5000);
  assert.ok(found, `no access log line for ${reqId}`);
  return line!;
}

function assertNoAddress(text: string, port: number): void {
  assert.doesNotMatch(text, /127\.0\.0\.1|localhost/, `address in ${text}`);
  assert.ok(!text.includes(String(port)), `port ${port} in ${text}`);
  assert.doesNotMatch(text, /\bE[A-Z]{3,}\b|UND_ERR/, `errno in ${text}`);
}

test('a dead node: 502 without address or errno for the client; both in the access log and GET /upstreams', T, async () => {
  const res = await send(gw.port, { path: '/dead/x' });
  const body = assertProblem(res, 502, 'NG_ERR_UPSTREAM_CONNECT');
  assertNoAddress(res.text, deadPort);
  assert.equal(body.detail, 'the upstream service could not be reached');
  const line = await logLine(body.requestId as string);
  assert.equal(line['nanogate.upstream.node'], `127.0.0.1:${deadPort}`);
  assert.equal(line['nanogate.upstream.error'], `connect to 127.0.0.1:${deadPort} failed (ECONNREFUSED)`);

  const ups = await admin(gw.adminUrl, 'GET', '/upstreams/dead');
  assert.equal(ups.status, 200);
  const node = ups.body.nodes[0];
  assert.equal(node.lastError.code, 'NG_ERR_UPSTREAM_CONNECT');
  assert.equal(node.lastError.detail, `connect to 127.0.0.1:${deadPort} failed (ECONNREFUSED)`);
  assert.match(node.lastError.at, /^\d{4}-\d\d-\d\dT/);
});

test('a hung node: 504 without address for the client; the access log names the node and the wait', T, async () => {
  const res = await send(gw.port, { path: '/hung/x' });
  const body = assertProblem(res, 504, 'NG_ERR_UPSTREAM_TIMEOUT');
  assertNoAddress(res.text, hung.port);
  assert.equal(body.detail, 'the upstream service did not respond in time');
  const line = await logLine(body.requestId as string);
  assert.equal(line['nanogate.upstream.error'], `127.0.0.1:${hung.port} did not answer within 300 ms`);
});

test('a node that never frees its connection: 504 without address for the client; the cause in the access log', T, async () => {
  // The first request takes the only connection and keeps it (the upstream never answers)…
  const holder = send(gw.port, { path: '/busy/hold', timeoutMs: 25_000 }).catch(() => null);
  assert.ok(await waitFor(() => hung.arrivals.some((a) => a.url === '/busy/hold')), 'the first request reached the node');
  // …so the second waits for a free connection until connectTimeoutMs.
  const res = await send(gw.port, { path: '/busy/wait' });
  const body = assertProblem(res, 504, 'NG_ERR_UPSTREAM_TIMEOUT');
  assertNoAddress(res.text, hung.port);
  const line = await logLine(body.requestId as string);
  assert.equal(line['nanogate.upstream.error'], `no connection to 127.0.0.1:${hung.port} became free in 200 ms`);
  await hung.close(); // ends the held request
  await holder;
});

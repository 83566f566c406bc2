import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { closedPort, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { eventually, startCollector } from '../helpers/collector.js';
import { scrape } from '../helpers/prometheus.js';

let up: TestUpstream;
let gw: TestGateway;
let file: string;

type Line = Record<string, any>;

function lines(path = file): Line[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l));
}

const ID = 'nanogate.request_id';
const idOf = (l: Line): string => l[ID] ?? l.reqId;

async function lineFor(reqId: string, path = file): Promise<Line> {
  await eventually(() => lines(path).some((l) => idOf(l) === reqId));
  return lines(path).find((l) => idOf(l) === reqId)!;
}

async function get(path: string, headers: Record<string, string> = {}): Promise<Response> {
  const res = await fetch(`${gw.url}${path}`, { headers });
  await res.arrayBuffer();
  return res;
}

before(async () => {
  up = await startUpstream((req, res) => {
    const status = req.url?.includes('/missing') ? 404 : 200;
    const delay = req.url?.includes('/slow') ? 60 : 0;
    setTimeout(() => {
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end('body!');
    }, delay);
  });
  const dead = await closedPort();
  file = join(mkdtempSync(join(tmpdir(), 'nanogate-log-')), 'access.log');
  gw = await startGateway(
    `
observability:
  accessLog: { destination: { type: file, path: ${file} } }
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
  dead: { nodes: [{ url: http://127.0.0.1:${dead} }] }
policies:
  accessLog:
    headers: [user-agent, authorization, cookie, x-api-key]
    pii: ['[0-9]{16}', '[a-z]+@example\\.com']
routes:
  - name: logged
    match: { prefix: /l }
    upstream: app
    policies: { tracing: {} }
  - name: unsampled-trace
    match: { prefix: /t }
    upstream: app
    policies: { tracing: { sampleRate: 0 } }
  - name: sampled
    match: { prefix: /s }
    upstream: app
    policies: { accessLog: { sampleRate: 0, query: drop } }
  - name: down
    match: { prefix: /d }
    upstream: dead
    policies: { accessLog: { sampleRate: 0 } }
  - name: legacy
    match: { path: /old/:id }
    upstream: app
    policies:
      tracing: {}
      accessLog: { format: legacy, headers: [user-agent, authorization], phases: true }
  - name: slow-phases
    match: { prefix: /p }
    upstream: app
    policies: { accessLog: { phasesSlowMs: 40 } }
`,
    { workers: 2 },
  );
});
after(async () => {
  await gw?.stop();
  await up?.close();
});

test('one JSON line per request, named after the OpenTelemetry semantic conventions; credentials and PII are redacted', async () => {
  const res = await get('/l/cards/4111111111111111?token=s3cr3t&page=2&email=joe@example.com', {
    authorization: 'Bearer eyJhbGciOi.secret',
    cookie: 'session=abc',
    'x-api-key': 'k-0123456789abcdef',
    'user-agent': 'tests/1.0',
  });
  assert.equal(res.status, 200);
  const line = await lineFor(res.headers.get('x-request-id')!);
  assert.equal(line.level, 'info');
  assert.match(line.time, /^\d{4}-\d\d-\d\dT/);
  assert.equal(line['nanogate.route'], 'logged');
  assert.equal(line['http.route'], '/l/*');
  assert.equal(line['http.request.method'], 'GET');
  assert.equal(line['url.path'], '/l/cards/[redacted]');
  assert.equal(line['url.query'], 'token=[redacted]&page=2&email=[redacted]');
  assert.equal(line['http.response.status_code'], 200);
  assert.equal(line['server.address'], '127.0.0.1');
  assert.equal(line['client.address'], '127.0.0.1');
  assert.equal(line['user_agent.original'], 'tests/1.0');
  assert.equal(line['http.request.body.size'], 0);
  assert.equal(line['http.response.body.size'], 5);
  assert.equal(line['nanogate.consumer'], null);
  assert.equal(line['nanogate.upstream.node'], `127.0.0.1:${up.port}`);
  assert.ok(line.duration_ms > 0);
  assert.ok(line['nanogate.upstream_duration_ms'] > 0);
  assert.ok(Math.abs(line['nanogate.gateway_duration_ms'] + line['nanogate.upstream_duration_ms'] - line.duration_ms) < 0.01);
  assert.equal(line['nanogate.phases_ms'], undefined, 'phases: slow (the default) leaves them off a fast 2xx line');
  assert.match(line.trace_id, /^[0-9a-f]{32}$/);
  assert.match(line.span_id, /^[0-9a-f]{16}$/);
  // the upstream saw a traceparent in the same trace (its parent is the gateway's CLIENT span, a child of span_id)
  assert.equal(String(up.received.at(-1)!.headers.traceparent).split('-')[1], line.trace_id);
  assert.equal(line['http.request.header.user-agent'], 'tests/1.0');
  assert.equal(line['http.request.header.authorization'], '[redacted]');
  assert.equal(line['http.request.header.cookie'], '[redacted]');
  assert.equal(line['http.request.header.x-api-key'], '[redacted]');
  for (const legacy of ['reqId', 'method', 'path', 'status', 'latency', 'client', 'headers', 'traceId']) assert.equal(line[legacy], undefined, legacy);
  const raw = readFileSync(file, 'utf8');
  for (const secret of ['s3cr3t', 'eyJhbGciOi', 'session=abc', 'k-0123456789abcdef', '4111111111111111', 'joe@example.com']) {
    assert.ok(!raw.includes(secret), `${secret} leaked into the log`);
  }
});

test('a trace that starts here unsampled: the upstream is told the logged trace, flags 00, under a CLIENT span that is not the logged span', async () => {
  const seen = new Set<string>();
  for (let i = 0; i < 3; i++) {
    const res = await get('/t/x');
    assert.equal(res.status, 200);
    const line = await lineFor(res.headers.get('x-request-id')!);
    assert.match(line.trace_id, /^[0-9a-f]{32}$/);
    assert.match(line.span_id, /^[0-9a-f]{16}$/);
    const sent = String(up.received.at(-1)!.headers.traceparent);
    const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-00$/.exec(sent);
    assert.ok(m, sent);
    assert.equal(m![1], line.trace_id);
    assert.notEqual(m![2], line.span_id);
    seen.add(line.trace_id).add(line.span_id).add(m![2]);
  }
  assert.equal(seen.size, 9, 'every request its own trace and spans');
});

test('format: legacy keeps the names of earlier releases', async () => {
  const res = await get('/old/7?token=s3cr3t', { authorization: 'Bearer x', 'user-agent': 'tests/1.0' });
  const line = await lineFor(res.headers.get('x-request-id')!);
  assert.equal(line.route, 'legacy');
  assert.equal(line.reqId, res.headers.get('x-request-id'));
  assert.equal(line.method, 'GET');
  assert.equal(line.path, '/old/7');
  assert.equal(line.query, 'token=[redacted]');
  assert.equal(line.status, 200);
  assert.equal(line.bytesOut, 5);
  assert.equal(line.upstream, `127.0.0.1:${up.port}`);
  assert.equal(line.client, '127.0.0.1');
  assert.ok(line.latency.total > 0);
  assert.equal(typeof line.phases.upstream, 'number');
  assert.match(line.traceId, /^[0-9a-f]{32}$/);
  assert.deepEqual(line.headers, { 'user-agent': 'tests/1.0', authorization: '[redacted]' });
  for (const otel of ['http.request.method', 'url.path', 'nanogate.request_id', 'trace_id', 'span_id', 'duration_ms']) assert.equal(line[otel], undefined, otel);
});

test('phases: slow writes the time per phase on the lines that took phasesSlowMs or more and on gateway errors', async () => {
  const fast = await get('/p/quick');
  const slow = await get('/p/slow');
  const down = await get('/d/x');
  assert.equal(down.status, 502);
  assert.equal((await lineFor(fast.headers.get('x-request-id')!))['nanogate.phases_ms'], undefined);
  const slowLine = await lineFor(slow.headers.get('x-request-id')!);
  assert.ok(slowLine.duration_ms >= 40, String(slowLine.duration_ms));
  const phases = slowLine['nanogate.phases_ms'];
  for (const phase of ['route', 'connect', 'upstream', 'transfer']) assert.equal(typeof phases?.[phase], 'number', phase);
  assert.ok(phases.upstream >= 40, 'the wait is the upstream phase: ' + JSON.stringify(phases));
  const downPhases = (await lineFor(down.headers.get('x-request-id')!))['nanogate.phases_ms'];
  assert.equal(typeof downPhases?.route, 'number', 'a gateway-error line has its phases');
});

test('sampling drops successes but keeps errors (upstream 4xx and gateway errors, at error level for 5xx)', async () => {
  const ok: string[] = [];
  for (let i = 0; i < 5; i++) ok.push((await get('/s/fine?token=x')).headers.get('x-request-id')!);
  const missing = await get('/s/missing?token=x');
  assert.equal(missing.status, 404);
  const down = await get('/d/x');
  assert.equal(down.status, 502);
  const l404 = await lineFor(missing.headers.get('x-request-id')!);
  assert.equal(l404['http.response.status_code'], 404);
  assert.equal(l404.level, 'info');
  assert.equal(l404['url.query'], undefined, 'query: drop');
  const l502 = await lineFor(down.headers.get('x-request-id')!);
  assert.equal(l502.level, 'error');
  assert.equal(l502['error.type'], 'NG_ERR_UPSTREAM_CONNECT');
  assert.equal(l502['nanogate.route'], 'down');
  const ids = new Set(lines().map(idOf));
  for (const id of ok) assert.ok(!ids.has(id), 'a sampled-out success was logged');
  const s = await scrape(gw.adminUrl);
  assert.ok(s.sum('nanogate_access_log_sampled_out_total') >= 5);
  assert.ok(s.sum('nanogate_access_log_lines_total') >= 3);
});

test('log rotation: after the file is renamed and the gateway told to reopen, new lines land in a new file', async () => {
  const first = await get('/l/before');
  await lineFor(first.headers.get('x-request-id')!);
  const rotated = file + '.1';
  renameSync(file, rotated);
  gw.gateway.reopenLogs();
  // the reopen message reaches each worker asynchronously; wait until both write to the new file (lines leave in
  // batches, so each round first waits for its lines to be written somewhere)
  await eventually(async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await get('/l/after')).headers.get('x-request-id')!);
    await eventually(() => {
      const written = new Set([...lines(file), ...lines(rotated)].map(idOf));
      return ids.every((id) => written.has(id));
    }, 2000);
    const fresh = new Set(lines(file).map(idOf));
    return ids.every((id) => fresh.has(id));
  }, 8000);
  assert.ok(lines(rotated).some((l) => idOf(l) === first.headers.get('x-request-id')));
  assert.ok(!lines(file).some((l) => idOf(l) === first.headers.get('x-request-id')));
});

test('an HTTP destination receives NDJSON batches; when it is away lines are dropped and counted', async () => {
  const collector = await startCollector();
  const up2 = await startUpstream();
  const dead = await closedPort();
  const gw2 = await startGateway(`
observability:
  accessLog: { destination: { type: http, url: ${collector.url}/logs, batchSize: 3, flushMs: 30 } }
upstreams:
  app: { nodes: [{ url: ${up2.url} }] }
policies: { accessLog: {} }
routes:
  - { name: r, match: { prefix: / }, upstream: app }
`);
  const gw3 = await startGateway(`
observability:
  accessLog: { destination: { type: http, url: http://127.0.0.1:${dead}/logs, batchSize: 2, flushMs: 20, queueLimit: 4, timeoutMs: 500 } }
upstreams:
  app: { nodes: [{ url: ${up2.url} }] }
policies: { accessLog: {} }
routes:
  - { name: r, match: { prefix: / }, upstream: app }
`);
  try {
    for (let i = 0; i < 7; i++) await (await fetch(`${gw2.url}/h${i}`)).arrayBuffer();
    await collector.waitFor(() => collector.lines().length >= 7);
    assert.ok(collector.posts.every((p) => p.contentType === 'application/x-ndjson'));
    assert.deepEqual(collector.lines().map((l) => l['url.path']).sort(), ['/h0', '/h1', '/h2', '/h3', '/h4', '/h5', '/h6']);
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`${gw3.url}/x`);
      await res.arrayBuffer();
      statuses.push(res.status);
    }
    assert.deepEqual(statuses, Array(20).fill(200));
    await eventually(async () => (await scrape(gw3.adminUrl)).sum('nanogate_access_log_dropped_total') >= 4);
  } finally {
    await gw2.stop();
    await gw3.stop();
    await up2.close();
    await collector.close();
  }
});

test('lines leave in batches (flushMs) and a stopping gateway writes out what it holds', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nanogate-log-batch-'));
  const held = join(dir, 'held.log');
  const quick = join(dir, 'quick.log');
  const make = (path: string, flushMs: number) =>
    startGateway(
      `
observability:
  accessLog: { destination: { type: file, path: ${path}, flushMs: ${flushMs} } }
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
policies: { accessLog: {} }
routes:
  - { name: all, match: { prefix: / }, upstream: app }
`,
      { workers: 1 },
    );
  const slow = await make(held, 60000);
  const fast = await make(quick, 20);
  try {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${slow.url}/held/${i}`);
      await res.arrayBuffer();
      ids.push(res.headers.get('x-request-id')!);
    }
    const res = await fetch(`${fast.url}/quick`);
    await res.arrayBuffer();
    // the 20 ms destination has written its line while the 60 s one still holds its three
    await lineFor(res.headers.get('x-request-id')!, quick);
    assert.deepEqual(lines(held), [], 'a line left before its batch was due');
    await slow.stop();
    assert.deepEqual(lines(held).map(idOf), ids, 'stopping lost or reordered held lines');
  } finally {
    await slow.stop().catch(() => {});
    await fast.stop();
  }
});

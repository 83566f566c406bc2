import { test, before, after } from 'node:test';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { closedPort, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { attr, startCollector, eventually, type Collector, type OtlpSpan } from '../helpers/collector.js';
import { scrape } from '../helpers/prometheus.js';

let up: TestUpstream;
let collector: Collector;
let gw: TestGateway;

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const PARENT = 'b7ad6b7169203331';
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;
// OTLP wire values of SpanKind
const SERVER = 2;
const CLIENT = 3;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

before(async () => {
  up = await startUpstream();
  collector = await startCollector();
  gw = await startGateway(`
observability:
  tracing: { endpoint: ${collector.url}/v1/traces, batchSize: 5, flushMs: 50 }
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
  gone: { nodes: [{ url: http://127.0.0.1:${await closedPort()} }] }
routes:
  - name: traced
    match: { prefix: /t }
    upstream: app
    policies:
      tracing: {}
      auth: { methods: { apiKey: {} } }
  - name: open
    match: { prefix: /o }
    upstream: app
    policies: { tracing: {} }
  - name: never
    match: { prefix: /n }
    upstream: app
    policies: { tracing: { sampleRate: 0 } }
  - name: untraced
    match: { prefix: /u }
    upstream: app
  - name: by-id
    match: { path: /users/:id }
    upstream: app
    policies: { tracing: {} }
  - name: down
    match: { prefix: /d }
    upstream: gone
    policies: { tracing: {} }
consumers:
  - { id: carol, keys: [{ key: carol-key-0123456789 }] }
`);
});
after(async () => {
  await gw?.stop();
  await up?.close();
  await collector?.close();
});

async function get(path: string, headers: Record<string, string> = {}): Promise<Response> {
  const res = await fetch(`${gw.url}${path}`, { headers });
  await res.arrayBuffer();
  return res;
}

function span(test: (s: OtlpSpan) => boolean): OtlpSpan {
  const found = collector.spans().find(test);
  assert.ok(found, 'span not received');
  return found;
}

test('an incoming traceparent is continued: a SERVER span under the caller, a CLIENT span under it for the upstream hop', async () => {
  const res = await get('/o/continue', { traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: 'vendor=opaque', 'user-agent': 'trace-test/1' });
  assert.equal(res.status, 200);
  const seen = up.received.at(-1)!;
  const m = TRACEPARENT.exec(String(seen.headers.traceparent));
  assert.ok(m, `upstream traceparent: ${seen.headers.traceparent}`);
  assert.equal(m![1], TRACE);
  assert.notEqual(m![2], PARENT, 'a new span id for the gateway hop');
  assert.equal(m![3], '01');
  assert.equal(seen.headers.tracestate, 'vendor=opaque', 'tracestate passes on');
  // only one traceparent line reached the upstream
  assert.equal(seen.rawHeaders.filter((h) => h.toLowerCase() === 'traceparent').length, 1);

  // the upstream's parent is the gateway's CLIENT span, whose parent is the gateway's SERVER span, whose parent is the caller's
  await collector.waitFor(() => collector.spans().some((s) => s.spanId === m![2]));
  const client = span((s) => s.spanId === m![2]);
  assert.equal(client.kind, CLIENT);
  assert.equal(client.traceId, TRACE);
  assert.equal(client.name, 'GET');
  assert.equal(attr(client, 'http.request.method'), 'GET');
  assert.equal(attr(client, 'server.address'), '127.0.0.1');
  assert.equal(attr(client, 'server.port'), up.port);
  assert.equal(attr(client, 'http.response.status_code'), 200);
  assert.equal(client.status.code, 0);
  const server = span((s) => s.spanId === client.parentSpanId);
  assert.equal(server.kind, SERVER);
  assert.equal(server.traceId, TRACE);
  assert.equal(server.parentSpanId, PARENT);
  assert.equal(server.name, 'GET /o/*', 'METHOD http.route');
  assert.equal(attr(server, 'http.route'), '/o/*');
  assert.equal(attr(server, 'http.request.method'), 'GET');
  assert.equal(attr(server, 'url.path'), '/o/continue');
  assert.equal(attr(server, 'url.scheme'), 'http');
  assert.equal(attr(server, 'http.response.status_code'), 200);
  assert.equal(attr(server, 'server.address'), '127.0.0.1');
  assert.equal(attr(server, 'server.port'), gw.port);
  assert.equal(attr(server, 'client.address'), '127.0.0.1');
  assert.equal(attr(server, 'user_agent.original'), 'trace-test/1');
  assert.equal(attr(server, 'nanogate.route'), 'open');
  assert.equal(attr(server, 'nanogate.request_id'), res.headers.get('x-request-id'));
  assert.equal(attr(server, 'error.type'), undefined);
  assert.ok(BigInt(server.endTimeUnixNano) >= BigInt(client.endTimeUnixNano));
  assert.ok(BigInt(client.startTimeUnixNano) >= BigInt(server.startTimeUnixNano), 'the hop lies inside the server span');
  const nowNs = BigInt(Date.now()) * 1_000_000n;
  assert.ok(nowNs - BigInt(server.startTimeUnixNano) < 60_000_000_000n, 'start time is wall-clock time');

  // the default export: OTLP/HTTP protobuf, gzip; the resource names the service and this instance
  const post = collector.posts.find((p) => p.path === '/v1/traces')!;
  assert.equal(post.contentType, 'application/x-protobuf');
  assert.equal(post.contentEncoding, 'gzip');
  const resource = collector.requests()[0].resourceSpans[0].resource;
  assert.equal(attr(resource, 'service.name'), 'nanogate');
  assert.equal(attr(resource, 'service.version'), JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')).version);
  assert.match(String(attr(resource, 'service.instance.id')), UUID);
  assert.equal(collector.requests()[0].resourceSpans[0].scopeSpans[0].scope?.name, 'nanogate');
});

test('a path template is the span name; a failed upstream hop is a CLIENT span in error under a 5xx SERVER span', async () => {
  await get('/users/42');
  const m = TRACEPARENT.exec(String(up.received.at(-1)!.headers.traceparent))!;
  await collector.waitFor(() => collector.spans().some((s) => s.spanId === m[2]));
  const server = span((s) => s.spanId === span((c) => c.spanId === m[2]).parentSpanId);
  assert.equal(server.name, 'GET /users/:id');
  assert.equal(attr(server, 'url.path'), '/users/42');

  const res = await get('/d/x');
  assert.equal(res.status, 502);
  const id = res.headers.get('x-request-id');
  await collector.waitFor(() => collector.spans().some((s) => attr(s, 'nanogate.request_id') === id));
  const failed = span((s) => attr(s, 'nanogate.request_id') === id);
  assert.equal(failed.status.code, 2, 'a 5xx server span is an error');
  assert.equal(attr(failed, 'error.type'), 'NG_ERR_UPSTREAM_CONNECT');
  await collector.waitFor(() => collector.spans().some((s) => s.parentSpanId === failed.spanId));
  const hop = span((s) => s.parentSpanId === failed.spanId);
  assert.equal(hop.kind, CLIENT);
  assert.equal(hop.status.code, 2);
  assert.equal(attr(hop, 'error.type'), 'NG_ERR_UPSTREAM_CONNECT');
  assert.equal(attr(hop, 'http.response.status_code'), undefined, 'no response came back');
});

test('without a traceparent a trace starts at the gateway (no parent), sampled by sampleRate', async () => {
  await get('/o/start');
  const m = TRACEPARENT.exec(String(up.received.at(-1)!.headers.traceparent))!;
  assert.ok(m);
  assert.notEqual(m[1], TRACE);
  await collector.waitFor(() => collector.spans().some((s) => s.spanId === m[2]));
  const client = span((s) => s.spanId === m[2]);
  assert.equal(client.traceId, m[1]);
  const server = span((s) => s.spanId === client.parentSpanId);
  assert.equal(server.kind, SERVER);
  assert.equal(server.parentSpanId, undefined);
});

test('an invalid traceparent restarts the trace and drops tracestate; a not-sampled parent is obeyed', async () => {
  for (const bad of [`00-${'0'.repeat(32)}-${PARENT}-01`, `00-${TRACE.toUpperCase()}-${PARENT}-01`, `ff-${TRACE}-${PARENT}-01`, 'garbage']) {
    await get('/o/bad', { traceparent: bad, tracestate: 'vendor=x' });
    const seen = up.received.at(-1)!;
    const m = TRACEPARENT.exec(String(seen.headers.traceparent));
    assert.ok(m, bad);
    assert.notEqual(m![1], TRACE, bad);
    assert.equal(seen.headers.tracestate, undefined, bad);
  }
  const before = collector.spans().length;
  await get('/o/unsampled', { traceparent: `00-${TRACE}-${PARENT}-00` });
  const m = TRACEPARENT.exec(String(up.received.at(-1)!.headers.traceparent))!;
  assert.equal(m[1], TRACE);
  assert.equal(m[3], '00');
  await get('/n/never');
  assert.equal(TRACEPARENT.exec(String(up.received.at(-1)!.headers.traceparent))![3], '00');
  // A sampled request after them: its span is queued behind anything they would have exported, so once it has
  // arrived at the collector the absence of theirs means something (a pause would not, on a loaded machine).
  const BARRIER = 'ba771e7ba771e7ba771e7ba771e7ba77';
  await get('/o/barrier', { traceparent: `00-${BARRIER}-${PARENT}-01` });
  await collector.waitFor(() => collector.spans().some((s) => s.traceId === BARRIER), 10_000);
  const spans = collector.spans().slice(before);
  assert.ok(!spans.some((s) => s.traceId === TRACE && s.spanId === m[2]), 'not-sampled request not exported');
  assert.ok(!spans.some((s) => attr(s, 'nanogate.route') === 'never'));
});

test('a request refused by authentication still gets a span, with the error code; routes without the policy pass traceparent untouched', async () => {
  const res = await get('/t/x', { traceparent: `00-${TRACE}-${PARENT}-01` });
  assert.equal(res.status, 401);
  await collector.waitFor(() => collector.spans().some((s) => attr(s, 'nanogate.route') === 'traced'));
  const refused = span((s) => attr(s, 'nanogate.route') === 'traced');
  assert.equal(refused.traceId, TRACE);
  assert.equal(attr(refused, 'http.response.status_code'), 401);
  assert.equal(attr(refused, 'error.type'), 'NG_ERR_AUTH_MISSING');
  assert.equal(refused.status.code, 0, 'a 4xx is not a server error');
  assert.ok(!collector.spans().some((s) => s.parentSpanId === refused.spanId), 'nothing went upstream: no CLIENT span');

  await get('/u/x', { traceparent: `00-${TRACE}-${PARENT}-01` });
  assert.equal(up.received.at(-1)!.headers.traceparent, `00-${TRACE}-${PARENT}-01`);
});

test('spans are exported in batches and counted', async () => {
  const before = (await scrape(gw.adminUrl)).sum('nanogate_spans_exported_total');
  const postsBefore = collector.posts.length;
  // A slow collector: one export is in flight at a time, so the spans of the requests made while the first post
  // waits for its answer queue up and leave in batches of at most batchSize (5), whatever the timing.
  const release = collector.hold();
  try {
    await get('/o/batch-0');
    await collector.waitFor(() => collector.spans().some((s) => attr(s, 'url.path') === '/o/batch-0'), 10_000);
    for (let i = 1; i < 12; i++) await get(`/o/batch-${i}`);
  } finally {
    release();
  }
  // each request: a SERVER and a CLIENT span
  await eventually(async () => (await scrape(gw.adminUrl)).sum('nanogate_spans_exported_total') >= before + 24, 10_000);
  const sizes: number[] = [];
  const requestsBefore = collector.posts.slice(0, postsBefore).filter((x) => x.path === '/v1/traces').length;
  for (const r of collector.requests().slice(requestsBefore)) {
    const n = r.resourceSpans[0].scopeSpans[0].spans.length;
    sizes.push(n);
    assert.ok(n >= 1 && n <= 5, `batch of ${n}`);
    assert.equal(attr(r.resourceSpans[0].resource, 'service.name'), 'nanogate');
  }
  const ours = collector.spans().filter((s) => String(attr(s, 'url.path')).startsWith('/o/batch-'));
  assert.equal(ours.length, 12, `batches ${sizes}`);
  assert.ok(sizes.filter((n) => n === 5).length >= 4, `the queued spans left in full batches: ${sizes}`);
});

test('with the collector away requests still succeed, and spans are dropped and counted', async () => {
  const dead = await closedPort();
  const up2 = await startUpstream();
  const gw2 = await startGateway(`
observability:
  tracing: { endpoint: http://127.0.0.1:${dead}/v1/traces, batchSize: 4, flushMs: 20, queueLimit: 8, timeoutMs: 500 }
upstreams:
  app: { nodes: [{ url: ${up2.url} }] }
policies: { tracing: {} }
routes:
  - { name: r, match: { prefix: / }, upstream: app }
`);
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) {
      const res = await fetch(`${gw2.url}/x${i}`);
      await res.arrayBuffer();
      statuses.push(res.status);
    }
    assert.deepEqual(statuses, Array(40).fill(200));
    assert.equal(up2.received.length, 40);
    await eventually(async () => (await scrape(gw2.adminUrl)).sum('nanogate_spans_dropped_total') >= 8);
    const s = await scrape(gw2.adminUrl);
    assert.equal(s.sum('nanogate_spans_exported_total'), 0);
  } finally {
    await gw2.stop();
    await up2.close();
  }
});

test('OTEL_EXPORTER_OTLP_* and OTEL_SERVICE_NAME configure the export; protocol http/json without gzip is an option', async () => {
  const own = await startCollector();
  const up2 = await startUpstream();
  const saved = { ...process.env };
  // the generic endpoint is a base URL: /v1/traces is appended; header values are percent-decoded
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = own.url;
  process.env.OTEL_EXPORTER_OTLP_HEADERS = 'authorization=Bearer%20s3cret,x-tenant=blue';
  process.env.OTEL_SERVICE_NAME = 'edge-gateway';
  process.env.OTEL_RESOURCE_ATTRIBUTES = 'deployment.environment.name=staging';
  process.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/json';
  process.env.OTEL_EXPORTER_OTLP_COMPRESSION = 'none';
  let gw2: TestGateway | undefined;
  try {
    gw2 = await startGateway(`
observability:
  tracing: { batchSize: 1, flushMs: 20 }
upstreams:
  app: { nodes: [{ url: ${up2.url} }] }
policies: { tracing: {} }
routes:
  - { name: r, match: { path: /env }, upstream: app }
`);
    await fetch(`${gw2.url}/env`).then((r) => r.arrayBuffer());
    await own.waitFor(() => own.spans().some((s) => s.kind === SERVER));
    const post = own.posts.find((p) => p.path === '/v1/traces')!;
    assert.equal(post.contentType, 'application/json');
    assert.equal(post.contentEncoding, '');
    const resource = own.requests()[0].resourceSpans[0].resource;
    assert.equal(attr(resource, 'service.name'), 'edge-gateway');
    assert.equal(attr(resource, 'deployment.environment.name'), 'staging');
    assert.equal(own.spans().find((s) => s.kind === SERVER)!.name, 'GET /env');
    assert.equal(post.headers.authorization, 'Bearer s3cret');
    assert.equal(post.headers['x-tenant'], 'blue');
  } finally {
    process.env = saved;
    await gw2?.stop();
    await up2.close();
    await own.close();
  }
});

test('a malformed OTEL_ variable is refused like a config error, naming the variable and not its value', async () => {
  const saved = { ...process.env };
  process.env.OTEL_EXPORTER_OTLP_HEADERS = 'authorization';
  process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = 'collector:4318';
  try {
    await assert.rejects(
      startGateway(`
observability:
  tracing: {}
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
policies: { tracing: {} }
routes:
  - { name: r, match: { prefix: / }, upstream: app }
`),
      (err: Error) => {
        assert.match(err.message, /OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is not an http\(s\)/);
        assert.doesNotMatch(err.message, /collector:4318/);
        return true;
      },
    );
  } finally {
    process.env = saved;
  }
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { closedPort, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { attr, startCollector, eventually, type Collector } from '../helpers/collector.js';
import { scrape } from '../helpers/prometheus.js';

let up: TestUpstream;
let collector: Collector;
let gw: TestGateway;

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const PARENT = 'b7ad6b7169203331';
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

before(async () => {
  up = await startUpstream();
  collector = await startCollector();
  gw = await startGateway(`
observability:
  tracing: { endpoint: ${collector.url}/v1/traces, batchSize: 5, flushMs: 50 }
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
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

test('an incoming traceparent is continued: same trace id, our span as the upstream parent, the span exported', async () => {
  const res = await get('/o/continue', { traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: 'vendor=opaque' });
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

  await collector.waitFor(() => collector.spans().some((s) => s.spanId === m![2]));
  const span = collector.spans().find((s) => s.spanId === m![2])!;
  assert.equal(span.traceId, TRACE);
  assert.equal(span.parentSpanId, PARENT);
  assert.equal(span.kind, 2);
  assert.equal(span.name, 'GET open');
  assert.equal(attr(span, 'nanogate.route'), 'open');
  assert.equal(attr(span, 'http.response.status_code'), 200);
  assert.equal(attr(span, 'nanogate.upstream.node'), `127.0.0.1:${up.port}`);
  assert.equal(attr(span, 'url.path'), '/o/continue');
  assert.equal(attr(span, 'nanogate.request_id'), res.headers.get('x-request-id'));
  assert.ok(BigInt(span.endTimeUnixNano) >= BigInt(span.startTimeUnixNano));
  const nowNs = BigInt(Date.now()) * 1_000_000n;
  assert.ok(nowNs - BigInt(span.startTimeUnixNano) < 60_000_000_000n, 'start time is wall-clock time');
  assert.equal(collector.posts.find((p) => p.path === '/v1/traces')!.contentType, 'application/json');
});

test('without a traceparent a trace starts at the gateway (no parent), sampled by sampleRate', async () => {
  await get('/o/start');
  const m = TRACEPARENT.exec(String(up.received.at(-1)!.headers.traceparent))!;
  assert.ok(m);
  assert.notEqual(m[1], TRACE);
  await collector.waitFor(() => collector.spans().some((s) => s.spanId === m[2]));
  const span = collector.spans().find((s) => s.spanId === m[2])!;
  assert.equal(span.traceId, m[1]);
  assert.equal(span.parentSpanId, undefined);
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
  const span = collector.spans().find((s) => attr(s, 'nanogate.route') === 'traced')!;
  assert.equal(span.traceId, TRACE);
  assert.equal(attr(span, 'http.response.status_code'), 401);
  assert.equal(attr(span, 'error.type'), 'NG_ERR_AUTH_MISSING');
  assert.equal(span.status.code, 0, 'a 4xx is not a server error');

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
  await eventually(async () => (await scrape(gw.adminUrl)).sum('nanogate_spans_exported_total') >= before + 12, 10_000);
  const sizes: number[] = [];
  for (const p of collector.posts.slice(postsBefore).filter((x) => x.path === '/v1/traces')) {
    const n = JSON.parse(p.body).resourceSpans[0].scopeSpans[0].spans.length;
    sizes.push(n);
    assert.ok(n >= 1 && n <= 5, `batch of ${n}`);
    assert.equal(JSON.parse(p.body).resourceSpans[0].resource.attributes[0].value.stringValue, 'nanogate');
  }
  const ours = collector.spans().filter((s) => String(attr(s, 'url.path')).startsWith('/o/batch-'));
  assert.equal(ours.length, 12, `batches ${sizes}`);
  assert.ok(sizes.filter((n) => n === 5).length >= 2, `the eleven queued spans left in full batches: ${sizes}`);
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

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { closedPort, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { scrape } from '../helpers/prometheus.js';
import { until } from '../helpers/gateway-state.js';

let up: TestUpstream;
let gw: TestGateway;
let config: string;

before(async () => {
  up = await startUpstream((req, res) => {
    if (req.url?.includes('/missing')) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      return res.end('no');
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('hello');
  });
  const dead = await closedPort();
  config = `
consumers:
  - { id: alice, plan: gold, keys: [{ key: alice-key-0123456789 }] }
  - { id: bob, keys: [{ key: bob-key-01234567890 }] }
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
  dead: { nodes: [{ url: http://127.0.0.1:${dead} }] }
routes:
  - name: plain
    match: { prefix: /plain }
    upstream: app
  - name: timed
    match: { prefix: /timed }
    upstream: app
    policies:
      serverTiming: {}
      auth: { methods: { apiKey: {} }, anonymous: true }
  - name: broken
    match: { prefix: /broken }
    upstream: dead
`;
  gw = await startGateway(config, { workers: 2 });
});
after(async () => {
  await gw?.stop();
  await up?.close();
});

async function send(path: string, n: number, headers: Record<string, string> = {}): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${gw.url}${path}`, { headers });
    await res.arrayBuffer();
    statuses.push(res.status);
  }
  return statuses;
}

test('/metrics is Prometheus text and counts requests by route and status class, merged over workers', async () => {
  const before = await scrape(gw.adminUrl);
  assert.equal(before.types.get('nanogate_requests_total'), 'counter');
  assert.equal(before.types.get('nanogate_request_duration_seconds'), 'histogram');
  const base = before.sum('nanogate_requests_total', { route: 'plain', class: '2xx' });
  assert.deepEqual(await send('/plain/a', 12), Array(12).fill(200));
  await send('/plain/missing', 3);
  const after = await scrape(gw.adminUrl);
  assert.equal(after.sum('nanogate_requests_total', { route: 'plain', class: '2xx' }) - base, 12);
  assert.equal(after.sum('nanogate_requests_total', { route: 'plain', class: '4xx' }), 3);
  // the total-latency histogram saw every one of them, and its buckets are cumulative up to +Inf
  const count = after.sum('nanogate_request_duration_seconds_count', { route: 'plain' });
  assert.equal(count, base + 15);
  const buckets = after.find('nanogate_request_duration_seconds_bucket', { route: 'plain' });
  assert.equal(buckets.at(-1)!.labels.le, '+Inf');
  assert.equal(buckets.at(-1)!.value, count);
  for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i].value >= buckets[i - 1].value);
  assert.ok(after.sum('nanogate_request_duration_seconds_sum', { route: 'plain' }) > 0);
  assert.equal(after.sum('nanogate_gateway_duration_seconds_count', { route: 'plain' }), count);
  // gateway-added time is part of the total
  assert.ok(after.sum('nanogate_gateway_duration_seconds_sum', { route: 'plain' }) <= after.sum('nanogate_request_duration_seconds_sum', { route: 'plain' }));
  assert.ok(after.sum('nanogate_response_body_bytes_total', { route: 'plain' }) >= 12 * 5);
  assert.ok(after.sum('nanogate_upstream_responses_total', { upstream: 'app' }) >= 15);
});

test('requests are labelled with the consumer plan; consumers without one and anonymous requests have plan=""', async () => {
  await send('/timed/x', 2, { 'x-api-key': 'alice-key-0123456789' });
  await send('/timed/x', 1, { 'x-api-key': 'bob-key-01234567890' });
  await send('/timed/x', 1);
  const s = await scrape(gw.adminUrl);
  assert.equal(s.sum('nanogate_requests_total', { route: 'timed', plan: 'gold' }), 2);
  assert.equal(s.sum('nanogate_requests_total', { route: 'timed', plan: '' }), 2);
});

test('rejections are counted by error code, with and without a route', async () => {
  await send('/nothing-here', 2);
  await send('/broken/x', 2);
  await send('/timed/x', 1, { 'x-api-key': 'wrong-key-0123456789' });
  const s = await scrape(gw.adminUrl);
  assert.equal(s.sum('nanogate_rejections_total', { code: 'NG_ERR_ROUTE_NOT_FOUND' }), 2);
  assert.equal(s.sum('nanogate_requests_total', { route: '-', class: '4xx' }), 2);
  assert.equal(s.sum('nanogate_rejections_total', { code: 'NG_ERR_UPSTREAM_CONNECT' }), 2);
  assert.equal(s.sum('nanogate_requests_total', { route: 'broken', class: '5xx' }), 2);
  // every attempt counts: each request is tried three times (the default retries: 2 on connect failures)
  assert.equal(s.sum('nanogate_upstream_failures_total', { upstream: 'dead' }), 6);
  assert.equal(s.sum('nanogate_rejections_total', { code: 'NG_ERR_AUTH_UNKNOWN_KEY' }), 1);
});

test('phase histograms exist on routes with timing: route, the policies, connect, upstream, transfer', async () => {
  await send('/timed/y', 3);
  const s = await scrape(gw.adminUrl);
  for (const phase of ['route', 'auth', 'connect', 'upstream', 'transfer']) {
    assert.ok(s.sum('nanogate_phase_duration_seconds_count', { route: 'timed', phase }) >= 3, `phase ${phase}`);
  }
  // routes without policies take no per-phase timestamps
  assert.equal(s.find('nanogate_phase_duration_seconds_count', { route: 'plain' }).length, 0);
});

test('Server-Timing is sent only on routes that enable it', async () => {
  const timed = await fetch(`${gw.url}/timed/z`);
  await timed.arrayBuffer();
  const value = timed.headers.get('server-timing');
  assert.ok(value, 'server-timing present');
  const names = value!.split(',').map((e) => e.trim().split(';')[0]);
  assert.deepEqual(names, ['route', 'auth', 'connect', 'upstream']);
  for (const e of value!.split(',')) assert.match(e.trim(), /^[a-z]+;dur=\d+(\.\d+)?$/);
  const plain = await fetch(`${gw.url}/plain/z`);
  await plain.arrayBuffer();
  assert.equal(plain.headers.get('server-timing'), null);
  // a gateway error on a timed route carries it too (what was spent before the refusal)
  const refused = await fetch(`${gw.url}/timed/z`, { headers: { 'x-api-key': 'wrong-key-0123456789' } });
  await refused.arrayBuffer();
  assert.equal(refused.status, 401);
  assert.match(refused.headers.get('server-timing') ?? '', /^route;dur=[\d.]+, auth;dur=[\d.]+$/);
});

test('worker gauges, upstream in-flight and the config version are exported; counters survive a reload', async () => {
  // gauges are written once a second by each worker: wait for a scrape that has both workers' first sample
  let s = await scrape(gw.adminUrl);
  await until('both workers to publish their gauges', async () => {
    s = await scrape(gw.adminUrl);
    const heaps = s.find('nanogate_worker_heap_used_bytes');
    return heaps.length === 2 && heaps.every((h) => h.value > 0) && s.sum('nanogate_upstream_connections', { upstream: 'app' }) >= 1;
  });
  assert.equal(s.find('nanogate_worker_heap_used_bytes').length, 2);
  for (const h of s.find('nanogate_worker_heap_used_bytes')) assert.ok(h.value > 0);
  assert.equal(s.find('nanogate_worker_event_loop_lag_p99_seconds').length, 2);
  assert.equal(s.find('nanogate_upstream_in_flight', { upstream: 'app' }).length, 1);
  assert.ok(s.sum('nanogate_upstream_connections', { upstream: 'app' }) >= 1);
  assert.equal(s.sum('nanogate_config_version'), 1);
  const plainBefore = s.sum('nanogate_requests_total', { route: 'plain' });

  // a reload that adds a route in front keeps the existing route's counters (rows are kept by name)
  gw.rewrite(config.replace('routes:\n', 'routes:\n  - { name: added, match: { prefix: /added }, upstream: app }\n'));
  await gw.gateway.reload();
  await send('/plain/after', 1);
  await send('/added/x', 1);
  const s2 = await scrape(gw.adminUrl);
  assert.equal(s2.sum('nanogate_config_version'), 2);
  assert.equal(s2.sum('nanogate_requests_total', { route: 'plain' }), plainBefore + 1);
  assert.equal(s2.sum('nanogate_requests_total', { route: 'added' }), 1);
});

import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startFaultUpstream, type FaultUpstream } from '../helpers/fault-upstream.js';
import { RawClient } from '../helpers/raw-client.js';
import { eventually } from '../helpers/admin.js';
import { scrape } from '../helpers/prometheus.js';

/**
 * Retries, the retry budget, the circuit breaker, concurrency limits with a queue, slow request bodies, the route
 * deadline and fallbacks, each against real upstream processes that fail on command. Every assertion is about what
 * clients saw and what reached the nodes.
 */

const T = { timeout: 60_000 };
let nodes: FaultUpstream[];
const agent = new Agent({ connections: 32 });

async function get(gw: TestGateway, path = '/api', method = 'GET'): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  const res = await request(`${gw.url}${path}`, { method, dispatcher: agent, headersTimeout: 10_000, bodyTimeout: 10_000 });
  return { status: res.statusCode, body: await res.body.text(), headers: res.headers };
}

async function received(list: FaultUpstream[]): Promise<number> {
  let n = 0;
  for (const u of list) n += await u.received();
  return n;
}

function gateway(upstreamExtra: string, routeExtra = '', workers = 2): Promise<TestGateway> {
  return startGateway(
    `
upstreams:
  app:
    nodes: [${nodes.map((n) => `{ url: "${n.url}" }`).join(', ')}]
${upstreamExtra}
routes:
  - name: api
    match: { prefix: /api }
    upstream: app
${routeExtra}
`,
    { workers },
  );
}

before(async () => {
  nodes = [await startFaultUpstream('a'), await startFaultUpstream('b'), await startFaultUpstream('c')];
});

beforeEach(async () => {
  for (const n of nodes) await n.setMode('ok');
});

after(async () => {
  await agent.close();
  for (const n of nodes) await n.stop();
});

test('a 503 the route retries is answered by another node; the client never sees the failed try', T, async () => {
  const gw = await gateway('    outlierDetection: { consecutiveGatewayFailures: 0 }', '    retries: { attempts: 2, on: [503, connect-failure] }');
  try {
    await nodes[0].setMode('500'); // 500 is not in the list: passed on
    await nodes[1].setMode('ok');
    const statuses = new Set<number>();
    for (let i = 0; i < 30; i++) statuses.add((await get(gw)).status);
    assert.deepEqual([...statuses].sort(), [200, 500], 'a status not listed is not retried');
  } finally {
    await gw.stop();
  }
  const gw2 = await gateway('    outlierDetection: { consecutiveGatewayFailures: 0 }', '    retries: { attempts: 2, on: [500] }');
  try {
    await nodes[0].setMode('500');
    for (let i = 0; i < 30; i++) assert.equal((await get(gw2)).status, 200);
    // POST is not idempotent: its 500 is passed on, not retried
    const posts = new Set<number>();
    for (let i = 0; i < 30; i++) posts.add((await get(gw2, '/api', 'POST')).status);
    assert.ok(posts.has(500));
    const m = await scrape(gw2.adminUrl);
    assert.ok(m.sum('nanogate_upstream_retries_total', { upstream: 'app' }) >= 10);
  } finally {
    await gw2.stop();
  }
});

test('retry storm: with 2 of 3 nodes failing, upstream attempts stay within 1 + the retry budget of client requests', T, async () => {
  const gw = await gateway('    outlierDetection: { consecutiveGatewayFailures: 0 }\n    retryBudget: { percent: 20, minConcurrency: 1 }', '    retries: { attempts: 3, on: [500], backoffBaseMs: 0, backoffMaxMs: 0 }');
  try {
    await nodes[0].setMode('500');
    await nodes[1].setMode('500');
    const before = await received(nodes);
    let clients = 0;
    const loop = async () => {
      for (let i = 0; i < 100; i++) {
        await get(gw);
        clients++;
      }
    };
    await Promise.all(Array.from({ length: 10 }, loop));
    const attempts = (await received(nodes)) - before;
    // Without a budget each request would take up to 4 tries (about 2.3 on average here). The budget bounds retries
    // in flight, so the count may pass 20 % by what the last moments of each retry add (a few percent at most).
    assert.ok(attempts <= clients * 1.2 * 1.05, `${attempts} upstream attempts for ${clients} client requests`);
    const m = await scrape(gw.adminUrl);
    assert.ok(m.sum('nanogate_upstream_retries_refused_total', { upstream: 'app' }) > 0, 'the budget refused retries');
  } finally {
    await gw.stop();
  }
});

test('circuit breaker: opens on the error rate, answers 503 with Retry-After at once, half-opens, and closes on passing probes', T, async () => {
  const gw = await gateway('    outlierDetection: { consecutiveGatewayFailures: 0 }\n    circuitBreaker: { errorPercent: 50, minRequests: 10, openMs: 800, halfOpenRequests: 2 }');
  try {
    for (const n of nodes) await n.setMode('500');
    let opened = null as null | { status: number; body: string; headers: Record<string, string | string[] | undefined> };
    for (let i = 0; i < 60 && !opened; i++) {
      const r = await get(gw);
      if (r.status === 503) opened = r;
    }
    assert.ok(opened, 'the circuit opened');
    assert.equal(JSON.parse(opened.body).code, 'NG_ERR_UPSTREAM_CIRCUIT_OPEN');
    assert.ok(Number(opened.headers['retry-after']) >= 1);
    const before = await received(nodes);
    for (let i = 0; i < 20; i++) assert.equal((await get(gw)).status, 503);
    assert.equal((await received(nodes)) - before, 0, 'an open circuit sends nothing upstream');
    for (const n of nodes) await n.setMode('ok');
    assert.ok(await eventually(async () => (await get(gw)).status === 200, 5000), 'probes close the circuit');
    for (let i = 0; i < 20; i++) assert.equal((await get(gw)).status, 200);
    const m = await scrape(gw.adminUrl);
    assert.equal(m.sum('nanogate_upstream_circuit_state', { upstream: 'app', state: 'closed' }), 1);
    assert.ok(m.sum('nanogate_upstream_circuit_openings_total', { upstream: 'app' }) >= 1);
  } finally {
    await gw.stop();
  }
});

test('maxConcurrent across workers: beyond it 503 NG_ERR_UPSTREAM_OVERLOADED at once, or a bounded wait in the queue', T, async () => {
  for (const n of nodes) await n.setMode('slow:400');
  const gw = await gateway('    maxConcurrent: 2');
  try {
    const results = await Promise.all(Array.from({ length: 6 }, () => get(gw)));
    assert.equal(results.filter((r) => r.status === 200).length, 2);
    const refused = results.filter((r) => r.status === 503);
    assert.equal(refused.length, 4);
    for (const r of refused) assert.equal(JSON.parse(r.body).code, 'NG_ERR_UPSTREAM_OVERLOADED');
  } finally {
    await gw.stop();
  }
  const queued = await gateway('    maxConcurrent: 2\n    queue: { size: 10, maxWaitMs: 5000 }');
  try {
    const results = await Promise.all(Array.from({ length: 6 }, () => get(queued)));
    assert.deepEqual(results.map((r) => r.status), [200, 200, 200, 200, 200, 200]);
  } finally {
    await queued.stop();
  }
  const short = await gateway('    maxConcurrent: 1\n    queue: { size: 10, maxWaitMs: 100 }', '', 1);
  try {
    const results = await Promise.all(Array.from({ length: 3 }, () => get(short)));
    assert.equal(results.filter((r) => r.status === 200).length, 1);
    for (const r of results.filter((x) => x.status !== 200)) assert.equal(JSON.parse(r.body).code, 'NG_ERR_UPSTREAM_QUEUE_TIMEOUT');
  } finally {
    await short.stop();
  }
});

test('slow request bodies: held at the gateway (no upstream connection), 408 below the minimum rate, normal requests unaffected', T, async () => {
  const gw = await gateway('    connections: 2', '    requestBody: { minBytesPerSecond: 1000, graceMs: 500 }');
  try {
    const before = await received(nodes);
    const slow = await Promise.all(Array.from({ length: 20 }, () => RawClient.connect(gw.port)));
    for (const c of slow) c.send('POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\nx');
    // While 20 slow uploads are open, with only 2 connections per node and worker, normal requests still pass.
    for (let i = 0; i < 20; i++) assert.equal((await get(gw)).status, 200);
    const answers = await Promise.all(slow.map((c) => c.readResponse({ timeoutMs: 5000 })));
    for (const a of answers) {
      assert.equal(a.status, 408);
      assert.equal(JSON.parse(a.body.toString()).code, 'NG_ERR_REQUEST_BODY_TIMEOUT');
    }
    // Only the 20 normal requests reached the nodes: the slow bodies never took an upstream connection.
    assert.equal((await received(nodes)) - before, 20);
    for (const c of slow) c.close();
  } finally {
    await gw.stop();
  }
});

test('the route deadline bounds every try; the fallback answers in place of an upstream failure', T, async () => {
  for (const n of nodes) await n.setMode('slow:2000');
  const gw = await gateway(
    '',
    `    timeouts: { requestMs: 300 }
  - name: fallback
    match: { prefix: /fb }
    upstream: app
    timeouts: { requestMs: 300 }
    fallback: { status: 200, headers: { content-type: application/json, x-fallback: "1" }, body: '{"items":[]}' }`,
  );
  try {
    // The read timeout is 30 s: a 504 here can only come from the 300 ms deadline capping the try.
    const r = await get(gw);
    assert.equal(r.status, 504);
    assert.equal(JSON.parse(r.body).code, 'NG_ERR_UPSTREAM_TIMEOUT');
    const f = await get(gw, '/fb');
    assert.equal(f.status, 200);
    assert.equal(f.body, '{"items":[]}');
    assert.equal(f.headers['x-fallback'], '1');
  } finally {
    await gw.stop();
  }
});

test('a route with its own circuit breaker opens it without closing the upstream for other routes', T, async () => {
  const gw = await gateway(
    '    outlierDetection: { consecutiveGatewayFailures: 0 }',
    `    circuitBreaker: { errorPercent: 50, minRequests: 5, openMs: 60000 }
  - { name: other, match: { prefix: /other }, upstream: app }`,
  );
  try {
    for (const n of nodes) await n.setMode('500');
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const r = await get(gw);
      seen.add(r.status === 503 ? JSON.parse(r.body).code : String(r.status));
    }
    assert.ok(seen.has('NG_ERR_UPSTREAM_CIRCUIT_OPEN'), [...seen].join());
    // the other route on the same upstream still reaches the nodes
    assert.equal((await get(gw, '/other')).status, 500);
    const m = await scrape(gw.adminUrl);
    assert.equal(m.sum('nanogate_route_circuit_state', { route: 'api', state: 'open' }), 1);
  } finally {
    await gw.stop();
  }
});

test('success-rate outlier ejection takes out a node failing 30 % while the others succeed', T, async () => {
  const gw = await gateway('    outlierDetection: { successRate: { intervalMs: 1000, minRequests: 20, minNodes: 3, stdevFactor: 1 } }');
  try {
    await nodes[2].setMode('flaky:30');
    const view = async () => (await fetch(`${gw.adminUrl}/upstreams/app`).then((r) => r.json())) as { nodes: { ejected: boolean; lastFailure: string }[] };
    assert.ok(
      await eventually(async () => {
        await Promise.all(Array.from({ length: 8 }, async () => { for (let i = 0; i < 10; i++) await get(gw); }));
        return (await view()).nodes[2].ejected;
      }, 20_000),
      'the flaky node is ejected',
    );
    const v = await view();
    assert.equal(v.nodes[2].lastFailure, 'success-rate');
    assert.equal(v.nodes[0].ejected || v.nodes[1].ejected, false);
  } finally {
    await gw.stop();
  }
});

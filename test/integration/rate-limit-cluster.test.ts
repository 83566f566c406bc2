import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Pool } from 'undici';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { assertProblem, send, waitFor } from '../helpers/http.js';

// Three gateway processes share one redis-server: cluster limits hold across them, and each node follows
// onRedisDown while Redis is away and goes back to cluster limiting by itself when it returns.

const RATE = 200;
const BURST = 50;
const QUOTA = 300;

let redis: TestRedis;
let up: TestUpstream;
let nodes: GatewayProcess[] = [];

// The quota counts per UTC day: the nodes' calendar clock stands still at noon (src/shared/clock.ts), so a run
// near midnight cannot see the quota reset half-way through the test.
const savedWallClock = process.env.NANOGATE_TEST_WALL_CLOCK;

before(async () => {
  process.env.NANOGATE_TEST_WALL_CLOCK = '2026-01-05T12:00:00.000Z'; // inherited by the node processes
  redis = await startRedis();
  up = await startUpstream((_req, res) => res.end('ok'));
  const yaml = `
redis: { url: ${redis.url}, commandTimeoutMs: 250 }
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
routes:
  - name: bucket
    match: { prefix: /bucket }
    upstream: app
    policies: { rateLimit: { limits: [{ key: route, rate: ${RATE}, burst: ${BURST}, scope: cluster }] } }
  - name: quota
    match: { prefix: /quota }
    upstream: app
    policies: { rateLimit: { quota: { per: day, limit: ${QUOTA}, key: global, scope: cluster } } }
  - name: open
    match: { prefix: /open }
    upstream: app
    policies: { rateLimit: { limits: [{ key: ip, rate: 1, per: minute, burst: 5, scope: cluster }], onRedisDown: failOpen } }
  - name: closed
    match: { prefix: /closed }
    upstream: app
    policies: { rateLimit: { limits: [{ key: ip, rate: 1000, scope: cluster, lease: 1 }], onRedisDown: failClosed } }
`;
  nodes = await Promise.all([0, 1, 2].map(() => startGatewayProcess(yaml)));
});

after(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  await up.close();
  await redis.stop();
  if (savedWallClock === undefined) delete process.env.NANOGATE_TEST_WALL_CLOCK;
  else process.env.NANOGATE_TEST_WALL_CLOCK = savedWallClock;
});

/** `perNode` connections to each node send requests until `durationMs` (or `total`) is reached. */
async function hammer(path: string, opts: { durationMs?: number; total?: number; perNode?: number }) {
  const pools = nodes.map((n) => new Pool(n.url, { connections: opts.perNode ?? 6 }));
  let ok = 0;
  let limited = 0;
  let other = 0;
  let left = opts.total ?? Infinity;
  const t0 = performance.now();
  const end = t0 + (opts.durationMs ?? 60_000);
  await Promise.all(
    pools.flatMap((pool) =>
      Array.from({ length: opts.perNode ?? 6 }, async () => {
        while (left-- > 0 && performance.now() < end) {
          const r = await pool.request({ path, method: 'GET' });
          await r.body.dump();
          if (r.statusCode === 200) ok++;
          else if (r.statusCode === 429) limited++;
          else other++;
        }
      }),
    ),
  );
  const elapsedMs = performance.now() - t0;
  await Promise.all(pools.map((p) => p.close()));
  return { ok, limited, other, elapsedMs };
}

test('a cluster token bucket across 3 nodes admits at most burst + rate x elapsed, and only what Redis granted', async (t) => {
  const r = await hammer('/bucket', { durationMs: 1500 });
  const bound = BURST + (RATE * r.elapsedMs) / 1000;
  const statuses = await Promise.all(nodes.map(async (n) => (await n.status()).rateLimit as Record<string, number>));
  const granted = statuses.reduce((sum, s) => sum + s.tokensGranted, 0);
  const fallback = statuses.reduce((sum, s) => sum + s.fallbackAdmitted, 0);
  t.diagnostic(
    `admitted ${r.ok}, refused ${r.limited}, in ${r.elapsedMs.toFixed(0)} ms; ideal ${bound.toFixed(1)}; ` +
      `stray ${(r.ok - bound).toFixed(1)} (${(((r.ok - bound) / bound) * 100).toFixed(1)}%); granted by Redis ${granted}, local fallback ${fallback}`,
  );
  assert.equal(r.other, 0);
  assert.ok(r.ok <= Math.floor(bound), `${r.ok} admitted, bound ${bound.toFixed(1)}`);
  assert.ok(granted <= Math.floor(bound), `Redis granted ${granted}, bound ${bound.toFixed(1)}`);
  // Every admission spent a granted token (or, after a lease wait timed out, the local floor); what was granted
  // and not spent is at most what 3 nodes can hold: lease + lease/2 - 1 each (lease 5 here).
  assert.ok(r.ok <= granted + fallback, `${r.ok} admitted, ${granted} granted + ${fallback} local`);
  assert.ok(r.ok >= granted - 3 * 7, `${r.ok} admitted of ${granted} granted`);
  assert.ok(r.ok >= BURST);
});

test('a cluster quota is never exceeded across 3 nodes', async (t) => {
  const r = await hammer('/quota', { total: 2 * QUOTA, perNode: 4 });
  t.diagnostic(`quota ${QUOTA}: admitted ${r.ok}, refused ${r.limited}`);
  assert.equal(r.other, 0);
  assert.ok(r.ok <= QUOTA, `${r.ok} admitted of a quota of ${QUOTA}`);
  assert.ok(r.ok >= QUOTA - 3 * 3, `${r.ok} admitted: at most 3 nodes x lease 3 stay unused`);
  const refused = await send(nodes[1].port, { path: '/quota' });
  assertProblem(refused, 429, 'NG_ERR_RATE_QUOTA_EXCEEDED');
});

test('while Redis is down a node follows onRedisDown, says so, and resumes cluster limiting when Redis is back', async () => {
  const node = nodes[0];
  assert.equal((await send(node.port, { path: '/closed' })).status, 200);
  await redis.stop();
  assert.ok(await waitFor(() => node.logs.some((l) => l.includes('redis unreachable')), 5000), 'the outage is logged');

  // failClosed: 503 once the (single-token) lease is spent.
  const closed: number[] = [];
  for (let i = 0; i < 6; i++) closed.push((await send(node.port, { path: '/closed' })).status);
  assert.deepEqual(closed.slice(2), [503, 503, 503, 503], `statuses ${closed}`);
  assertProblem(await send(node.port, { path: '/closed' }), 503, 'NG_ERR_RATE_UNAVAILABLE');

  // failOpen: the node enforces the limit by itself (burst 5), then refuses.
  const open: number[] = [];
  for (let i = 0; i < 8; i++) open.push((await send(node.port, { path: '/open' })).status);
  const admitted = open.filter((s) => s === 200).length;
  assert.ok(admitted >= 5 && admitted <= 6, `statuses ${open}`);
  assert.equal(open.at(-1), 429);

  let status = (await node.status()).rateLimit as Record<string, unknown>;
  assert.equal(status.redis, 'down');
  assert.ok((status.fallbackAdmitted as number) >= 5);
  assert.ok((status.fallbackRefused as number) >= 4);

  // Back on the same port: the node reconnects without a restart.
  await redis.start();
  let upAgain = false;
  const deadline = Date.now() + 10_000;
  while (!upAgain && Date.now() < deadline) {
    status = (await node.status()).rateLimit as Record<string, unknown>;
    upAgain = status.redis === 'up';
    if (!upAgain) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(upAgain, 'redis is reported up again');
  assert.ok(node.logs.some((l) => l.includes('redis reachable again')));
  assert.equal((await send(node.port, { path: '/closed' })).status, 200);
  // Redis came back empty: the cluster bucket (burst 5) applies again, shared by the nodes.
  const again: number[] = [];
  for (const n of [nodes[1], nodes[2], nodes[0], nodes[1], nodes[2], nodes[0], nodes[1]]) again.push((await send(n.port, { path: '/open' })).status);
  assert.deepEqual(again.slice(0, 5), [200, 200, 200, 200, 200], `statuses ${again}`);
  assert.deepEqual(again.slice(5), [429, 429], `statuses ${again}`);
});

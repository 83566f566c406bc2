import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { admin, eventually } from '../helpers/admin.js';
import { closeAll, send } from '../helpers/http.js';

/**
 * The weighted split through a real gateway with two workers and one real upstream server per version: accuracy
 * over 10,000 requests and over every window of 1,000 (in the order the upstreams saw them), stickiness across
 * requests, reloads and a weight increase, the admin view and override, the access log's version, and a canary
 * that is down.
 */

const T = { timeout: 120_000 };

/** Which version answered, in the order requests reached the upstreams (one process: one arrival order). */
const order: string[] = [];
let stable: TestUpstream;
let canary: TestUpstream;
let gw: TestGateway;
let logFile: string;

function versionUpstream(name: string) {
  return startUpstream((_req, res) => {
    order.push(name);
    res.writeHead(200, { 'content-type': 'text/plain', 'x-served-by': name });
    res.end(name);
  });
}

function config(canaryWeight: number, extraRoute = '') {
  return `
reload: { watch: false }
observability:
  accessLog: { destination: { type: file, path: ${logFile}, flushMs: 20 } }
# pipelining off: a request resent by the head-of-line bound would reach an upstream twice and blur the order
upstreams:
  v1: { nodes: [{ url: ${stable.url} }], pipelining: 1 }
  v2: { nodes: [{ url: ${canary.url} }], pipelining: 1 }
  dead: { nodes: [{ url: http://127.0.0.1:1 }], outlierDetection: { consecutiveGatewayFailures: 0 } }
routes:
  - name: split
    match: { prefix: /split }
    upstream: v1
    traffic:
      versions:
        - { name: stable, upstream: v1, weight: ${100 - canaryWeight} }
        - { name: canary, upstream: v2, weight: ${canaryWeight} }
  - name: sticky
    match: { prefix: /sticky }
    upstream: v1
    traffic:
      versions:
        - { name: stable, upstream: v1, weight: ${100 - canaryWeight} }
        - { name: canary, upstream: v2, weight: ${canaryWeight} }
      sticky: { by: header, name: x-user }
  - name: down
    match: { prefix: /down }
    upstream: v1
    policies: { accessLog: { format: legacy } }
    traffic:
      versions:
        - { name: stable, upstream: v1, weight: 80 }
        - { name: broken, upstream: dead, weight: 20 }
  - name: plain
    match: { prefix: /plain }
    upstream: v1
${extraRoute}
policies: { accessLog: {} }
`;
}

before(async () => {
  logFile = join(mkdtempSync(join(tmpdir(), 'nanogate-split-')), 'access.log');
  stable = await versionUpstream('stable');
  canary = await versionUpstream('canary');
  gw = await startGateway(config(12.5), { workers: 2 });
}, T);

after(() => closeAll(() => gw?.stop(), () => stable?.close(), () => canary?.close()), T);

/** `n` GETs over `concurrency` keep-alive connections; resolves with the served-by of each response, by index. */
async function load(n: number, concurrency: number, path: (i: number) => string, headers: (i: number) => Record<string, string> = () => ({})): Promise<string[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const out: string[] = new Array(n);
  let next = 0;
  const one = (i: number) =>
    new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: gw.port, path: path(i), headers: headers(i), agent }, (res) => {
        res.resume();
        res.on('end', () => {
          out[i] = String(res.headers['x-served-by'] ?? res.statusCode);
          resolve();
        });
      });
      req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
      req.on('error', reject);
      req.end();
    });
  const worker = async () => {
    while (next < n) await one(next++);
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    agent.destroy();
  }
  return out;
}

async function reload(): Promise<void> {
  const r = await admin(gw.adminUrl, 'POST', '/reload');
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

test('10,000 requests on 2 workers: each share within 1 % of its weight, and every window of 1,000 too', T, async (t) => {
  order.length = 0;
  await load(10_000, 16, () => '/split');
  assert.equal(order.length, 10_000);
  const share = order.filter((v) => v === 'canary').length / order.length;
  assert.ok(Math.abs(share - 0.125) <= 0.01, `canary share ${share}`);
  // every window of 1,000 consecutive arrivals
  let inWindow = 0;
  for (let i = 0; i < 1000; i++) if (order[i] === 'canary') inWindow++;
  let lo = inWindow, hi = inWindow;
  for (let i = 1000; i < order.length; i++) {
    inWindow += (order[i] === 'canary' ? 1 : 0) - (order[i - 1000] === 'canary' ? 1 : 0);
    lo = Math.min(lo, inWindow);
    hi = Math.max(hi, inWindow);
  }
  t.diagnostic(`canary share ${(share * 100).toFixed(2)} % of 10,000 (weight 12.5 %); windows of 1,000: ${lo}..${hi} canary requests (125 expected)`);
  assert.ok(lo >= 115 && hi <= 135, `a window of 1,000 had ${lo}..${hi} canary requests, expected 125 ± 10`);
  // the region's per-version counts (written by both workers) match what the upstreams saw
  const view = await admin(gw.adminUrl, 'GET', '/routes/split/traffic');
  assert.equal(view.status, 200);
  assert.deepEqual(view.body.versions.map((v: { name: string; requests: number; errors: number }) => [v.name, v.requests, v.errors]), [
    ['stable', 10_000 - order.filter((v) => v === 'canary').length, 0],
    ['canary', order.filter((v) => v === 'canary').length, 0],
  ]);
});

const USERS = Array.from({ length: 1000 }, (_, i) => `user-${i}`);

async function assignment(): Promise<string[]> {
  return load(USERS.length, 8, () => '/sticky', (i) => ({ 'x-user': USERS[i] }));
}

test('sticky by header: a key keeps its version across requests and a reload; 5 % -> 25 % moves only keys into canary', T, async (t) => {
  await reload();
  await admin(gw.adminUrl, 'PUT', '/routes/sticky/traffic', { body: JSON.stringify({ weights: { stable: 95, canary: 5 } }) });
  const first = await assignment();
  const again = await assignment();
  assert.deepEqual(again, first, 'a key changed version between two rounds');
  const onCanary = first.filter((v) => v === 'canary').length;
  assert.ok(onCanary >= 25 && onCanary <= 75, `${onCanary} of 1000 keys on canary at 5 %`);

  // a reload that changes something else (a new route) keeps every key where it was
  gw.rewrite(config(5, '  - { name: extra, match: { prefix: /extra }, upstream: v1 }'));
  await reload();
  assert.deepEqual(await assignment(), first, 'a reload without a weight change moved keys');

  // 5 % -> 25 % by config: keys on canary stay there; about 20 % of the keys move, all of them to canary
  gw.rewrite(config(25));
  await reload();
  const later = await assignment();
  let moved = 0;
  for (let i = 0; i < USERS.length; i++) {
    if (first[i] === 'canary') assert.equal(later[i], 'canary', `${USERS[i]} left canary`);
    if (first[i] !== later[i]) moved++;
  }
  t.diagnostic(`keys on canary at 5 %: ${onCanary}; at 25 %: ${later.filter((v) => v === 'canary').length}; moved: ${moved} of 1000`);
  assert.ok(moved >= 150 && moved <= 250, `${moved} keys moved`);
  // requests without the key are split by the schedule
  const keyless = await load(400, 4, () => '/sticky');
  assert.equal(keyless.filter((v) => v === 'canary').length, 100);
});

test('PUT /routes/:name/traffic sets the weights on every worker; a reload that keeps the config weights keeps them', T, async () => {
  gw.rewrite(config(12.5));
  await reload();
  let r = await admin(gw.adminUrl, 'PUT', '/routes/split/traffic', { body: JSON.stringify({ weights: { stable: 0, canary: 100 } }) });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.overridden, true);
  assert.deepEqual(r.body.versions.map((v: { weight: number; configuredWeight: number }) => [v.weight, v.configuredWeight]), [[0, 87.5], [100, 12.5]]);
  assert.ok((await load(200, 8, () => '/split')).every((v) => v === 'canary'));
  await reload(); // same config: the override holds
  assert.ok((await load(100, 8, () => '/split')).every((v) => v === 'canary'));
  gw.rewrite(config(50)); // the config's weights change: they win
  await reload();
  const half = await load(200, 8, () => '/split');
  assert.equal(half.filter((v) => v === 'canary').length, 100);

  for (const [body, reason] of [
    [{ weights: { stable: 60, canary: 30 } }, /add to 90/],
    [{ weights: { stable: 50 } }, /"canary" has no weight/],
    [{ weights: { stable: 50, canary: 50, beta: 0 } }, /unknown version "beta"/],
    [{ weights: { stable: 49.95, canary: 50.05 } }, /more than one decimal/],
    [{ weights: [50, 50] }, /the body must be/],
  ] as const) {
    r = await admin(gw.adminUrl, 'PUT', '/routes/split/traffic', { body: JSON.stringify(body) });
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.body.code, 'NG_ERR_ADMIN_BAD_REQUEST');
    assert.match(r.body.detail, reason);
  }
  r = await admin(gw.adminUrl, 'GET', '/routes/plain/traffic');
  assert.equal(r.status, 404);
  assert.equal(r.body.code, 'NG_ERR_ADMIN_NO_TRAFFIC');
  r = await admin(gw.adminUrl, 'GET', '/routes');
  assert.deepEqual(r.body.routes.find((x: { name: string }) => x.name === 'split').traffic, [{ name: 'stable', weight: 50 }, { name: 'canary', weight: 50 }]);
  assert.equal(r.body.routes.find((x: { name: string }) => x.name === 'plain').traffic, null);
});

test('a canary that is down fails its share with 502; the stable share is served; the errors are counted per version', T, async () => {
  const before = (await admin(gw.adminUrl, 'GET', '/routes/down/traffic')).body.versions;
  const got = await load(500, 8, () => '/down');
  assert.equal(got.filter((v) => v === 'stable').length, 400);
  assert.equal(got.filter((v) => v === '502').length, 100);
  const after = (await admin(gw.adminUrl, 'GET', '/routes/down/traffic')).body.versions;
  assert.equal(after[1].requests - before[1].requests, 100);
  assert.equal(after[1].errors - before[1].errors, 100);
  assert.equal(after[0].errors - before[0].errors, 0);
});

test('the access log line names the version (otel and legacy formats); a route without a split has none', T, async () => {
  const a = await send(gw.port, { path: '/split/logged' });
  const b = await send(gw.port, { path: '/down/logged', headers: { 'x-request-id': 'down-logged-1' } });
  const c = await send(gw.port, { path: '/plain/logged', headers: { 'x-request-id': 'plain-logged-1' } });
  assert.equal(a.status, 200);
  assert.ok(b.status === 200 || b.status === 502);
  assert.equal(c.status, 200);
  const lines = () => readFileSync(logFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.ok(await eventually(() => lines().some((l) => l.reqId === 'down-logged-1') && lines().some((l) => l['url.path'] === '/split/logged')));
  const otel = lines().find((l) => l['url.path'] === '/split/logged')!;
  assert.equal(otel['nanogate.traffic.version'], a.headers['x-served-by']);
  const legacy = lines().find((l) => l.reqId === 'down-logged-1')!;
  assert.equal(legacy.version, b.status === 200 ? 'stable' : 'broken');
  assert.ok(await eventually(() => lines().some((l) => l['nanogate.request_id'] === 'plain-logged-1')));
  const plain = lines().find((l) => l['nanogate.request_id'] === 'plain-logged-1')!;
  assert.equal('nanogate.traffic.version' in plain, false);
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, writeConfig, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { assertProblem, send } from '../helpers/http.js';
import { loadConfigFile } from '../../src/config/load.js';
import { compileConfig } from '../../src/config/compile.js';

// One gateway, one route per behaviour (each route has its own buckets, so the tests do not share state).
let up: TestUpstream;
let gw: TestGateway;
const GOLD_KEY = 'gold-key-0123456789abcdef';
const FREE_KEY = 'free-key-0123456789abcdef';

const yaml = `
upstreams:
  app: { nodes: [{ url: UPSTREAM }] }
consumers:
  - { id: alice, plan: gold, keys: [{ key: ${GOLD_KEY} }] }
  - { id: bob, plan: free, keys: [{ key: ${FREE_KEY} }] }
routes:
  - name: bucket
    match: { prefix: /bucket }
    upstream: app
    policies:
      rateLimit: { limits: [{ key: ip, rate: 1, per: minute, burst: 3 }] }
  - name: by-header
    match: { prefix: /tenant }
    upstream: app
    policies:
      rateLimit: { limits: [{ key: "header:X-Tenant", rate: 1, per: hour, burst: 2 }] }
  - name: window
    match: { prefix: /window }
    upstream: app
    policies:
      rateLimit: { limits: [{ key: route, algorithm: slidingWindow, rate: 4, per: minute }] }
  - name: several
    match: { prefix: /several }
    upstream: app
    policies:
      rateLimit:
        limits:
          - { key: ip, rate: 100, per: second }
          - { key: ip, rate: 3, per: hour }
  - name: quota
    match: { prefix: /quota }
    upstream: app
    policies:
      rateLimit: { quota: { per: day, limit: 5, key: ip }, warnAt: [0.6, 0.8] }
  - name: legacy-only
    match: { prefix: /legacy }
    upstream: app
    policies:
      rateLimit: { limits: [{ key: global, rate: 5, per: minute }], headers: { draft: false } }
  - name: shared-a
    match: { prefix: /shared-a }
    upstream: app
    policies:
      rateLimit: { limits: [{ key: global, name: partner-api, rate: 1, per: hour, burst: 3 }] }
  - name: shared-b
    match: { prefix: /shared-b }
    upstream: app
    policies:
      rateLimit: { limits: [{ key: global, name: partner-api, rate: 1, per: hour, burst: 3 }] }
  - name: plans
    match: { prefix: /plans }
    upstream: app
    policies:
      auth: { methods: { apiKey: {} } }
      rateLimit:
        limits: [{ key: consumer, rate: 1, per: hour, burst: 1 }]
        plans:
          gold: { limits: [{ key: consumer, rate: 1, per: hour, burst: 3 }] }
  - name: plain
    match: { prefix: /plain }
    upstream: app
  - name: trimmed
    match: { prefix: /trimmed }
    upstream: app
    policies:
      headers: { response: { remove: [x-powered-by], set: { cache-control: no-store } } }
      rateLimit: { limits: [{ key: route, rate: 1, per: hour, burst: 2 }] }
`;

// Quotas count per UTC day: the gateway's calendar clock stands still at noon (src/shared/clock.ts), so the quota
// test neither resets half-way when run near midnight nor depends on the hour for its Retry-After.
const WALL_CLOCK = '2026-01-05T12:00:00.000Z';
const savedWallClock = process.env.NANOGATE_TEST_WALL_CLOCK;

before(async () => {
  process.env.NANOGATE_TEST_WALL_CLOCK = WALL_CLOCK;
  up = await startUpstream();
  gw = await startGateway(yaml.replace('UPSTREAM', up.url), { workers: 1 });
});
after(async () => {
  await gw.stop();
  await up.close();
  if (savedWallClock === undefined) delete process.env.NANOGATE_TEST_WALL_CLOCK;
  else process.env.NANOGATE_TEST_WALL_CLOCK = savedWallClock;
});

test('a token bucket admits its burst, then answers 429 NG_ERR_RATE_LIMITED with Retry-After and RateLimit headers', async () => {
  const remaining: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await send(gw.port, { path: '/bucket' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['ratelimit-limit'], '3');
    assert.equal(r.headers['x-ratelimit-limit'], '3');
    remaining.push(String(r.headers['ratelimit-remaining']));
    assert.equal(r.headers['x-ratelimit-remaining'], r.headers['ratelimit-remaining']);
    assert.ok(Number(r.headers['ratelimit-reset']) >= 1);
  }
  assert.deepEqual(remaining, ['2', '1', '0']);
  const refused = await send(gw.port, { path: '/bucket' });
  const body = assertProblem(refused, 429, 'NG_ERR_RATE_LIMITED');
  assert.match(String(body.detail), /per minute per ip/);
  const retry = Number(refused.headers['retry-after']);
  assert.ok(retry >= 55 && retry <= 60, `Retry-After ${retry}: one token comes back every 60 s`);
  assert.equal(refused.headers['ratelimit-remaining'], '0');
  assert.equal(up.received.filter((r) => r.url.startsWith('/bucket')).length, 3);
});

test('a header key counts each value apart; requests without the header count by client address', async () => {
  for (const tenant of ['a', 'b']) {
    for (let i = 0; i < 2; i++) assert.equal((await send(gw.port, { path: '/tenant', headers: { 'x-tenant': tenant } })).status, 200);
    assertProblem(await send(gw.port, { path: '/tenant', headers: { 'x-tenant': tenant } }), 429, 'NG_ERR_RATE_LIMITED');
  }
  assert.equal((await send(gw.port, { path: '/tenant' })).status, 200);
  assert.equal((await send(gw.port, { path: '/tenant' })).status, 200);
  assertProblem(await send(gw.port, { path: '/tenant' }), 429, 'NG_ERR_RATE_LIMITED');
});

test('keys that alternate from one request to the next keep their own buckets', async () => {
  // a worker keeps the hash of the last key it saw: an alternating pair must not share or swap buckets
  for (let i = 0; i < 2; i++) {
    for (const tenant of ['c', 'd']) assert.equal((await send(gw.port, { path: '/tenant', headers: { 'x-tenant': tenant } })).status, 200);
  }
  for (const tenant of ['c', 'd']) assertProblem(await send(gw.port, { path: '/tenant', headers: { 'x-tenant': tenant } }), 429, 'NG_ERR_RATE_LIMITED');
  assert.equal((await send(gw.port, { path: '/tenant', headers: { 'x-tenant': 'e' } })).status, 200);
});

test('the RateLimit fields follow each response when two keys report the same figures and then other ones', async () => {
  // a hook keeps the field text of its last response: two buckets on the same figures share it, and the next
  // figures must replace it in both header sets
  const seen: string[] = [];
  for (let i = 0; i < 2; i++) {
    for (const tenant of ['p', 'q']) {
      const r = await send(gw.port, { path: '/tenant', headers: { 'x-tenant': tenant } });
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-ratelimit-remaining'], r.headers['ratelimit-remaining']);
      assert.equal(r.headers['x-ratelimit-reset'], r.headers['ratelimit-reset']);
      seen.push(`${tenant}:${r.headers['ratelimit-remaining']}/${r.headers['ratelimit-reset']}`);
    }
  }
  assert.deepEqual(seen, ['p:1/3600', 'q:1/3600', 'p:0/7200', 'q:0/7200']);
});

test('a sliding window admits `rate` requests per window, then refuses until the oldest leaves the window', async () => {
  for (let i = 0; i < 4; i++) assert.equal((await send(gw.port, { path: '/window' })).status, 200);
  const r = await send(gw.port, { path: '/window' });
  assertProblem(r, 429, 'NG_ERR_RATE_LIMITED');
  const retry = Number(r.headers['retry-after']);
  assert.ok(retry > 50 && retry <= 60, `Retry-After ${retry}: never more than the 60 s window`);
  assert.equal(r.headers['ratelimit-limit'], '4');
});

test('with several limits every one must admit, and the headers name the one nearest to refusing', async () => {
  for (let i = 0; i < 3; i++) {
    const r = await send(gw.port, { path: '/several' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['ratelimit-limit'], '3');
    assert.equal(r.headers['ratelimit-remaining'], String(2 - i));
  }
  const r = await send(gw.port, { path: '/several' });
  assertProblem(r, 429, 'NG_ERR_RATE_LIMITED');
  assert.match(JSON.parse(r.text).detail, /3 per hour/);
});

test('a quota warns from the configured thresholds and then answers NG_ERR_RATE_QUOTA_EXCEEDED until the period ends', async () => {
  const warnings: (string | undefined)[] = [];
  for (let i = 0; i < 5; i++) {
    const r = await send(gw.port, { path: '/quota' });
    assert.equal(r.status, 200);
    warnings.push(r.headers['x-quota-warning'] as string | undefined);
  }
  // used after each request: 1/5 2/5 3/5 4/5 5/5
  assert.deepEqual(warnings, [undefined, undefined, '60%', '80%', '80%']);
  const r = await send(gw.port, { path: '/quota' });
  assertProblem(r, 429, 'NG_ERR_RATE_QUOTA_EXCEEDED');
  // noon on the pinned calendar: the UTC day ends in exactly 12 hours
  assert.equal(r.headers['retry-after'], String(12 * 3600), 'Retry-After names the end of the UTC day');
});

test('headers can be limited to the X-RateLimit set; routes without the policy carry none', async () => {
  const r = await send(gw.port, { path: '/legacy' });
  assert.equal(r.status, 200);
  assert.equal(r.headers['ratelimit-limit'], undefined);
  assert.equal(r.headers['x-ratelimit-limit'], '5');
  const plain = await send(gw.port, { path: '/plain' });
  assert.equal(plain.status, 200);
  assert.equal(plain.headers['x-ratelimit-limit'], undefined);
  assert.equal(plain.headers['ratelimit-limit'], undefined);
});

// A route that removes an upstream header writes its head one field at a time: the rate-limit fields, rendered as
// one block of lines, must come out as the same separate headers there, on a 429 too.
test('the RateLimit headers are whole where another policy removes a response header, and on its refusal', async () => {
  for (const want of ['1', '0']) {
    const r = await send(gw.port, { path: '/trimmed' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['cache-control'], 'no-store');
    for (const prefix of ['', 'x-']) {
      assert.equal(r.headers[`${prefix}ratelimit-limit`], '2');
      assert.equal(r.headers[`${prefix}ratelimit-remaining`], want);
      assert.match(String(r.headers[`${prefix}ratelimit-reset`]), /^\d+$/);
    }
  }
  const refused = await send(gw.port, { path: '/trimmed' });
  assertProblem(refused, 429, 'NG_ERR_RATE_LIMITED');
  for (const prefix of ['', 'x-']) {
    assert.equal(refused.headers[`${prefix}ratelimit-limit`], '2');
    assert.equal(refused.headers[`${prefix}ratelimit-remaining`], '0');
    assert.match(String(refused.headers[`${prefix}ratelimit-policy`]), /;q=2;w=3600$/);
  }
});

test('a named global limit is one bucket across the routes that use it', async () => {
  assert.equal((await send(gw.port, { path: '/shared-a' })).status, 200);
  assert.equal((await send(gw.port, { path: '/shared-b' })).status, 200);
  assert.equal((await send(gw.port, { path: '/shared-a' })).status, 200);
  assertProblem(await send(gw.port, { path: '/shared-b' }), 429, 'NG_ERR_RATE_LIMITED');
});

test('consumers are limited by id, and a plan listed under plans gets its own limits', async () => {
  const gold = { 'x-api-key': GOLD_KEY };
  const free = { 'x-api-key': FREE_KEY };
  assert.equal((await send(gw.port, { path: '/plans', headers: free })).status, 200);
  assertProblem(await send(gw.port, { path: '/plans', headers: free }), 429, 'NG_ERR_RATE_LIMITED');
  for (let i = 0; i < 3; i++) assert.equal((await send(gw.port, { path: '/plans', headers: gold })).status, 200);
  assertProblem(await send(gw.port, { path: '/plans', headers: gold }), 429, 'NG_ERR_RATE_LIMITED');
});

test('buckets keep their state across a config reload', async () => {
  // /bucket was used up by the first test; a reload of the same file must not refill it. It refills a token a
  // minute, so it is emptied again right here (a slow run may have earned one since).
  let drained = false;
  for (let i = 0; i < 5 && !drained; i++) drained = (await send(gw.port, { path: '/bucket' })).status === 429;
  assert.ok(drained);
  const was = gw.gateway.plan.version;
  assert.equal((await gw.gateway.reload()).version, was + 1, 'a new plan is in place');
  assertProblem(await send(gw.port, { path: '/bucket' }), 429, 'NG_ERR_RATE_LIMITED');
});

test('config errors name the path and the fix', () => {
  const bad = (policy: string) => {
    const file = writeConfig(`
upstreams: { app: { nodes: [{ url: "http://127.0.0.1:1" }] } }
routes:
  - name: r
    match: { prefix: / }
    upstream: app
    policies: { rateLimit: ${policy} }
`);
    assert.throws(() => compileConfig(loadConfigFile(file), file), (err: Error) => {
      assert.match(err.message, /routes\[0\]\.policies\.rateLimit/);
      return true;
    });
    return file;
  };
  bad('{ limits: [{ key: ip, rate: 5, scope: cluster }] }');
  bad('{ limits: [{ key: ip, rate: 5, algorithm: slidingWindow, burst: 9 }] }');
  bad('{ limits: [{ key: ip, rate: 5, lease: 3 }] }');
  bad('{ limits: [{ key: "cookie:x", rate: 5 }] }');
  bad('{}');
});

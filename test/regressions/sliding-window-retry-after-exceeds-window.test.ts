import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Region, SW_STRIDE, SW_SUBS, initRegion, regionBytes } from '../../src/policies/rate-limit/layout.js';
import { CheckOut, swTake } from '../../src/policies/rate-limit/store-shared.js';
import { createRedisClient, type ScriptedRedis } from '../../src/policies/rate-limit/store-redis.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { assertProblem, send } from '../helpers/http.js';

/**
 * A sliding window of 4 per minute answered a refused request "Retry-After: 63" (and RateLimit-Reset up to 66): a
 * sub-window was counted until its end plus the whole window, so the span summed one sub-window too many. A
 * sub-window now counts until the window has passed since its last admission: Retry-After and Reset never exceed
 * the window, a client that waits Retry-After is admitted, and no window of length `per` holds more than `rate`.
 * The shared-memory store is driven by its clock argument (no sleeping); the Redis script runs on a real server.
 */

const MINUTE = 60e6;
const SUB = MINUTE / SW_SUBS;

function window1(): Region {
  const sab = new SharedArrayBuffer(regionBytes(1, SW_STRIDE, false));
  initRegion(sab, 1, SW_STRIDE);
  return new Region(sab);
}

test('4 per minute, 4 requests 3 s into a sub-window: the 5th is told at most 60 s, and passes once they have', () => {
  const r = window1();
  const out = new CheckOut();
  const t0 = 1e12 - (1e12 % SUB) + 3e6; // 3 s into a sub-window, as in the report
  for (let i = 0; i < 4; i++) {
    assert.equal(swTake(r, 0, t0, SUB, 4, out), true);
    assert.ok(out.resetUs <= MINUTE, `reset ${out.resetUs} µs`);
  }
  assert.equal(swTake(r, 0, t0, SUB, 4, out), false);
  assert.ok(out.retryUs <= MINUTE && out.retryUs > MINUTE - 1000, `retry ${out.retryUs} µs, not more than the window`);
  assert.ok(Math.ceil(out.retryUs / 1e6) <= 60, 'Retry-After in seconds is at most 60');
  assert.ok(out.resetUs <= MINUTE);
  // The boundary: one window after the four, less a microsecond, still refused; just after it, all four pass again.
  assert.equal(swTake(r, 0, t0 + MINUTE - 1, SUB, 4, out), false);
  let admitted = 0;
  for (let i = 0; i < 5; i++) if (swTake(r, 0, t0 + MINUTE + 10, SUB, 4, out)) admitted++;
  assert.equal(admitted, 4);
});

test('at sub-window boundaries and random times: Retry-After and Reset never exceed the window and are truthful', () => {
  const r = window1();
  const out = new CheckOut();
  const limit = 4;
  const admittedAt: number[] = [];
  let now = 2e12 - (2e12 % SUB) - 1; // the last microsecond of a sub-window
  // a burst on the last microsecond of a sub-window, then one on the first of the next
  for (let i = 0; i < 3; i++) if (swTake(r, 0, now, SUB, limit, out)) admittedAt.push(now);
  now += 1;
  for (let i = 0; i < 3; i++) {
    if (swTake(r, 0, now, SUB, limit, out)) admittedAt.push(now);
    else assert.ok(out.retryUs <= MINUTE && out.resetUs <= MINUTE, `retry ${out.retryUs}, reset ${out.resetUs}`);
  }
  let seed = 7;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  for (let i = 0; i < 3000; i++) {
    now += Math.floor(rand() * 3 * SUB);
    const ok = swTake(r, 0, now, SUB, limit, out);
    assert.ok(out.resetUs <= MINUTE, `reset ${out.resetUs} µs at ${now}`);
    if (ok) {
      admittedAt.push(now);
      continue;
    }
    assert.ok(out.retryUs > 0 && out.retryUs <= MINUTE, `retry ${out.retryUs} µs at ${now}`);
    // A client that waits as told gets through (nothing else was admitted meanwhile).
    const later = now + out.retryUs + 10;
    assert.equal(swTake(r, 0, later, SUB, limit, out), true, `refused again after waiting ${out.retryUs} µs`);
    admittedAt.push(later);
    now = later;
  }
  for (let i = 0; i < admittedAt.length; i++) {
    let j = i;
    while (j < admittedAt.length && admittedAt[j] - admittedAt[i] < MINUTE) j++;
    assert.ok(j - i <= limit, `${j - i} admissions within one window from ${admittedAt[i]}`);
  }
});

let redis: TestRedis;
let client: ScriptedRedis;
let up: TestUpstream;
let gw: TestGateway;

before(async () => {
  redis = await startRedis();
  client = createRedisClient({ mode: 'standalone', url: redis.url, db: 0, tls: false, keyPrefix: 'test:', connectTimeoutMs: 1000, commandTimeoutMs: 1000 });
  up = await startUpstream();
  gw = await startGateway(`
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
routes:
  - name: window
    match: { prefix: /window }
    upstream: app
    policies:
      rateLimit: { limits: [{ key: route, algorithm: slidingWindow, rate: 4, per: minute }] }
`);
});
after(async () => {
  client.disconnect();
  await redis.stop();
  await gw.stop();
  await up.close();
});

test('the Redis script: a refused grant waits at most the window', async () => {
  const [granted] = await client.ngSlidingWindow('sw:4-per-minute', SUB, 4, 4);
  assert.equal(granted, 4);
  const [none, remaining, retryMs] = await client.ngSlidingWindow('sw:4-per-minute', SUB, 4, 4);
  assert.equal(none, 0);
  assert.equal(remaining, 0);
  assert.ok(retryMs > 0 && retryMs <= 60_000, `retry ${retryMs} ms, not more than the 60 s window`);
});

test('through the gateway: the 5th request of 4 per minute gets Retry-After and RateLimit-Reset of at most 60', async () => {
  for (let i = 0; i < 4; i++) {
    const ok = await send(gw.port, { path: '/window' });
    assert.equal(ok.status, 200);
    assert.ok(Number(ok.headers['ratelimit-reset']) <= 60, `RateLimit-Reset ${ok.headers['ratelimit-reset']}`);
  }
  const r = await send(gw.port, { path: '/window' });
  assertProblem(r, 429, 'NG_ERR_RATE_LIMITED');
  const retry = Number(r.headers['retry-after']);
  assert.ok(retry >= 59 && retry <= 60, `Retry-After ${retry}`);
  assert.ok(Number(r.headers['ratelimit-reset']) <= 60, `RateLimit-Reset ${r.headers['ratelimit-reset']}`);
});

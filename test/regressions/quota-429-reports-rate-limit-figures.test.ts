import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { assertProblem, send } from '../helpers/http.js';

/**
 * A 429 for an exceeded quota once carried the figures of the rate limit checked before it (RateLimit-Limit: 100,
 * RateLimit-Remaining: 99) while the quota had none left. A refusal now reports the limit that refused: its figures
 * in RateLimit-* / X-RateLimit-* and Retry-After, and its name in the body (`limit`) and in RateLimit-Policy.
 */

let up: TestUpstream;
let gw: TestGateway;

// The quota's period ends at midnight UTC: the gateway's calendar clock stands at noon, so the figures are exact
// whatever time the test runs (src/shared/clock.ts calendarNow).
const WALL_CLOCK = '2026-01-05T12:00:00.000Z';
const savedWallClock = process.env.NANOGATE_TEST_WALL_CLOCK;

before(async () => {
  process.env.NANOGATE_TEST_WALL_CLOCK = WALL_CLOCK;
  up = await startUpstream();
  gw = await startGateway(`
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
routes:
  - name: rate-and-quota
    match: { prefix: /quota }
    upstream: app
    policies:
      rateLimit:
        limits: [{ key: ip, rate: 100, per: second }]
        quota: { per: day, limit: 3, key: ip }
  - name: two-rates
    match: { prefix: /rates }
    upstream: app
    policies:
      rateLimit:
        limits:
          - { key: ip, rate: 100, per: second }
          - { key: ip, rate: 2, per: hour, name: hourly }
`);
});
after(async () => {
  await gw.stop();
  await up.close();
  if (savedWallClock === undefined) delete process.env.NANOGATE_TEST_WALL_CLOCK;
  else process.env.NANOGATE_TEST_WALL_CLOCK = savedWallClock;
});

test('a quota refusal reports the quota: its limit, 0 remaining, the end of the period, and its name', async () => {
  for (let i = 0; i < 3; i++) assert.equal((await send(gw.port, { path: '/quota' })).status, 200);
  const r = await send(gw.port, { path: '/quota' });
  const body = assertProblem(r, 429, 'NG_ERR_RATE_QUOTA_EXCEEDED');
  assert.equal(body.limit, 'quota');
  const untilMidnight = 12 * 3600;
  for (const prefix of ['ratelimit-', 'x-ratelimit-']) {
    assert.equal(r.headers[`${prefix}limit`], '3', `${prefix}limit is the quota's`);
    assert.equal(r.headers[`${prefix}remaining`], '0', `${prefix}remaining is the quota's`);
    assert.equal(Number(r.headers[`${prefix}reset`]), untilMidnight, `${prefix}reset ${r.headers[`${prefix}reset`]}: the end of the UTC day`);
    assert.equal(r.headers[`${prefix}policy`], '"quota";q=3;w=86400');
  }
  assert.equal(Number(r.headers['retry-after']), untilMidnight);
  assert.equal(up.received.filter((x) => x.url.startsWith('/quota')).length, 3);
});

test('with two rate limits, the refusal names the one that refused (by its name) and reports its figures', async () => {
  for (let i = 0; i < 2; i++) assert.equal((await send(gw.port, { path: '/rates' })).status, 200);
  const r = await send(gw.port, { path: '/rates' });
  const body = assertProblem(r, 429, 'NG_ERR_RATE_LIMITED');
  assert.equal(body.limit, 'hourly');
  assert.equal(r.headers['ratelimit-limit'], '2');
  assert.equal(r.headers['ratelimit-remaining'], '0');
  assert.equal(r.headers['ratelimit-policy'], '"hourly";q=2;w=3600');
  const retry = Number(r.headers['retry-after']);
  assert.ok(retry > 1000 && retry <= 1800, `Retry-After ${retry}: one of 2 tokens per hour comes back in 30 minutes`);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SCHEDULE_SLOTS, SplitState, p95Ms, quantileMs, weightsHash } from '../../src/traffic/split-state.js';
import { BY_AFFINITY, BY_STICKY, BY_TARGETING, BY_WEIGHT, TrafficSplit, bucketOf, buildRanges, buildSchedule, cookieEnd, cookieStart, type SplitRequest } from '../../src/traffic/split.js';
import { applyConfiguredWeights, type PlanTraffic } from '../../src/traffic/compile.js';
import { BUCKETS } from '../../src/observe/metrics-layout.js';

function region(versions: number): SplitState {
  return new SplitState(new SharedArrayBuffer(SplitState.bytes(versions)), versions);
}

test('setWeights bumps the generation by two (a seqlock) and readWeights returns a whole set', () => {
  const s = region(3);
  assert.equal(s.generation(), 0);
  s.setWeights([900, 50, 50]);
  assert.equal(s.generation(), 2);
  const out = [0, 0, 0];
  assert.equal(s.readWeights(out), 2);
  assert.deepEqual(out, [900, 50, 50]);
  assert.equal(s.weight(1), 50);
});

test('setWeights refuses weights that are not per-mille integers adding to 1000', () => {
  const s = region(2);
  assert.throws(() => s.setWeights([500, 400]), /add to 1000/);
  assert.throws(() => s.setWeights([999.5, 0.5]), /integer/);
  assert.throws(() => s.setWeights([1000]), /expected 2 weights/);
  assert.equal(s.generation(), 0, 'a refused write changes nothing');
});

test('a reader during a write (odd generation) is told to keep what it had', () => {
  const s = region(2);
  s.setWeights([500, 500]);
  Atomics.add(s.cells, 0, 1); // a writer in the middle of its write
  assert.equal(s.readWeights([0, 0]), -1);
});

test('the schedule counter maps to slots 0..999 in order, and stays in phase when it folds', () => {
  const s = region(2);
  assert.equal(s.nextSlot(), 0);
  assert.equal(s.nextSlot(), 1);
  Atomics.store(s.cells, 3, 1_000_000_998);
  assert.equal(s.nextSlot(), 998);
  assert.equal(s.nextSlot(), 999);
  assert.equal(s.nextSlot(), 0);
  assert.ok(Atomics.load(s.cells, 3) < 1_000_000_000, 'the counter was folded back');
});

test('record counts requests, errors (5xx or flagged) and latency buckets per version', () => {
  const s = region(2);
  s.record(1, 200, 800); // 0.8 ms
  s.record(1, 503, 20_000);
  s.record(1, 200, 900, true); // a gateway failure a fallback answered for
  s.record(0, 200, 100);
  assert.equal(s.requests(1), 3);
  assert.equal(s.errors(1), 2);
  assert.equal(s.requests(0), 1);
  assert.equal(s.errors(0), 0);
  const h = new Int32Array(BUCKETS);
  s.histogram(1, h);
  assert.equal(h.reduce((a, b) => a + b, 0), 3);
  assert.equal(s.latencySumUs(1), 21_700);
});

test('quantileMs interpolates inside the bucket, as histogram_quantile does', () => {
  const b = new Int32Array(BUCKETS);
  b[5] = 100; // (0.5, 1] ms
  assert.equal(quantileMs(b, 0.5), 0.75);
  assert.equal(p95Ms(b), 0.975);
  assert.equal(p95Ms(new Int32Array(BUCKETS)), 0);
  b[BUCKETS - 1] = 1000; // +Inf
  assert.equal(p95Ms(b), 10_000);
});

test('weightsHash differs for different weights and is never 0 (a fresh region)', () => {
  assert.notEqual(weightsHash([950, 50]), weightsHash([750, 250]));
  assert.equal(weightsHash([950, 50]), weightsHash([950, 50]));
  assert.notEqual(weightsHash([1000, 0]), 0);
});

test('the schedule gives every version exactly its per-mille share, and every window of 100 slots within one request', () => {
  for (const weights of [[950, 50], [500, 500], [333, 333, 334], [875, 125], [1000, 0], [0, 1000], [10, 990], [701, 199, 100]]) {
    const out = new Uint8Array(SCHEDULE_SLOTS);
    buildSchedule(weights, 1000, out);
    for (let v = 0; v < weights.length; v++) {
      assert.equal(out.filter((x) => x === v).length, weights[v], `${weights}: version ${v}`);
      for (let start = 0; start < SCHEDULE_SLOTS; start++) {
        let n = 0;
        for (let i = 0; i < 100; i++) if (out[(start + i) % SCHEDULE_SLOTS] === v) n++;
        assert.ok(Math.abs(n - weights[v] / 10) < 2, `${weights}: window at ${start} has ${n} of version ${v}`);
      }
    }
  }
});

test('sticky ranges: raising the last version only moves buckets into it', () => {
  const at5 = new Uint8Array(SCHEDULE_SLOTS);
  const at25 = new Uint8Array(SCHEDULE_SLOTS);
  buildRanges([950, 50], 1000, at5);
  buildRanges([750, 250], 1000, at25);
  assert.equal(at5.filter((v) => v === 1).length, 50);
  assert.equal(at25.filter((v) => v === 1).length, 250);
  for (let b = 0; b < SCHEDULE_SLOTS; b++) if (at5[b] === 1) assert.equal(at25[b], 1, `bucket ${b} left the canary`);
  const zero = new Uint8Array(SCHEDULE_SLOTS);
  buildRanges([0, 1000, 0], 1000, zero);
  assert.ok(zero.every((v) => v === 1), 'versions at weight 0 hold no bucket');
});

test('bucketOf hashes a range of a string without slicing it, spread over 0..999', () => {
  assert.equal(bucketOf('xx-user-42-yy', 3, 10), bucketOf('user-42', 0, 7));
  const counts = new Array(10).fill(0);
  for (let i = 0; i < 10_000; i++) counts[Math.floor(bucketOf(`user-${i}`, 0, `user-${i}`.length) / 100)]++;
  for (const c of counts) assert.ok(c > 850 && c < 1150, `decile count ${c}`);
});

test('cookieStart and cookieEnd find a cookie by its exact name', () => {
  const h = 'xsid=1; sid=abc ; other=2';
  const s = cookieStart(h, 'sid');
  assert.equal(h.slice(s, cookieEnd(h, s)), 'abc');
  assert.equal(cookieStart('a=1;sid=z', 'sid'), 8);
  assert.equal(cookieStart('sidx=1', 'sid'), -1);
  assert.equal(cookieStart('', 'sid'), -1);
});

class Req implements SplitRequest {
  clientIp = '192.0.2.1';
  consumerId: string | null = null;
  consumerIndex = -1;
  consumerPlan: string | null = null;
  roles: readonly string[] | null = null;
  headers: Record<string, string> = {};
  set: string[] = [];
  header(name: string): string | undefined {
    return this.headers[name];
  }
  addResponseHeader(name: string, value: string): void {
    this.set.push(`${name}: ${value}`);
  }
}

function split(extra: Partial<PlanTraffic>, weights = [500, 500]): TrafficSplit {
  const versions = [{ name: 'v1.0', upstream: 0 }, { name: 'v2.1.0', upstream: 1 }];
  const t: PlanTraffic = {
    regionKey: 'k', region: new SharedArrayBuffer(SplitState.bytes(2)), versions, weights, configHash: weightsHash(weights),
    sticky: null, targeting: null, affinity: null, ...extra,
  };
  applyConfiguredWeights(t);
  return new TrafficSplit(t, 'r', [0, 1], null, false);
}

test('pick: targeting, then a valid affinity cookie, then the sticky key, then the schedule', () => {
  const s = split({
    sticky: { by: 'header', name: 'x-user' },
    targeting: [{ version: 1, kind: 'header', name: 'x-canary', value: 'yes' }],
    affinity: { cookie: 'ngv', ttlSeconds: 60, secret: 'sixteen-bytes-secret!' },
  });
  const r = new Req();
  const first = s.pick(r);
  assert.equal(s.lastBy, BY_WEIGHT);
  assert.equal(r.set.length, 1);
  const cookie = r.set[0].slice('set-cookie: '.length).split(';')[0];
  assert.match(cookie, new RegExp(`^ngv=${s.names[first].replaceAll('.', '\\.')}\\.\\d+\\.`));
  // the cookie holds whatever the schedule says next (version names with dots parse)
  const again = new Req();
  again.headers.cookie = cookie;
  for (let i = 0; i < 10; i++) {
    assert.equal(s.pick(again), first);
    assert.equal(s.lastBy, BY_AFFINITY);
  }
  assert.deepEqual(again.set, []);
  // targeting beats the cookie
  again.headers['x-canary'] = 'yes';
  assert.equal(s.pick(again), 1);
  assert.equal(s.lastBy, BY_TARGETING);
  // no cookie, a sticky key: its range decides
  const keyed = new Req();
  keyed.headers['x-user'] = 'user-1';
  const v = s.pick(keyed);
  assert.equal(s.lastBy, BY_STICKY);
  assert.equal(v, bucketOf('user-1', 0, 6) < 500 ? 0 : 1);
});

test('pick follows weights written into the region after the split was built (a new generation)', () => {
  const s = split({});
  const state = new SplitState(s.plan.region, 2);
  state.setWeights([0, 1000]);
  for (let i = 0; i < 20; i++) assert.equal(s.pick(new Req()), 1);
  state.setWeights([1000, 0]);
  for (let i = 0; i < 20; i++) assert.equal(s.pick(new Req()), 0);
});

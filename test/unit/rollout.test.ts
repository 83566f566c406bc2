import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BOUNDS_MS, BUCKETS, bucketOf } from '../../src/observe/metrics-layout.js';
import { delta32, errorRatePct, failures, quantileMs, windowOf, type Sample } from '../../src/traffic/rollout-criteria.js';
import { RolloutMachine, RolloutStateError, weightsFor } from '../../src/traffic/rollout-machine.js';
import { compileRollout, type PlanRollout, type RolloutConfig } from '../../src/traffic/rollout-schema.js';
import type { ConfigIssue } from '../../src/config/errors.js';

/**
 * The rollout's arithmetic and its state machine, without a gateway: samples are built by hand the way the split
 * region holds them (cumulative 32-bit counters, latency buckets of src/observe/metrics-layout.ts).
 */

/** A fake region of two or more versions that requests are "recorded" into, and sampled from. */
class Counters {
  requests: number[];
  errors: number[];
  buckets: Int32Array[];
  constructor(versions: number, start = 0) {
    this.requests = new Array(versions).fill(start | 0);
    this.errors = new Array(versions).fill(start | 0);
    this.buckets = Array.from({ length: versions }, () => new Int32Array(BUCKETS).fill(start | 0));
  }
  record(v: number, n: number, { errors = 0, ms = 1 }: { errors?: number; ms?: number } = {}): void {
    this.requests[v] = (this.requests[v] + n) | 0;
    this.errors[v] = (this.errors[v] + errors) | 0;
    this.buckets[v][bucketOf(ms)] = (this.buckets[v][bucketOf(ms)] + n) | 0;
  }
  sample(at: number): Sample {
    return { at, requests: [...this.requests], errors: [...this.errors], buckets: this.buckets.map((b) => Int32Array.from(b)) };
  }
}

function spec(over: Partial<PlanRollout> = {}): PlanRollout {
  return {
    version: 1,
    versionNames: ['stable', 'canary'],
    steps: [50, 250, 500, 1000],
    soakMs: 1000,
    intervalMs: 250,
    minRequests: 20,
    maxErrorRateIncrease: 1,
    maxP95Increase: 20,
    p95FloorMs: 0,
    noOpenCircuit: true,
    rollback: true,
    baseWeights: [950, 50],
    identity: 'x',
    ...over,
  };
}

test('delta32 takes differences across the 32-bit wrap', () => {
  assert.equal(delta32(5, 3), 2);
  assert.equal(delta32(-2147483648, 2147483647), 1); // INT32_MAX + 1 wraps to INT32_MIN
  assert.equal(delta32(10, -10), 20);
  assert.equal(delta32(3, -5 | 0), 8);
  // counters that started near the wrap and crossed it
  const c = new Counters(2, 2147483600);
  const a = c.sample(0);
  c.record(1, 100, { errors: 7, ms: 3 });
  const w = windowOf(a, c.sample(1), [1]);
  assert.equal(w.requests, 100);
  assert.equal(w.errors, 7);
  assert.equal(errorRatePct(w), 7);
  assert.equal(w.buckets[bucketOf(3)], 100);
});

test('P95 from bucket deltas: interpolated inside the bucket, as histogram_quantile does', () => {
  const b = new Float64Array(BUCKETS);
  assert.equal(quantileMs(b, 0.95), null);
  // 100 requests, all in the (2.5, 5] ms bucket: rank 95 is 95 % of the way through it
  b[bucketOf(4)] = 100;
  assert.equal(BOUNDS_MS[bucketOf(4)], 5);
  assert.ok(Math.abs(quantileMs(b, 0.95)! - (2.5 + 2.5 * 0.95)) < 1e-9);
  // 90 fast ones, 10 slow (250, 500]: the 95th is in the slow bucket, half way
  const c = new Float64Array(BUCKETS);
  c[bucketOf(0.8)] = 90;
  c[bucketOf(300)] = 10;
  assert.ok(Math.abs(quantileMs(c, 0.95)! - 375) < 1e-9);
  // beyond the last bound: the highest finite bound
  const d = new Float64Array(BUCKETS);
  d[BUCKETS - 1] = 5;
  assert.equal(quantileMs(d, 0.95), 10000);
  // the window of two samples, not the totals: old slow requests do not count
  const k = new Counters(2);
  k.record(1, 50, { ms: 800 });
  const from = k.sample(0);
  k.record(1, 50, { ms: 0.7 });
  assert.ok(quantileMs(windowOf(from, k.sample(1), [1]).buckets, 0.95)! <= 1);
});

test('criteria: error-rate points over stable, P95 percent over stable, an empty stable window', () => {
  const c = new Counters(2);
  c.record(0, 1000, { errors: 10, ms: 4 }); // stable 1 %
  c.record(1, 100, { errors: 2, ms: 4 }); // canary 2 %: +1 point, allowed
  const z = new Counters(2).sample(0);
  const s = c.sample(1);
  const crit = { maxErrorRateIncrease: 1, maxP95Increase: 20, p95FloorMs: 0 };
  assert.deepEqual(failures(crit, windowOf(z, s, [1]), windowOf(z, s, [0])), []);
  c.record(1, 100, { errors: 4, ms: 4 }); // canary 6/200 = 3 %
  const s2 = c.sample(2);
  assert.match(failures(crit, windowOf(z, s2, [1]), windowOf(z, s2, [0]))[0], /^error rate 3 % > stable 1 % \+ 1 points$/);
  assert.deepEqual(failures({ maxErrorRateIncrease: null, maxP95Increase: 20, p95FloorMs: 0 }, windowOf(z, s2, [1]), windowOf(z, s2, [0])), []);
  // slow canary: P95 in (50, 100] against stable's (2.5, 5]
  const p = new Counters(2);
  p.record(0, 500, { ms: 4 });
  p.record(1, 100, { ms: 80 });
  const sp = p.sample(1);
  const f = failures(crit, windowOf(z, sp, [1]), windowOf(z, sp, [0]));
  assert.equal(f.length, 1);
  assert.match(f[0], /^P95 97\.5 ms > stable 4\.875 ms \+ 20 %$/);
  // the floor: a P95 of 0.975 ms against 0.4875 ms is +100 %, but both are under 5 ms
  const q = new Counters(2);
  q.record(0, 500, { ms: 0.3 });
  q.record(1, 100, { ms: 0.8 });
  const sq = q.sample(1);
  assert.equal(failures(crit, windowOf(z, sq, [1]), windowOf(z, sq, [0])).length, 1);
  assert.deepEqual(failures({ ...crit, p95FloorMs: 5 }, windowOf(z, sq, [1]), windowOf(z, sq, [0])), []);
  assert.match(failures({ ...crit, p95FloorMs: 5 }, windowOf(z, sp, [1]), windowOf(z, sp, [0]))[0], /\+ 20 % of the 5 ms floor$/);
  // nothing to compare with: error rate against 0, P95 not judged
  const e = new Counters(2);
  e.record(1, 100, { ms: 80 });
  assert.deepEqual(failures(crit, windowOf(z, e.sample(1), [1]), windowOf(z, e.sample(1), [0])), []);
});

test('weights: the others share the rest in their configured proportions, leftovers to the first', () => {
  assert.deepEqual(weightsFor({ version: 1, baseWeights: [950, 50] }, 250), [750, 250]);
  assert.deepEqual(weightsFor({ version: 2, baseWeights: [500, 500, 0] }, 333), [334, 333, 333]);
  assert.deepEqual(weightsFor({ version: 0, baseWeights: [1000, 0, 0] }, 100), [100, 900, 0]);
  assert.deepEqual(weightsFor({ version: 1, baseWeights: [700, 0, 300] }, 0), [700, 0, 300]);
});

/** Drives a machine with `perTick` requests per version share every interval; returns the decisions. */
function drive(m: RolloutMachine, c: Counters, t: { now: number }, ticks: number, load: (canaryShare: number) => void) {
  const out = [];
  for (let i = 0; i < ticks; i++) {
    load(m.weights[m.spec.version] / 1000);
    t.now += m.spec.intervalMs;
    const d = m.evaluate(c.sample(t.now), false);
    if (d) out.push(d);
  }
  return out;
}

test('a healthy canary steps through every step after its soak and is promoted', () => {
  const c = new Counters(2);
  const t = { now: 1_000_000 };
  const m = new RolloutMachine(spec(), c.sample(t.now));
  assert.equal(m.state, 'running');
  assert.deepEqual(m.weights, [950, 50]);
  const healthy = (share: number) => {
    c.record(1, Math.round(2000 * share) || 0, { ms: 2 });
    c.record(0, Math.round(2000 * (1 - share)), { ms: 2 });
  };
  // 100 canary requests per interval at 5 %: enough for P95 at once, soak (1 s) after 4 intervals
  const first = drive(m, c, t, 3, healthy);
  assert.deepEqual(first, []);
  assert.equal(m.lastEvaluation?.verdict, 'soaking');
  const rest = drive(m, c, t, 20, healthy);
  assert.deepEqual(rest.map((d) => d.action), ['step', 'step', 'promote']);
  assert.deepEqual(rest.map((d) => d.weights.canary), [25, 50, 100]);
  assert.equal(m.state, 'promoted');
  assert.deepEqual(m.weights, [0, 1000]);
  // every decision carries its numbers
  const ev = rest[0].evaluation!;
  assert.equal(ev.verdict, 'pass');
  assert.ok(ev.stepWindow.canary.requests >= 100);
  assert.equal(ev.stepWindow.canary.errorRatePct, 0);
  assert.ok(ev.elapsedMs >= 1000);
  assert.deepEqual(m.history.map((d) => d.action), ['start', 'step', 'step', 'promote']);
  // promoted: nothing more happens
  assert.deepEqual(drive(m, c, t, 3, healthy), []);
});

test('a canary that turns bad in the middle of a long step is judged on its newest requests', () => {
  const c = new Counters(2);
  const t = { now: 0 };
  const m = new RolloutMachine(spec({ soakMs: 60_000, minRequests: 40 }), c.sample(0));
  const good = () => { c.record(0, 190, { ms: 2 }); c.record(1, 10, { ms: 2 }); };
  drive(m, c, t, 40, good); // 400 good canary requests in the step
  assert.equal(m.lastEvaluation?.verdict, 'soaking');
  // now 2 of every 10 canary requests fail (20 %): the whole step is at ~1-2 % for a while, the newest 40 at 20 %
  let ticks = 0;
  let decision = null;
  while (decision === null && ticks < 10) {
    ticks++;
    decision = drive(m, c, t, 1, () => { c.record(0, 190, { ms: 2 }); c.record(1, 10, { errors: 2, ms: 2 }); })[0] ?? null;
  }
  const decisions = [decision!];
  assert.equal(decisions[0].action, 'rollback');
  assert.equal(m.state, 'rolled_back');
  assert.deepEqual(m.weights, [1000, 0]);
  assert.ok(ticks <= 4, `rolled back after ${ticks} bad intervals`);
  assert.match(decisions[0].reason, /^last \d+ requests: error rate/);
});

test('an interval in which every canary request failed rolls back before minRequests', () => {
  const c = new Counters(2);
  const m = new RolloutMachine(spec({ minRequests: 1000 }), c.sample(0));
  c.record(0, 100);
  c.record(1, 5, { errors: 5 });
  const d = m.evaluate(c.sample(250), false);
  assert.equal(d?.action, 'rollback');
  assert.match(d!.reason, /all 5 canary requests of the last interval failed/);
  // two failures are not enough to judge
  const c2 = new Counters(2);
  const m2 = new RolloutMachine(spec({ minRequests: 1000 }), c2.sample(0));
  c2.record(1, 2, { errors: 2 });
  assert.equal(m2.evaluate(c2.sample(250), false), null);
  assert.equal(m2.lastEvaluation?.verdict, 'waiting');
});

test('P95 is judged only on windows of P95_MIN_REQUESTS canary requests; the step waits for them', () => {
  const c = new Counters(2);
  const m = new RolloutMachine(spec({ minRequests: 10, soakMs: 250 }), c.sample(0));
  // 60 canary answers, one of them slow: the P95 of 60 would be that one's bucket, but it is not judged yet
  c.record(0, 1000, { ms: 2 });
  c.record(1, 59, { ms: 2 });
  c.record(1, 1, { ms: 900 });
  assert.equal(m.evaluate(c.sample(250), false), null);
  assert.equal(m.lastEvaluation?.verdict, 'waiting');
  assert.equal(m.lastEvaluation?.recentP95, null);
  assert.equal(m.lastEvaluation?.recent?.canary.requests, 60); // the shortest run of samples with minRequests
  // 100 of them, 20 % slow: judged, and failed
  c.record(0, 1000, { ms: 2 });
  c.record(1, 20, { ms: 2 });
  c.record(1, 20, { ms: 900 });
  const d = m.evaluate(c.sample(500), false);
  assert.equal(d?.action, 'rollback');
  assert.match(d!.reason, /^last 100 requests: P95/);
  const judged = m.lastEvaluation as { recentP95: { canary: { requests: number } } | null };
  assert.equal(judged.recentP95?.canary.requests, 100);
  // a healthy 100 pass
  const h = new Counters(2);
  const m2 = new RolloutMachine(spec({ minRequests: 10, soakMs: 250 }), h.sample(0));
  h.record(0, 1000, { ms: 2 });
  h.record(1, 99, { ms: 2 });
  h.record(1, 1, { ms: 900 });
  assert.equal(m2.evaluate(h.sample(250), false)?.action, 'step');
});

test('an open circuit on the canary upstream fails at once; noOpenCircuit: false ignores it', () => {
  const c = new Counters(2);
  const m = new RolloutMachine(spec(), c.sample(0));
  assert.equal(m.evaluate(c.sample(250), true)?.action, 'rollback');
  const m2 = new RolloutMachine(spec({ noOpenCircuit: false }), c.sample(0));
  assert.equal(m2.evaluate(c.sample(250), true), null);
});

test('a step without minRequests keeps waiting, whatever its soak', () => {
  const c = new Counters(2);
  const t = { now: 0 };
  const m = new RolloutMachine(spec({ minRequests: 100 }), c.sample(0));
  drive(m, c, t, 50, () => c.record(1, 1));
  assert.equal(m.state, 'running');
  assert.equal(m.step, 0);
  assert.equal(m.lastEvaluation?.verdict, 'waiting');
  assert.equal(m.lastEvaluation?.stepWindow.canary.requests, 50);
});

test('rollback: false holds the weights and pauses once', () => {
  const c = new Counters(2);
  const m = new RolloutMachine(spec({ rollback: false, minRequests: 10 }), c.sample(0));
  c.record(0, 100);
  c.record(1, 20, { errors: 5 });
  const d = m.evaluate(c.sample(250), false);
  assert.equal(d?.action, 'hold');
  assert.equal(m.state, 'paused');
  assert.deepEqual(m.weights, [950, 50]);
  c.record(1, 20, { errors: 5 });
  assert.equal(m.evaluate(c.sample(500), false), null);
});

test('pause, resume, promote, abort and the states they refuse', () => {
  const c = new Counters(2);
  const m = new RolloutMachine(spec(), c.sample(0));
  assert.throws(() => m.resume(c.sample(1), 'op'), RolloutStateError);
  m.pause(10, 'op');
  assert.equal(m.state, 'paused');
  assert.throws(() => m.pause(11, 'op'), RolloutStateError);
  // paused: a passing step does not advance
  const t = { now: 0 };
  drive(m, c, t, 20, () => { c.record(0, 100); c.record(1, 20); });
  assert.equal(m.step, 0);
  assert.equal(m.lastEvaluation?.verdict, 'paused');
  // resume: the step starts over from this sample
  m.resume(c.sample(t.now), 'op');
  assert.equal(m.state, 'running');
  assert.equal(m.stepStartedAt, t.now);
  // paused, a failing canary is still rolled back
  m.pause(t.now, 'op');
  c.record(1, 10, { errors: 10 });
  assert.equal(m.evaluate(c.sample(t.now + 250), false)?.action, 'rollback');
  // promote from rolled_back, then abort
  assert.equal(m.promote(t.now + 300, 'op').to, 'promoted');
  assert.deepEqual(m.weights, [0, 1000]);
  assert.throws(() => m.promote(t.now + 301, 'op'), RolloutStateError);
  assert.equal(m.abort(t.now + 302, 'op').from, 'promoted');
  assert.deepEqual(m.weights, [1000, 0]);
  assert.throws(() => m.abort(t.now + 303, 'op'), RolloutStateError);
  assert.deepEqual(m.history.map((d) => `${d.action}:${d.by}`), ['start:controller', 'pause:op', 'resume:op', 'pause:op', 'rollback:controller', 'promote:op', 'abort:op']);
});

test('compileRollout refuses what the schema cannot see, with the path', () => {
  const versions = [{ name: 'stable', upstream: 'a', weight: 95 }, { name: 'canary', upstream: 'b', weight: 5 }];
  const base: RolloutConfig = { version: 'canary', steps: [5, 25, 50, 100], soakSeconds: 2, intervalSeconds: 0.5, minRequests: 10, criteria: { maxErrorRateIncrease: 1, p95FloorMs: 5, noOpenCircuit: true }, rollback: true };
  const issues = (r: Partial<RolloutConfig>) => {
    const out: ConfigIssue[] = [];
    compileRollout({ ...base, ...r }, versions, 'routes[0].traffic.rollout', out);
    return out.map((i) => `${i.path}: ${i.message}`);
  };
  assert.deepEqual(issues({}), []);
  assert.deepEqual(issues({ steps: [5, 25, 25] }), ['routes[0].traffic.rollout.steps[2]: 25 is not above the step before it (25): steps must increase']);
  assert.deepEqual(issues({ steps: [50, 10] }), ['routes[0].traffic.rollout.steps[1]: 10 is not above the step before it (50): steps must increase']);
  assert.deepEqual(issues({ steps: [2.55] }), ['routes[0].traffic.rollout.steps[0]: 2.55: a step has one decimal at most']);
  assert.match(issues({ version: 'canry' })[0], /^routes\[0\]\.traffic\.rollout\.version: "canry" is not one of the route's versions$/);
  assert.match(issues({ soakSeconds: 0.2 })[0], /^routes\[0\]\.traffic\.rollout\.soakSeconds: 0\.2 s is shorter than intervalSeconds/);
  assert.match(issues({ criteria: { p95FloorMs: 5, noOpenCircuit: true } })[0], /^routes\[0\]\.traffic\.rollout\.criteria: has neither maxErrorRateIncrease nor maxP95Increase/);
  const out: ConfigIssue[] = [];
  const plan = compileRollout(base, versions, 'r', out)!;
  assert.deepEqual(plan.steps, [50, 250, 500, 1000]);
  assert.deepEqual(plan.baseWeights, [950, 50]);
  assert.equal(plan.intervalMs, 500);
  assert.equal(plan.maxP95Increase, null);
  // identity: the same block gives the same identity, a changed one another
  assert.equal(compileRollout({ ...base }, versions, 'r', [])!.identity, plan.identity);
  assert.notEqual(compileRollout({ ...base, soakSeconds: 3 }, versions, 'r', [])!.identity, plan.identity);
  // configured weights are not part of it
  assert.equal(compileRollout(base, [{ ...versions[0], weight: 90 }, { ...versions[1], weight: 10 }], 'r', [])!.identity, plan.identity);
});

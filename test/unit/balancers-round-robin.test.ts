import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ArrayNodeView } from '../../src/upstream/balancers/array-view.js';
import { RoundRobinBalancer, smoothSchedule } from '../../src/upstream/balancers/round-robin.js';

function counts(b: RoundRobinBalancer, v: ArrayNodeView, picks: number, skip = -1): number[] {
  const c = new Array<number>(v.count).fill(0);
  for (let k = 0; k < picks; k++) c[b.pick(v, skip, 0)]++;
  return c;
}

test('the live schedule is the smooth schedule: 5,1,1 gives a a b a c a a', () => {
  assert.deepEqual(smoothSchedule([5, 1, 1]), [0, 0, 1, 0, 2, 0, 0]);
  const b = new RoundRobinBalancer({ seed: 0 });
  const v = new ArrayNodeView(3, { weights: [5, 1, 1] });
  const seq = Array.from({ length: 14 }, () => b.pick(v, -1, 0));
  assert.deepEqual(seq, [...smoothSchedule([5, 1, 1]), ...smoothSchedule([5, 1, 1])]);
});

test('weights are honoured exactly over whole rounds, from any seeded start phase', () => {
  for (const seed of [1, 2, 99, 0xdeadbeef]) {
    const b = new RoundRobinBalancer({ seed });
    const v = new ArrayNodeView(4, { weights: [1, 2, 3, 4] });
    const c = counts(b, v, 10_000);
    // Bounded counters: within one round (Σw = 10) of the exact share.
    for (let i = 0; i < 4; i++) assert.ok(Math.abs(c[i] - (i + 1) * 1000) <= 10, `seed ${seed} node ${i}: ${c[i]}`);
  }
});

test('smooth: a heavy node never takes a long burst, equal weights alternate strictly', () => {
  const b = new RoundRobinBalancer({ seed: 3 });
  const v = new ArrayNodeView(3, { weights: [8, 1, 1] });
  let run = 0;
  let longest = 0;
  let prev = -1;
  for (let k = 0; k < 1000; k++) {
    const i = b.pick(v, -1, 0);
    run = i === prev ? run + 1 : 1;
    prev = i;
    if (run > longest) longest = run;
  }
  // 8 of every 10 go to node 0; smooth WRR interleaves b and c (a a a b a a c a a a): runs of at most 6 across
  // rounds, where plain WRR sends 8 in a row.
  assert.ok(longest <= 6, `longest run ${longest}`);
  const eq = new RoundRobinBalancer({ seed: 5 });
  const v3 = new ArrayNodeView(3);
  const seq = Array.from({ length: 30 }, () => eq.pick(v3, -1, 0));
  for (let k = 3; k < seq.length; k++) assert.equal(seq[k], seq[k - 3], 'equal weights cycle with period 3');
  assert.equal(new Set(seq.slice(0, 3)).size, 3);
});

test('different seeds start workers on different nodes', () => {
  const firsts = new Set<number>();
  for (let seed = 1; seed <= 20; seed++) firsts.add(new RoundRobinBalancer({ seed }).pick(new ArrayNodeView(4), -1, 0));
  assert.ok(firsts.size >= 3, `first picks: ${[...firsts]}`);
});

test('an unavailable or skipped node sits out; the others share its turns by weight', () => {
  const b = new RoundRobinBalancer({ seed: 11 });
  const v = new ArrayNodeView(3, { weights: [1, 1, 2] });
  v.up[0] = 0;
  const c = counts(b, v, 3000);
  assert.equal(c[0], 0);
  assert.ok(Math.abs(c[1] - 1000) <= 3 && Math.abs(c[2] - 2000) <= 3, String(c));
  v.up[0] = 1;
  const s = counts(b, v, 3000, 2);
  assert.equal(s[2], 0);
  assert.ok(Math.abs(s[0] - 1500) <= 3, String(s));
});

test('weights that change between picks (slow start) take effect at once, fractions included', () => {
  const b = new RoundRobinBalancer({ seed: 4 });
  const v = new ArrayNodeView(2, { weights: [1, 0.25] });
  const c = counts(b, v, 5000);
  assert.ok(Math.abs(c[1] - 1000) <= 2, String(c));
  v.weights[1] = 1;
  const d = counts(b, v, 5000);
  assert.ok(Math.abs(d[1] - 2500) <= 3, String(d));
});

test('with the configured weights: the unrolled schedule, the same picks as the live steps', () => {
  const weights = [5, 1, 1];
  const b = new RoundRobinBalancer({ seed: 0, weights });
  const v = new ArrayNodeView(3, { weights });
  assert.deepEqual(Array.from({ length: 14 }, () => b.pick(v, -1, 0)), [...smoothSchedule(weights), ...smoothSchedule(weights)]);
  // Weights with a common factor unroll the reduced schedule: same order, 7 entries instead of 700.
  const big = new RoundRobinBalancer({ seed: 0, weights: [500, 100, 100] });
  const vb = new ArrayNodeView(3, { weights: [500, 100, 100] });
  assert.deepEqual(Array.from({ length: 7 }, () => big.pick(vb, -1, 0)), smoothSchedule(weights));
});

test('with the configured weights: slow start switches to live steps and back when the ramp ends', () => {
  const weights = [1, 1, 1, 1];
  const b = new RoundRobinBalancer({ seed: 8, weights });
  const v = new ArrayNodeView(4, { weights });
  const count = (picks: number) => {
    const c = [0, 0, 0, 0];
    for (let k = 0; k < picks; k++) c[b.pick(v, -1, 0)]++;
    return c;
  };
  assert.deepEqual(count(4000), [1000, 1000, 1000, 1000]);
  v.weights[2] = 0.1; // node 2 starts its ramp
  const ramp = count(3100);
  assert.ok(Math.abs(ramp[2] - 100) <= 4, `ramping node: ${ramp}`);
  v.weights[2] = 1; // ramp over
  const after = count(4000);
  for (const x of after) assert.ok(Math.abs(x - 1000) <= 2, String(after));
});

test('with the configured weights: unavailable and skipped nodes are passed over, none left gives -1', () => {
  const weights = [3, 1, 1];
  const b = new RoundRobinBalancer({ seed: 2, weights });
  const v = new ArrayNodeView(3, { weights });
  v.up[0] = 0;
  const c = [0, 0, 0];
  for (let k = 0; k < 1000; k++) c[b.pick(v, -1, 0)]++;
  assert.equal(c[0], 0);
  assert.ok(Math.abs(c[1] - 500) <= 2, String(c));
  for (let k = 0; k < 100; k++) assert.equal(b.pick(v, 1, 0), 2);
  v.up.fill(0);
  assert.equal(b.pick(v, -1, 0), -1);
});

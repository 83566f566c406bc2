import { test } from 'node:test';
import assert from 'node:assert/strict';
import { slowStartFactor } from '../../src/upstream/balancers/slow-start.js';
import { ArrayNodeView } from '../../src/upstream/balancers/array-view.js';
import { RoundRobinBalancer } from '../../src/upstream/balancers/round-robin.js';

test('linear ramp over the window, with the 10 % floor and the 1 s minimum of Envoy', () => {
  const cfg = { windowMs: 60_000 };
  assert.equal(slowStartFactor(0, 0, cfg), 0.1, 'floor at start');
  assert.equal(slowStartFactor(3000, 0, cfg), 0.1, '3 s of 60 is under the floor');
  assert.equal(slowStartFactor(30_000, 0, cfg), 0.5);
  assert.equal(slowStartFactor(59_999, 0, cfg), 59_999 / 60_000);
  assert.equal(slowStartFactor(60_000, 0, cfg), 1);
  assert.equal(slowStartFactor(1e9, 0, cfg), 1);
  assert.equal(slowStartFactor(100, 0, { windowMs: 10_000, minWeightPercent: 0 }), 0.1, 'elapsed counts as at least 1 s');
  assert.equal(slowStartFactor(5, 10, cfg), 0.1, 'a start in the future (clock skew) is a start now');
  assert.equal(slowStartFactor(0, 0, { windowMs: 0 }), 1, 'window 0: off');
});

test('aggression bends the ramp: factor = timeFactor^(1/aggression)', () => {
  const at = (aggression: number) => slowStartFactor(15_000, 0, { windowMs: 60_000, aggression, minWeightPercent: 0 });
  assert.equal(at(1), 0.25);
  assert.equal(at(2), 0.5);
  assert.ok(Math.abs(at(0.5) - 0.0625) < 1e-12);
  // Monotone in time for any aggression.
  for (const a of [0.5, 1, 2, 4]) {
    let prev = 0;
    for (let t = 0; t <= 60_000; t += 1000) {
      const f = slowStartFactor(t, 0, { windowMs: 60_000, aggression: a });
      assert.ok(f >= prev && f <= 1, `aggression ${a} at ${t}`);
      prev = f;
    }
  }
});

test('a ramping node takes its ramped share of round-robin traffic', () => {
  const v = new ArrayNodeView(2);
  const b = new RoundRobinBalancer({ seed: 1 });
  const share = (t: number) => {
    v.weights[1] = slowStartFactor(t, 0, { windowMs: 10_000 });
    let c = 0;
    for (let k = 0; k < 10_000; k++) c += b.pick(v, -1, 0);
    return c / 10_000;
  };
  assert.ok(Math.abs(share(0) - 0.1 / 1.1) < 0.01);
  assert.ok(Math.abs(share(5000) - 0.5 / 1.5) < 0.01);
  assert.ok(Math.abs(share(10_000) - 0.5) < 0.01);
});

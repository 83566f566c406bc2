import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ArrayNodeView } from '../../src/upstream/balancers/array-view.js';
import { LeastRequestBalancer } from '../../src/upstream/balancers/least-request.js';
import { MaglevBalancer, buildMaglevTable } from '../../src/upstream/balancers/maglev.js';
import { PeakEwmaBalancer } from '../../src/upstream/balancers/peak-ewma.js';
import { RoundRobinBalancer } from '../../src/upstream/balancers/round-robin.js';
import { hashString } from '../../src/upstream/balancers/hash.js';
import { createBalancer } from '../../src/upstream/balancers/index.js';
import { NO_NODE, type Balancer } from '../../src/upstream/balancers/view.js';

// The contract every balancer keeps, whatever its algorithm: never a skipped, unavailable or zero-weight node,
// NO_NODE only when no node is eligible.

const N = 5;
const ids = Array.from({ length: N }, (_, i) => `10.0.0.${i + 1}:8080`);
const table = buildMaglevTable(ids.map((id) => ({ id, weight: 1 })), 1031);

const makers: Array<[string, () => Balancer]> = [
  ['round-robin', () => new RoundRobinBalancer({ seed: 7 })],
  ['round-robin with the configured weights', () => new RoundRobinBalancer({ seed: 7, weights: [1, 1, 1, 1, 1] })],
  ['least-request', () => new LeastRequestBalancer({ seed: 7 })],
  ['consistent-hash', () => new MaglevBalancer(table)],
  ['consistent-hash, unbounded', () => new MaglevBalancer(table, { loadFactor: 0 })],
  ['peak-ewma', () => new PeakEwmaBalancer({ seed: 7 })],
];

function view(weighted: boolean) {
  return new ArrayNodeView(N, { weights: weighted ? [1, 2, 3, 4, 5] : undefined, latencyUs: [100, 200, 0, 400, 500] });
}

for (const [name, make] of makers) {
  test(`${name}: skip, unavailable and zero-weight nodes are never picked`, () => {
    for (const weighted of [false, true]) {
      const b = make();
      const v = view(weighted);
      v.up[1] = 0;
      v.weights[3] = 0;
      const seen = new Set<number>();
      for (let k = 0; k < 5000; k++) {
        const skip = k % N;
        const i = b.pick(v, skip, hashString(`key-${k}`));
        assert.ok(i >= 0 && i < N, `picked ${i}`);
        assert.notEqual(i, skip, 'skip');
        assert.notEqual(i, 1, 'unavailable');
        assert.notEqual(i, 3, 'zero weight');
        seen.add(i);
      }
      // Peak EWMA never sends to the dearest node while loads stand still; the others reach all three.
      assert.ok(seen.size >= 2 && [...seen].every((i) => i === 0 || i === 2 || i === 4), String([...seen]));
      if (!name.startsWith('peak-ewma')) assert.equal(seen.size, 3);
    }
  });

  test(`${name}: no eligible node gives -1; one eligible node is always the answer`, () => {
    const b = make();
    const v = view(false);
    v.up.fill(0);
    for (let k = 0; k < 100; k++) assert.equal(b.pick(v, -1, k * 2654435761), NO_NODE);
    v.up[2] = 1;
    for (let k = 0; k < 100; k++) assert.equal(b.pick(v, -1, k * 2654435761), 2);
    assert.equal(b.pick(v, 2, 12345), NO_NODE, 'the only node is the one being skipped');
    const empty = new ArrayNodeView(0);
    assert.equal(b.pick(empty, -1, 1), NO_NODE);
  });
}

test('createBalancer builds each algorithm from a validated config', () => {
  const base = { leastRequest: { choices: 2, activeRequestBias: 1 }, consistentHash: { hashOn: ['ip'], tableSize: 1031, boundedLoad: true, loadFactor: 1.25 }, peakEwma: { decayMs: 10000 } };
  assert.ok(createBalancer({ ...base, algorithm: 'round-robin' }, 1) instanceof RoundRobinBalancer);
  assert.ok(createBalancer({ ...base, algorithm: 'least-request' }, 1) instanceof LeastRequestBalancer);
  assert.ok(createBalancer({ ...base, algorithm: 'peak-ewma' }, 1) instanceof PeakEwmaBalancer);
  assert.ok(createBalancer({ ...base, algorithm: 'consistent-hash' }, 1, table) instanceof MaglevBalancer);
  assert.throws(() => createBalancer({ ...base, algorithm: 'consistent-hash' }, 1), /Maglev table/);
});

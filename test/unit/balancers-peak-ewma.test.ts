import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { ArrayNodeView } from '../../src/upstream/balancers/array-view.js';
import { PeakEwmaBalancer, ewmaAt, ewmaNext, ewmaUpdate } from '../../src/upstream/balancers/peak-ewma.js';

/**
 * A discrete-time model of real traffic: one request arrives every `gapUs`, goes to the picked node, and completes
 * after that node's service time; completions feed the node's EWMA through ewmaUpdate, and the view shows the
 * decayed value (ewmaAt), as the cluster's shared view does. Returns the share of each node.
 */
class Sim {
  readonly cells: Int32Array;
  readonly done: Array<{ at: number; node: number; start: number }> = [];
  t = 0;
  constructor(
    readonly v: ArrayNodeView,
    readonly b: PeakEwmaBalancer,
    readonly tauMs = 1000,
  ) {
    this.cells = new Int32Array(2 * v.count);
  }

  run(serviceUs: number[], requests: number, gapUs: number): number[] {
    const { v, cells, done } = this;
    const got = new Array<number>(v.count).fill(0);
    for (let k = 0; k < requests; k++, this.t += gapUs) {
      const now = this.t;
      const ms = Math.floor(now / 1000);
      for (let j = done.length - 1; j >= 0; j--) {
        const d = done[j];
        if (d.at > now) continue;
        v.active[d.node]--;
        ewmaUpdate(cells, 2 * d.node, 2 * d.node + 1, d.at - d.start, ms, this.tauMs);
        done.splice(j, 1);
      }
      for (let i = 0; i < v.count; i++) v.latency[i] = Math.round(ewmaAt(cells[2 * i], cells[2 * i + 1], ms, this.tauMs));
      const i = this.b.pick(v, -1, 0);
      got[i]++;
      v.active[i]++;
      done.push({ at: now + serviceUs[i], node: i, start: now });
    }
    return got.map((x) => x / requests);
  }
}

function simulate(b: PeakEwmaBalancer, v: ArrayNodeView, serviceUs: number[], requests: number, gapUs: number): number[] {
  return new Sim(v, b).run(serviceUs, requests, gapUs);
}

test('traffic moves away from a slow node', () => {
  const v = new ArrayNodeView(4);
  const s = simulate(new PeakEwmaBalancer({ seed: 1 }), v, [1000, 1000, 1000, 10_000], 20_000, 200);
  assert.ok(s[3] < 0.05, `slow node share ${s[3]} (${s})`);
  for (let i = 0; i < 3; i++) assert.ok(s[i] > 0.28, String(s));
});

test('a node that slows down mid-run loses its traffic at once (peak), and regains it as it recovers', () => {
  const sim = new Sim(new ArrayNodeView(3), new PeakEwmaBalancer({ seed: 2 }), 500);
  const even = sim.run([1000, 1000, 1000], 5000, 200);
  assert.ok(even.every((x) => Math.abs(x - 1 / 3) < 0.05), String(even));
  const slow = sim.run([1000, 1000, 20_000], 5000, 200);
  assert.ok(slow[2] < 0.05, String(slow));
  // Back to normal: its stored peak decays while it is idle, a probe wins, and it is measured fast again.
  sim.run([1000, 1000, 1000], 10_000, 200);
  const again = sim.run([1000, 1000, 1000], 10_000, 200);
  assert.ok(again[2] > 0.25, `recovered node share ${again[2]}`);
});

test('a fresh node with no sample gets a neutral cost, not a flood', () => {
  // 3 warmed nodes at 1 ms and one just added. Cost 0 would win every draw it is in: 1/2 of the picks.
  const v = new ArrayNodeView(4, { latencyUs: [1000, 1000, 1000, 0] });
  const b = new PeakEwmaBalancer({ seed: 3 });
  const c = [0, 0, 0, 0];
  for (let k = 0; k < 20_000; k++) c[b.pick(v, -1, 0)]++;
  assert.ok(c[3] / 20_000 < 0.3, `fresh node share ${c[3] / 20_000}`);
  assert.ok(c[3] / 20_000 > 0.2, `fresh node share ${c[3] / 20_000}`);
  // Under the simulated load it takes about a fair share until its own samples speak.
  const s = simulate(new PeakEwmaBalancer({ seed: 4 }), new ArrayNodeView(4, { latencyUs: [1000, 1000, 1000, 0] }), [1000, 1000, 1000, 1000], 2000, 200);
  assert.ok(s[3] < 0.3, String(s));
});

test('no samples at all: least in flight wins', () => {
  const v = new ArrayNodeView(2);
  v.active.set([4, 1]);
  const b = new PeakEwmaBalancer({ seed: 5 });
  for (let k = 0; k < 100; k++) assert.equal(b.pick(v, -1, 0), 1);
});

test('weights divide the cost: a weight-2 node of equal latency takes more', () => {
  const v = new ArrayNodeView(2, { weights: [2, 1], latencyUs: [1000, 1000] });
  v.active.set([2, 1]);
  const b = new PeakEwmaBalancer({ seed: 6 });
  // cost 1000×3/2 = 1500 vs 1000×2/1 = 2000
  for (let k = 0; k < 100; k++) assert.equal(b.pick(v, -1, 0), 0);
});

test("ewmaAt: an idle node's value decays towards 0 but never reads as no sample", () => {
  assert.equal(ewmaAt(0, 0, 5000, 1000), 0);
  assert.equal(ewmaAt(8000, 100, 100, 1000), 8000);
  assert.equal(ewmaAt(8000, 100, 1100, 1000), 8000 * Math.exp(-1));
  assert.equal(ewmaAt(8000, 100, 1e7, 1000), 1);
  assert.equal(ewmaAt(8000, 2000, 1000, 1000), 8000, 'a stamp ahead of now (another thread) is no decay');
});

test('ewmaNext: a peak replaces, lower samples decay in time with τ', () => {
  assert.equal(ewmaNext(0, 500, 0, 1000), 500, 'first sample');
  assert.equal(ewmaNext(500, 900, 0, 1000), 900, 'peak');
  assert.equal(ewmaNext(900, 100, 0, 1000), 900, 'no time passed: unchanged');
  assert.equal(ewmaNext(900, 100, 1000, 1000), Math.round(900 * Math.exp(-1) + 100 * (1 - Math.exp(-1))));
  assert.equal(ewmaNext(900, 100, 1e9, 1000), 100, 'long ago: the sample');
  assert.equal(ewmaNext(0, 0, 0, 1000), 1, 'never 0 (the no-sample value)');
});

test('ewmaUpdate in shared cells: concurrent workers lose no decay and no peak', async () => {
  const cells = new Int32Array(new SharedArrayBuffer(8));
  // Main thread: a value of 10 ms at t = 0.
  ewmaUpdate(cells, 0, 1, 10_000, 0, 1000);
  assert.equal(cells[0], 10_000);
  // Two workers each apply 2,000 samples of 1 ms stamped 1..2000 ms; together they cover 2 s = 2 τ.
  const code = `
    const { workerData } = require('node:worker_threads');
    const { cells } = workerData;
    ${ewmaNext.toString()}
    ${ewmaUpdate.toString()}
    for (let t = 1; t <= 2000; t++) ewmaUpdate(cells, 0, 1, 1000, t, 1000);
  `;
  const run = () =>
    new Promise<void>((resolve, reject) => {
      const w = new Worker(code, { eval: true, workerData: { cells } });
      w.on('error', reject);
      w.on('exit', (c) => (c === 0 ? resolve() : reject(new Error(`exit ${c}`))));
    });
  await Promise.all([run(), run()]);
  // The two workers run at different speeds, so their stamps interleave out of order; the stamp only moves
  // forward, so the decay applied adds up to the 2 s that passed (e^-2 of the excess over the 1 ms samples).
  const expected = 1000 + 9000 * Math.exp(-2);
  assert.ok(Math.abs(cells[0] - expected) < 0.1 * 9000 * Math.exp(-2) + 5, `value ${cells[0]}, expected about ${Math.round(expected)}`);
  assert.equal(cells[1], 2000);
  // A peak from any worker lands.
  ewmaUpdate(cells, 0, 1, 50_000, 2001, 1000);
  assert.equal(cells[0], 50_000);
});

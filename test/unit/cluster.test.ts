import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/load.js';
import { compileConfig } from '../../src/config/compile.js';
import { Runtime } from '../../src/worker/runtime.js';
import { AdminFlags } from '../../src/shared/admin-flags.js';
import { SharedRegistry } from '../../src/shared/registry.js';
import {
  ADMIT_CIRCUIT_OPEN,
  ADMIT_FULL,
  ADMIT_OK,
  ADMIT_PROBE,
  OUTCOME_5XX,
  OUTCOME_CONNECT,
  OUTCOME_OK,
  type UpstreamCluster,
} from '../../src/upstream/cluster.js';
import { CIRCUIT, CIRCUIT_CLOSED, CIRCUIT_HALF_OPEN, CIRCUIT_OPEN, CIRCUIT_OPENED_AT, EJECTED_UNTIL, PANIC, TRIALS, clock32 } from '../../src/upstream/cluster-state.js';

/**
 * The worker's side of an upstream cluster over its shared region: availability (drain, ejection, trials, panic),
 * the circuit breaker's states, the retry budget and the concurrency limit. Two runtimes over one plan stand for two
 * workers: what one decides, the other sees.
 */

function setup(upstream: string, nodes = 3): { a: UpstreamCluster; b: UpstreamCluster; flags: AdminFlags } {
  const yaml = `
upstreams:
  u:
    nodes: [${Array.from({ length: nodes }, (_, i) => `{ url: "http://127.0.0.1:${20000 + i}" }`).join(', ')}]
${upstream}
routes:
  - { name: r, match: { prefix: / }, upstream: u }
`;
  const plan = compileConfig(loadConfigText(yaml, 'gw.yaml', {}), 'gw.yaml').plan;
  const flags = AdminFlags.forPlan(plan, { disabledRoutes: new Set(), drainedNodes: new Map() });
  const withFlags = { ...plan, adminFlags: flags.buffer };
  const one = new Runtime(structuredClone(withFlags), null, 0);
  const two = new Runtime(structuredClone(withFlags), null, 1);
  return { a: one.upstreams[0].cluster, b: two.upstreams[0].cluster, flags };
}

const picks = (c: UpstreamCluster, n: number, key = () => 0) => new Set(Array.from({ length: n }, () => c.pick(-1, key())));

for (const balancer of ['round-robin', 'least-request', 'least-connections', 'peak-ewma', 'consistent-hash']) {
  test(`${balancer}: a drained node is never picked, skip is honoured, all drained gives -1`, () => {
    const { a, flags } = setup(`    balancer: ${balancer}`);
    flags.setNode(0, true);
    let k = 0;
    const key = () => (k = (k * 1103515245 + 12345) | 0);
    assert.ok(!picks(a, 200, key).has(0));
    for (let i = 0; i < 20; i++) assert.equal(a.pick(1, key()), 2);
    flags.setNode(1, true);
    flags.setNode(2, true);
    assert.equal(a.pick(-1, key()), -1);
  });
}

test('one refused connect ejects a node on every worker; maxEjectionPercent keeps the rest', () => {
  const { a, b } = setup('    outlierDetection: { consecutiveGatewayFailures: 1, maxEjectionPercent: 50, jitterPercent: 0 }');
  a.observe(0, OUTCOME_CONNECT, 0);
  assert.ok(!picks(b, 60).has(0), 'the other worker no longer picks it');
  // 50 % of 3 nodes is 1: the second failing node stays in
  a.observe(1, OUTCOME_CONNECT, 0);
  assert.ok(picks(b, 60).has(1));
});

test('a 5xx streak ejects only when consecutive5xx is set, and a success breaks the streak', () => {
  const off = setup('');
  for (let i = 0; i < 20; i++) off.a.observe(0, OUTCOME_5XX, 1000);
  assert.ok(picks(off.b, 60).has(0), '5xx ejection is off by default');
  const on = setup('    outlierDetection: { consecutive5xx: 3 }');
  on.a.observe(0, OUTCOME_5XX, 1000);
  on.b.observe(0, OUTCOME_5XX, 1000);
  on.a.observe(0, OUTCOME_OK, 1000);
  on.b.observe(0, OUTCOME_5XX, 1000);
  assert.ok(picks(on.a, 60).has(0), 'the streak was broken by a success');
  on.a.observe(0, OUTCOME_5XX, 1000);
  on.b.observe(0, OUTCOME_5XX, 1000);
  assert.ok(!picks(on.a, 60).has(0), 'three in a row, across both workers');
});

test('after its ejection time a node comes back on trial: one request at a time until one succeeds', () => {
  const { a, b } = setup('    outlierDetection: { trialRequests: 1 }');
  a.observe(2, OUTCOME_CONNECT, 0);
  assert.ok(!picks(a, 60).has(2));
  // the ejection time passes
  a.state.set(2, EJECTED_UNTIL, clock32(Date.now() - 1));
  assert.ok(picks(b, 60).has(2), 'available again');
  assert.equal(a.state.get(2, TRIALS), 1);
  b.begin(2);
  assert.ok(!picks(a, 60).has(2), 'its one trial request is in flight');
  b.observe(2, OUTCOME_OK, 500);
  b.finish(2);
  assert.equal(a.state.get(2, TRIALS), 0);
  a.begin(2);
  assert.ok(picks(b, 60).has(2), 'trusted again: no trial limit');
});

test('a failure during the trial ejects the node again, for longer', () => {
  const { a } = setup('    outlierDetection: { jitterPercent: 0, baseEjectionMs: 1000 }');
  a.observe(0, OUTCOME_CONNECT, 0);
  const first = (a.state.get(0, EJECTED_UNTIL) - clock32()) | 0;
  a.state.set(0, EJECTED_UNTIL, clock32(Date.now() - 1));
  a.pick(-1);
  a.pick(-1);
  a.pick(-1);
  a.observe(0, OUTCOME_CONNECT, 0);
  const second = (a.state.get(0, EJECTED_UNTIL) - clock32()) | 0;
  assert.ok(first <= 1000 && second > 1000, `${first} then ${second}`);
});

test('panic mode: with every node out, traffic goes to all of them and the region says so', () => {
  const { a, b } = setup('    outlierDetection: { maxEjectionPercent: 100 }');
  for (let i = 0; i < 3; i++) a.observe(i, OUTCOME_CONNECT, 0);
  assert.deepEqual([...picks(b, 60)].sort(), [0, 1, 2]);
  assert.equal(Atomics.load(b.state.cells, PANIC), 1);
});

test('circuit breaker: opens at the error share over the minimum volume, refuses, half-opens with exactly N probes across workers, closes', () => {
  const { a, b } = setup('    circuitBreaker: { errorPercent: 50, minRequests: 10, openMs: 1000, halfOpenRequests: 2 }');
  const call = (c: UpstreamCluster, outcome: number) => {
    assert.notEqual(c.admit(), ADMIT_CIRCUIT_OPEN);
    c.observe(0, outcome, 1000);
    c.release();
  };
  for (let i = 0; i < 5; i++) call(a, OUTCOME_OK);
  for (let i = 0; i < 4; i++) call(b, OUTCOME_5XX);
  assert.equal(Atomics.load(a.state.cells, CIRCUIT), CIRCUIT_CLOSED, '9 calls: under the minimum volume');
  call(b, OUTCOME_5XX);
  assert.equal(Atomics.load(a.state.cells, CIRCUIT), CIRCUIT_OPEN, '5 of 10 failed');
  assert.equal(a.admit(), ADMIT_CIRCUIT_OPEN);
  assert.ok(a.circuitRetryAfterMs() > 0 && a.circuitRetryAfterMs() <= 1000);
  // the open time passes
  Atomics.store(a.state.cells, CIRCUIT_OPENED_AT, clock32(Date.now() - 1001));
  assert.equal(a.admit(), ADMIT_PROBE);
  assert.equal(Atomics.load(a.state.cells, CIRCUIT), CIRCUIT_HALF_OPEN);
  assert.equal(b.admit(), ADMIT_PROBE);
  assert.equal(b.admit(), ADMIT_CIRCUIT_OPEN, 'only two probes across both workers');
  a.observe(0, OUTCOME_OK, 1000, true);
  assert.equal(Atomics.load(a.state.cells, CIRCUIT), CIRCUIT_HALF_OPEN);
  b.observe(0, OUTCOME_OK, 1000, true);
  assert.equal(Atomics.load(a.state.cells, CIRCUIT), CIRCUIT_CLOSED);
  assert.equal(a.admit(), ADMIT_OK);
});

test('a failing probe opens the circuit again', () => {
  const { a } = setup('    circuitBreaker: { errorPercent: 50, minRequests: 2, openMs: 1000, halfOpenRequests: 1 }');
  a.observe(0, OUTCOME_5XX, 1000);
  a.observe(0, OUTCOME_5XX, 1000);
  Atomics.store(a.state.cells, CIRCUIT_OPENED_AT, clock32(Date.now() - 1001));
  assert.equal(a.admit(), ADMIT_PROBE);
  a.observe(0, OUTCOME_5XX, 1000, true);
  assert.equal(Atomics.load(a.state.cells, CIRCUIT), CIRCUIT_OPEN);
  assert.equal(a.admit(), ADMIT_CIRCUIT_OPEN);
});

test('maxConcurrent is exact across workers', () => {
  const { a, b } = setup('    maxConcurrent: 3');
  assert.equal(a.admit(), ADMIT_OK);
  assert.equal(b.admit(), ADMIT_OK);
  assert.equal(a.admit(), ADMIT_OK);
  assert.equal(b.admit(), ADMIT_FULL);
  a.release();
  assert.equal(b.admit(), ADMIT_OK);
});

test('the retry budget: a share of the other requests in flight, at least minConcurrency, across workers', () => {
  const { a, b } = setup('    retryBudget: { percent: 20, minConcurrency: 1 }');
  for (let i = 0; i < 10; i++) a.admit();
  assert.equal(a.tryRetry(), true, '1 retry against 9 others: 11 %');
  assert.equal(b.tryRetry(), false, 'a second would make 2 against 8: 25 %');
  a.retryDone();
  assert.equal(b.tryRetry(), true, 'the other worker sees the freed share');
  for (let i = 0; i < 10; i++) b.admit();
  assert.equal(a.tryRetry(), true, '2 against 18 others: 11 %');
  assert.equal(a.tryRetry(), true, '3 against 17: 17.6 %');
  assert.equal(b.tryRetry(), false, '4 against 16 would pass 20 %');
});

test('consistent-hash through the cluster: a key keeps its node, keys spread over all nodes', () => {
  const { a, b } = setup('    balancer: consistent-hash', 5);
  const nodeOf = new Map<number, number>();
  for (let k = 1; k <= 500; k++) nodeOf.set(k, a.pick(-1, Math.imul(k, 2654435761)));
  for (let k = 1; k <= 500; k++) assert.equal(b.pick(-1, Math.imul(k, 2654435761)), nodeOf.get(k), 'the same key, the same node, on any worker');
  assert.equal(new Set(nodeOf.values()).size, 5);
});

test('a new node set keeps the state of the nodes it keeps: an ejected node stays out when another one joins', () => {
  const shared = new SharedRegistry();
  const yaml = (ports: number[]) => `
upstreams:
  u:
    nodes: [${ports.map((p) => `{ url: "http://127.0.0.1:${p}" }`).join(', ')}]
routes:
  - { name: r, match: { prefix: / }, upstream: u }
`;
  const first = compileConfig(loadConfigText(yaml([20000, 20001, 20002]), 'gw.yaml', {}), 'gw.yaml', 1, shared).plan;
  const before = new Runtime(first, null, 0).upstreams[0].cluster;
  before.observe(1, OUTCOME_CONNECT, 0);
  assert.ok(!picks(before, 30).has(1));
  const second = compileConfig(loadConfigText(yaml([20000, 20001, 20003]), 'gw.yaml', {}), 'gw.yaml', 2, shared).plan;
  assert.notEqual(second.upstreams[0].clusterState, first.upstreams[0].clusterState, 'a new region for a new node set');
  const after = new Runtime(second, null, 0).upstreams[0].cluster;
  const seen = picks(after, 30);
  assert.ok(!seen.has(1), 'the ejected node (same URL) is still out');
  assert.ok(seen.has(0) && seen.has(2), 'the kept node and the new one serve');
});

test('in-flight counts are the sum of every worker thread, and a restarted worker clears what its predecessor left', async () => {
  const { Worker } = await import('node:worker_threads');
  const { ClusterState, STRIPES } = await import('../../src/upstream/cluster-state.js');
  const state = ClusterState.create(2);
  const moduleUrl = new URL('../../src/upstream/cluster-state.js', import.meta.url).href;
  // A worker thread of index `index` counts `n` requests in flight to node 1 and exits without finishing them, as a
  // crashed worker would.
  const run = (index: number, n: number) =>
    new Promise<void>((resolve, reject) => {
      const w = new Worker(
        `const { workerData } = require('node:worker_threads');
         import(workerData.moduleUrl).then(({ ClusterState }) => {
           const s = new ClusterState(workerData.sab, 2);
           const stripe = s.stripe(workerData.index);
           for (let i = 0; i < workerData.n; i++) { s.addInFlight(stripe, 1, 1); s.addActive(stripe, 1); }
         });`,
        { eval: true, workerData: { sab: state.cells.buffer, moduleUrl, index, n } },
      );
      w.on('error', reject);
      w.on('exit', () => resolve());
    });
  await run(0, 3);
  await run(1, 4);
  assert.equal(state.inFlight(1), 7, 'both threads\' counts');
  assert.equal(state.inFlight(0), 0);
  assert.equal(state.active(), 7);
  // worker 1 comes back: its stripe starts from zero, worker 0's counts stay
  await run(1, 1);
  assert.equal(state.inFlight(1), 4);
  assert.equal(state.active(), 4);
  // workers from STRIPES - 1 on share the last stripe: their counts add up, and a restart clears none of them
  await run(STRIPES - 1, 2);
  await run(STRIPES + 16, 3);
  await run(STRIPES - 1, 1);
  assert.equal(state.inFlight(1), 10);
  assert.equal(state.active(), 10);
});

/**
 * Cost per pick of each upstream balancer (src/upstream/balancers/), on 10 and 100 nodes, through a NodeView over
 * a SharedArrayBuffer read with Atomics (the shape of the cluster's shared region, so the view's reads are part of
 * the figure), with loads that move between picks (every pick adds a request to its node, a completion takes one
 * away elsewhere) so no branch settles into one answer. Plus the request key hash (compileHashKey) and, for the
 * control plane, building a 65,537-entry Maglev table. The baseline is the round robin the worker uses today
 * (src/upstream/balancer.ts): a precomputed schedule array and one admin-flag read per pick, which cannot follow
 * weights that change (slow start) nor health beyond the drain flag.
 */
import { defineSuite, consume, type MicroCase } from '../../src/bench/micro-api.js';
import { LeastRequestBalancer } from '../../src/upstream/balancers/least-request.js';
import { MaglevBalancer, buildMaglevTable } from '../../src/upstream/balancers/maglev.js';
import { PeakEwmaBalancer } from '../../src/upstream/balancers/peak-ewma.js';
import { RoundRobinBalancer } from '../../src/upstream/balancers/round-robin.js';
import { compileHashKey, hashString, type HashKeyRequest } from '../../src/upstream/balancers/hash.js';
import type { Balancer, NodeView } from '../../src/upstream/balancers/view.js';

// Per node: [flags, weight × 1000, in flight, latency µs], Int32 cells as a shared region would hold them.
const STRIDE = 4;

class SharedView implements NodeView {
  readonly cells: Int32Array;
  constructor(readonly count: number, weights: (i: number) => number) {
    this.cells = new Int32Array(new SharedArrayBuffer(4 * STRIDE * count));
    for (let i = 0; i < count; i++) {
      this.cells[i * STRIDE] = 1;
      this.cells[i * STRIDE + 1] = weights(i) * 1000;
      this.cells[i * STRIDE + 3] = 800 + ((i * 37) % 400);
    }
  }
  available(i: number): boolean {
    return Atomics.load(this.cells, i * STRIDE) === 1;
  }
  weight(i: number): number {
    return Atomics.load(this.cells, i * STRIDE + 1) / 1000;
  }
  inFlight(i: number): number {
    return Atomics.load(this.cells, i * STRIDE + 2);
  }
  latencyUs(i: number): number {
    return Atomics.load(this.cells, i * STRIDE + 3);
  }
  add(i: number, d: number): void {
    Atomics.add(this.cells, i * STRIDE + 2, d);
  }
}

class Req implements HashKeyRequest {
  query = 'page=2&tenant=acme-corp&sort=asc';
  clientIp = '203.0.113.77';
  consumerId: string | null = 'consumer-12345';
  path = '/api/v1/orders/12345';
  #cookie = 'theme=dark; _ga=GA1.2.3456789.1234567890; session=8f14e45fceea167a5a36dedd4bea2543; lang=en';
  header(name: string): string | undefined {
    return name === 'cookie' ? this.#cookie : name === 'x-user-id' ? 'user-8f14e45f' : undefined;
  }
}

const REPS = 64;

function pickCase(name: string, b: Balancer, view: SharedView, keys: Int32Array | null): MicroCase {
  // A ring of outstanding requests: each pick adds one to its node and the oldest completes, so in-flight counts
  // stay around 32 spread over the nodes and keep changing.
  const ring = new Int32Array(32).fill(-1);
  let r = 0;
  let k = 0;
  const step = () => {
    const i = b.pick(view, -1, keys === null ? 0 : keys[k++ & 1023]);
    if (i < 0) throw new Error(`balancers: ${name} picked no node`);
    const old = ring[r];
    if (old >= 0) view.add(old, -1);
    view.add(i, 1);
    ring[r] = i;
    r = (r + 1) & 31;
    return i;
  };
  for (let j = 0; j < 1000; j++) step();
  return {
    name,
    ops: REPS,
    fn: () => {
      let s = 0;
      for (let j = 0; j < REPS; j++) s += step();
      consume(s);
    },
  };
}

export default defineSuite({
  name: 'balancers',
  description: 'ns per pick of each balancer over a shared-memory NodeView with moving loads (10 and 100 nodes); key hash; Maglev table build',
  cases() {
    const keys = new Int32Array(1024);
    for (let i = 0; i < 1024; i++) keys[i] = hashString(`user-${i}`);
    const cases: MicroCase[] = [];
    for (const n of [10, 100]) {
      const equal = () => new SharedView(n, () => 1);
      const unequal = () => new SharedView(n, (i) => 1 + (i % 4));
      const nodes = Array.from({ length: n }, (_, i) => ({ id: `10.0.${i >> 8}.${i & 255}:8080`, weight: 1 }));
      const table = buildMaglevTable(nodes, 65537);
      cases.push(
        pickCase(`round-robin, configured weights (schedule), ${n} nodes`, new RoundRobinBalancer({ seed: 1, weights: Array.from({ length: n }, (_, i) => 1 + (i % 4)) }), unequal(), null),
        pickCase(`round-robin, live steps (as during slow start), ${n} nodes`, new RoundRobinBalancer({ seed: 1 }), unequal(), null),
        pickCase(`least-request equal weights (P2C), ${n} nodes`, new LeastRequestBalancer({ seed: 1 }), equal(), null),
        pickCase(`least-request unequal weights (bias 1), ${n} nodes`, new LeastRequestBalancer({ seed: 1 }), unequal(), null),
        pickCase(`least-request unequal weights (bias 1.5), ${n} nodes`, new LeastRequestBalancer({ seed: 1, activeRequestBias: 1.5 }), unequal(), null),
        pickCase(`maglev bounded load, ${n} nodes`, new MaglevBalancer(table), equal(), keys),
        pickCase(`maglev unbounded, ${n} nodes`, new MaglevBalancer(table, { loadFactor: 0 }), equal(), keys),
        pickCase(`peak-ewma, ${n} nodes`, new PeakEwmaBalancer({ seed: 1 }), equal(), null),
      );
    }
    const req = new Req();
    const hashCase = (name: string, sources: string[]): MicroCase => {
      const key = compileHashKey(sources);
      return { name, ops: REPS, fn: () => { let s = 0; for (let j = 0; j < REPS; j++) s ^= key(req); consume(s); } };
    };
    cases.push(
      hashCase('hash key: ip', ['ip']),
      hashCase('hash key: header x-user-id', ['header:x-user-id']),
      hashCase('hash key: cookie session (scanned in the Cookie header)', ['cookie:session']),
      hashCase('hash key: query tenant', ['query:tenant']),
    );
    const ten = Array.from({ length: 10 }, (_, i) => ({ id: `10.0.0.${i}:8080`, weight: 1 + (i % 3) }));
    const out = new Int32Array(65537);
    cases.push({ name: 'maglev table build, 10 nodes, 65537 entries', fn: () => consume(buildMaglevTable(ten, 65537, out)[0]) });
    return cases;
  },
});

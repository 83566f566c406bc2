/**
 * What observability costs a request, per piece (tinybench, OPS operations per iteration so the harness overhead
 * does not dominate):
 *   - performance.now(): the always-on timestamps (handler entry, dispatch, end)
 *   - recording one finished request into the metrics region (requests counter by code, two route histograms, bytes,
 *     the answering node's latency histogram)
 *   - the bucket lookup of a histogram, and the scan of the bounds it replaced
 *   - the same with per-phase histograms (a route with timing: route, 3 hooks, connect, upstream, transfer)
 *   - building a Server-Timing value; parsing a traceparent and making a span id
 *   - rendering /metrics for 50 routes x 2 workers (control plane, not the request path)
 * Run: npm run build && node dist/bench/micro/observe.js
 */
import { Bench } from 'tinybench';
import {
  B_NODES, BOUNDS_MS, HIST_CELLS, N_LATENCY, NODE_CELLS, R_BYTES_OUT, R_GATEWAY, R_PHASES, R_REQUESTS, R_TOTAL, ROUTE_CELLS, STATUS_SLOTS,
  bucketOf, regionBytes, observe, statusSlot,
} from '../../src/observe/metrics-layout.js';
import { PromWriter } from '../../src/observe/prometheus.js';
import { serverTimingValue } from '../../src/observe/phases.js';
import { TraceParent, parseTraceparent, takeTraceRecord } from '../../src/observe/trace-context.js';
import { MetricsHub } from '../../src/observe/metrics-hub.js';
import type { RequestTiming } from '../../src/pipeline/policy.js';
import type { Plan } from '../../src/config/plan.js';

const OPS = 100;
const cells = new Int32Array(new SharedArrayBuffer(regionBytes(1)));
let sink = 0;

const timing: RequestTiming = {
  start: 1000,
  routed: 1000.01,
  upstreamStart: 1000.3,
  connected: 1000.31,
  upstreamHeaders: 1001.2,
  end: 1001.3,
  hooks: [1000.1, 1000.2, 1000.3],
  hookNames: ['auth', 'rateLimit', 'tracing'],
};

function recordBase(row: number, start: number, sent: number, end: number, status: number): void {
  Atomics.add(cells, row + R_REQUESTS + 0 * STATUS_SLOTS + statusSlot(status), 1);
  observe(cells, row + R_TOTAL, end - start);
  observe(cells, row + R_GATEWAY, sent - start);
  Atomics.add(cells, row + R_BYTES_OUT, 512);
  observe(cells, B_NODES + NODE_CELLS * (status & 3) + N_LATENCY, end - sent);
}

function recordPhases(at: number, t: RequestTiming): void {
  observe(cells, at, t.routed - t.start);
  let prev = t.routed;
  for (let i = 0; i < t.hooks!.length; i++) {
    observe(cells, at + (4 + i) * HIST_CELLS, t.hooks![i] - prev);
    prev = t.hooks![i];
  }
  observe(cells, at + HIST_CELLS, t.connected - t.upstreamStart);
  observe(cells, at + 2 * HIST_CELLS, t.upstreamHeaders - t.connected);
  observe(cells, at + 3 * HIST_CELLS, t.end - t.upstreamHeaders);
}

const hub = new MetricsHub(2);
const routes = Array.from({ length: 50 }, (_, i) => ({ id: i, name: `route-${i}`, upstream: 0 }));
const plan = { routes, upstreams: [{ name: 'app', nodes: [{ url: 'http://127.0.0.1:9000' }] }], services: {} } as unknown as Plan;
hub.attach(plan);
const hubCells = new Int32Array(hub.sab);
for (let r = 1; r <= 50; r++) for (let b = 0; b < 8; b++) hubCells[24000 + r * ROUTE_CELLS + b] = 5; // some non-zero series

/** the bucket lookup bucketOf replaced: a scan of the bounds from the bottom */
function bucketByScan(ms: number): number {
  let b = 0;
  while (b < BOUNDS_MS.length && ms > BOUNDS_MS[b]) b++;
  return b;
}
/** durations as a request has them: gateway-added ~0.05-0.3 ms, totals and node times ~0.5-5 ms */
const DURATIONS = Float64Array.from({ length: OPS }, (_, i) => (i % 3 === 0 ? 0.05 + (i % 7) * 0.04 : 0.5 + (i % 10) * 0.45));

const tp = new TraceParent();
const bench = new Bench({ time: 800, warmupTime: 200 });
bench
  .add(`performance.now() x${OPS}`, () => {
    for (let i = 0; i < OPS; i++) sink += performance.now();
  })
  .add(`record a request (counter by code, 2 route histograms, bytes, node histogram) x${OPS}`, () => {
    for (let i = 0; i < OPS; i++) recordBase(ROUTE_CELLS * (i & 7), 1000, 1000.05 + i * 0.001, 1001 + i * 0.01, i & 15 ? 200 : 404);
  })
  .add(`bucketOf (table) x${OPS}`, () => {
    for (let i = 0; i < OPS; i++) sink += bucketOf(DURATIONS[i]);
  })
  .add(`bucket by scanning the bounds (before) x${OPS}`, () => {
    for (let i = 0; i < OPS; i++) sink += bucketByScan(DURATIONS[i]);
  })
  .add(`record 7 phase histograms x${OPS}`, () => {
    for (let i = 0; i < OPS; i++) recordPhases(ROUTE_CELLS * (i & 7) + R_PHASES, timing);
  })
  .add(`Server-Timing value x${OPS}`, () => {
    for (let i = 0; i < OPS; i++) sink += serverTimingValue(timing).length;
  })
  .add(`parse traceparent + new trace ids x${OPS}`, () => {
    for (let i = 0; i < OPS; i++) {
      parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', tp);
      sink += takeTraceRecord();
    }
  })
  .add('render /metrics (50 routes, 2 workers), once', () => {
    const out = new PromWriter();
    hub.render({ configVersion: 1, workersUp: 2 }, out);
    sink += out.text().length;
  });

await bench.run();
const rows = bench.tasks.map((t) => {
  const per = t.name.includes(`x${OPS}`) ? OPS : 1;
  const mean = (t.result as { latency?: { mean: number } }).latency?.mean ?? 0;
  return { task: t.name, 'ns per op': ((mean * 1e6) / per).toFixed(1) };
});
console.table(rows);
hub.close();
if (sink === 42) console.log('');

import { performance } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import type { ErrorCode } from '../errors/codes.js';
import type { RequestTiming } from '../pipeline/policy.js';
import { POLICIES } from '../policies/index.js';
import type { Exchange } from '../worker/exchange.js';
import type { Runtime } from '../worker/runtime.js';
import {
  B_CODES, B_NODES, B_ROUTES, BLOCK_CELLS, CODE_INDEX, HIST_CELLS, N_ATTEMPTS, N_IN_FLIGHT, N_LATENCY, N_OPEN,
  NODE_CELLS, STATUS_SLOTS, statusSlot, PH_CONNECT, PH_ROUTE, PH_TRANSFER, PH_UPSTREAM, PLAN_NONE, PLAN_OTHER, POLICY_PHASE_SLOTS, FIXED_PHASES,
  R_BYTES_IN, R_BYTES_OUT, R_GATEWAY, R_PHASES, R_REQUESTS, R_TOTAL, ROUTE_CELLS, ROUTE_UNMATCHED, W_HEAP_TOTAL_KB,
  W_HEAP_USED_KB, W_LOOP_MAX_US, W_LOOP_P50_US, W_LOOP_P99_US, W_PLAN_OVERFLOW, failureCell, observe, type ObserveService,
} from './metrics-layout.js';
import { bindThreadStats } from './thread-stats.js';
import { clock } from '../shared/clock.js';
import { addOwn } from '../shared/own-cells.js';

const GAUGE_INTERVAL_MS = 1000;
const cellUs = (us: number) => Math.min(2 ** 31 - 1, Math.max(0, us)) | 0;

/**
 * The worker's writer of the metrics region (layout in metrics-layout.ts). `finished` runs once per request, after
 * the response: a handful of additions on preallocated cells of this worker's own block (addOwn), no allocation, no
 * message. Gauges (event-loop lag,
 * heap, per-node in-flight and open connections) are written once a second by a timer.
 */
export class WorkerMetrics {
  readonly #cells: Int32Array;
  readonly #base: number;
  readonly #codes: number;
  readonly #nodes: number;
  readonly #routes: number;
  readonly #plans = new Map<string, number>();
  #nextPlan = 1;
  readonly #announce: (slot: number, name: string) => void;
  /** phase slot by policy name */
  readonly #policyPhase = new Map<string, number>(POLICIES.slice(0, POLICY_PHASE_SLOTS).map((p, i) => [p.name, FIXED_PHASES.length + i]));
  #timer: NodeJS.Timeout | null = null;
  // hook phase slots per route name list: a WeakMap so that routes of old plans go with them, and the last one kept
  // aside (consecutive requests mostly take the same route)
  readonly #slotsByNames = new WeakMap<readonly string[], Int32Array>();
  #lastNames: readonly string[] | null = null;
  #lastSlots: Int32Array = new Int32Array(0);

  constructor(service: ObserveService, index: number, announce: (slot: number, name: string) => void) {
    this.#cells = new Int32Array(service.sab);
    this.#base = index * BLOCK_CELLS;
    this.#codes = this.#base + B_CODES;
    this.#nodes = this.#base + B_NODES;
    this.#routes = this.#base + B_ROUTES;
    this.#announce = announce;
    const known = service.planNames[index] ?? [];
    for (let s = 1; s < known.length; s++) if (known[s]) this.#plans.set(known[s], s);
    this.#nextPlan = Math.max(1, known.length);
    bindThreadStats(this.#cells, this.#base);
  }

  /** One request is over (any outcome). */
  finished(ex: Exchange): void {
    const cells = this.#cells;
    const t = ex.timing;
    const route = ex.route;
    const row = this.#routes + route.metricsSlot * ROUTE_CELLS;
    const plan = ex.consumerPlan === null ? PLAN_NONE : this.#planSlot(ex.consumerPlan);
    addOwn(cells, row + R_REQUESTS + plan * STATUS_SLOTS + statusSlot(ex.status || 499), 1);
    const end = t.end > 0 ? t.end : performance.now();
    if (ex.startedAt > 0) {
      const total = end - ex.startedAt;
      observe(cells, row + R_TOTAL, total);
      // gateway-added: arrival to dispatch (parsing, routing, policies); the upstream's share starts at dispatch
      observe(cells, row + R_GATEWAY, ex.sentAt > 0 ? ex.sentAt - ex.startedAt : total);
      if (t.start > 0) this.#phases(cells, row + R_PHASES, t, end);
    }
    if (ex.bodyBytes > 0) addOwn(cells, row + R_BYTES_IN, ex.bodyBytes);
    if (ex.bytesOut > 0) addOwn(cells, row + R_BYTES_OUT, ex.bytesOut);
    const code = ex.errorCode;
    if (code !== null) addOwn(cells, this.#codes + CODE_INDEX[code], 1);
    // A response is the last attempt's outcome; failures were counted per attempt as they happened (attemptFailed).
    // Its latency histogram is the node's responses counter too (its count).
    if (ex.nodeIndex >= 0 && ex.upstream === route.upstream && ex.headSent && (code === null || !code.startsWith('NG_ERR_UPSTREAM_'))) {
      const ns = route.nodeMetricsSlots[ex.nodeIndex];
      if (ns !== undefined) observe(cells, this.#nodes + ns * NODE_CELLS + N_LATENCY, end - ex.attemptSentAt);
    }
  }

  /** An attempt went to node `ex.nodeIndex` (the first one, or a retry on another node). */
  attempted(ex: Exchange): void {
    const ns = ex.route.nodeMetricsSlots[ex.nodeIndex];
    if (ns !== undefined) addOwn(this.#cells, this.#nodes + ns * NODE_CELLS + N_ATTEMPTS, 1);
  }

  /** The attempt at node `ex.nodeIndex` failed, whether or not the request then moves to another node. */
  attemptFailed(ex: Exchange, code: ErrorCode): void {
    const ns = ex.route.nodeMetricsSlots[ex.nodeIndex];
    const cell = failureCell(code);
    if (ns !== undefined && cell >= 0) addOwn(this.#cells, this.#nodes + ns * NODE_CELLS + cell, 1);
  }

  /**
   * A request answered without an Exchange: before routing or matching no route (slot ROUTE_UNMATCHED, route "-"),
   * or refused right after routing (a disabled route, a body over its limit: the route's slot).
   */
  rejected(code: ErrorCode, status: number, slot: number = ROUTE_UNMATCHED): void {
    const cells = this.#cells;
    addOwn(cells, this.#routes + slot * ROUTE_CELLS + R_REQUESTS + PLAN_NONE * STATUS_SLOTS + statusSlot(status), 1);
    addOwn(cells, this.#codes + CODE_INDEX[code], 1);
  }

  #phases(cells: Int32Array, at: number, t: RequestTiming, end: number): void {
    observe(cells, at + PH_ROUTE * HIST_CELLS, t.routed - t.start);
    const hooks = t.hooks;
    if (hooks !== null) {
      const slots = this.#hookSlots(t.hookNames!);
      let prev = t.routed;
      for (let i = 0; i < hooks.length; i++) {
        const mark = hooks[i];
        if (mark === 0) break; // the pipeline stopped before this hook
        const slot = slots[i];
        if (slot >= 0) observe(cells, at + slot * HIST_CELLS, mark - prev);
        prev = mark;
      }
    }
    if (t.connected > 0 && t.upstreamStart > 0) {
      observe(cells, at + PH_CONNECT * HIST_CELLS, t.connected - t.upstreamStart);
      if (t.upstreamHeaders > 0) {
        observe(cells, at + PH_UPSTREAM * HIST_CELLS, t.upstreamHeaders - t.connected);
        observe(cells, at + PH_TRANSFER * HIST_CELLS, end - t.upstreamHeaders);
      }
    }
  }

  /** The phase slots of a route's timed hooks (-1: beyond the cap), by the route's name list (one per route). */
  #hookSlots(names: readonly string[]): Int32Array {
    if (names === this.#lastNames) return this.#lastSlots;
    let slots = this.#slotsByNames.get(names);
    if (slots === undefined) {
      slots = Int32Array.from(names, (n) => this.#policyPhase.get(n) ?? -1);
      this.#slotsByNames.set(names, slots);
    }
    this.#lastNames = names;
    this.#lastSlots = slots;
    return slots;
  }

  #planSlot(name: string): number {
    const s = this.#plans.get(name);
    if (s !== undefined) return s;
    if (this.#nextPlan >= PLAN_OTHER) {
      addOwn(this.#cells, this.#base + W_PLAN_OVERFLOW, 1);
      return PLAN_OTHER;
    }
    const slot = this.#nextPlan++;
    this.#plans.set(name, slot);
    this.#announce(slot, name);
    return slot;
  }

  /** Starts the once-a-second gauges: event-loop delay, heap, per-node in-flight and open connections. */
  startGauges(current: () => Runtime): void {
    this.#timer = setInterval(() => this.#publish(current()), GAUGE_INTERVAL_MS);
    this.#timer.unref();
  }

  #publish(rt: Runtime): void {
    const cells = this.#cells;
    const w = this.#base;
    // event-loop lag as the thread's 25 ms clock tick sees it (src/shared/clock.ts): how late each tick fired
    const lag = clock.takeLag();
    if (lag.count > 0) {
      Atomics.store(cells, w + W_LOOP_P50_US, cellUs(lag.p50));
      Atomics.store(cells, w + W_LOOP_P99_US, cellUs(lag.p99));
      Atomics.store(cells, w + W_LOOP_MAX_US, cellUs(lag.max));
    }
    const heap = getHeapStatistics();
    Atomics.store(cells, w + W_HEAP_USED_KB, (heap.used_heap_size / 1024) | 0);
    Atomics.store(cells, w + W_HEAP_TOTAL_KB, (heap.total_heap_size / 1024) | 0);
    const slots = (rt.plan.services.observe as ObserveService | undefined)?.nodeSlots;
    if (slots === undefined) return;
    for (let u = 0; u < rt.upstreams.length; u++) {
      const pools = rt.upstreams[u].pools;
      for (let i = 0; i < pools.length; i++) {
        const ns = slots[u]?.[i];
        if (ns === undefined) continue;
        const at = this.#nodes + ns * NODE_CELLS;
        Atomics.store(cells, at + N_IN_FLIGHT, pools[i].inFlight);
        const all = (pools[i] as { all?: { size: number } }).all;
        if (all !== undefined) Atomics.store(cells, at + N_OPEN, all.size);
      }
    }
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
  }
}

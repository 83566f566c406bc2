import { ERRORS, type ErrorCode } from '../errors/codes.js';
import { addOwn } from '../shared/own-cells.js';

/**
 * The always-on metrics region: one SharedArrayBuffer for the life of the gateway, created by the control plane
 * (MetricsHub) before the first worker starts and handed to every worker inside the plan (`plan.services.observe`;
 * a SharedArrayBuffer in a structured clone is shared, not copied). Each worker owns one block and is its only
 * writer, so cells never contend: it adds with plain stores (shared/own-cells.ts), the control plane reads with
 * Atomics.load. The control plane reads all blocks on a scrape:
 * nothing is asked of the workers, so a scrape cannot slow a request.
 *
 * Why fixed buckets in shared memory rather than one hdr-histogram per worker merged on scrape: recording is two
 * additions on a preallocated Int32Array (no allocation, a few ns each), and a scrape is a linear read by the main
 * thread; an HDR merge would need every worker to serialise its histograms on each scrape, on its own event loop.
 * The price is resolution: 19 buckets from 25 µs to 10 s (Prometheus only exposes buckets anyway).
 *
 * Rows are keyed by *name*, not by plan index: the control plane gives each route name and each upstream node a
 * slot that it keeps across reloads, so counters stay monotonic when routes are added or reordered.
 *
 *   worker block w (BLOCK_CELLS x int32), at w * BLOCK_CELLS:
 *   +------------------+-----------------------+------------------------------+---------------------------------+
 *   | WORKER (16)      | CODES (CODE_SLOTS)    | NODES (NODE_SLOTS x 8)       | ROUTES (ROUTE_SLOTS x ROUTE_CELLS) |
 *   +------------------+-----------------------+------------------------------+---------------------------------+
 *   WORKER: gauges (event-loop lag, heap) and counters of the log and trace pipelines, see W_*
 *   CODES:  rejections by error code, index = position of the code in ERRORS
 *   NODES:  per upstream node: in-flight (gauge), open connections (gauge), attempts, failures by kind (connect,
 *           reset, bad_response, timeout), then the latency histogram of the responses it gave (its count is the
 *           responses counter). Attempts and failures are counted per attempt, so a refused connect that is retried
 *           on another node still counts at the node that refused it.
 *
 *   route row (ROUTE_CELLS):
 *   +------------------------------------------+--------------+----------------+----------+-----------+-----------------------------+
 *   | REQUESTS [PLAN_SLOTS x STATUS_SLOTS]     | TOTAL (hist) | GATEWAY (hist) | BYTES_IN | BYTES_OUT | PHASES [PHASE_SLOTS x hist] |
 *   +------------------------------------------+--------------+----------------+----------+-----------+-----------------------------+
 *   hist = HIST_CELLS: BUCKETS counts (not cumulative) then the sum in microseconds
 *   REQUESTS: one cell per consumer plan and status slot (STATUS_CODES: common codes exactly, the rest of each class
 *             in its class's "other" slot), so counting a request by exact code is still one Atomics.add; the status
 *             class is derived from the slot on scrape
 *
 * Counters are 32-bit and wrap; the reader folds differences into 64-bit totals often enough (MetricsHub polls
 * every second; a sum cell wraps after 4295 s of latency recorded between two polls).
 */

/** upper bounds in ms; a value v goes into the first bucket with v <= bound, else +Inf */
export const BOUNDS_MS = Float64Array.of(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000);
export const BUCKETS = BOUNDS_MS.length + 1;
export const HIST_SUM = BUCKETS;
export const HIST_CELLS = BUCKETS + 1;

/**
 * bucketOf without a scan: the bounds in µs grow by a factor of at least 2, so each power-of-two range
 * [2^k, 2^(k+1)) µs holds at most one bound. BIN_START[k + 1] is the first bound >= 2^k; a value in that range goes
 * there or into the next bucket: one Math.clz32, one table read and one comparison (the linear scan took 6-8
 * comparisons for the 1-5 ms of a typical request).
 */
const BOUNDS_US = BOUNDS_MS.map((ms) => ms * 1000);
const MAX_US = BOUNDS_US[BOUNDS_US.length - 1];
const BIN_START = Uint8Array.from({ length: 33 }, (_, i) => {
  const lower = i === 0 ? 0 : 2 ** (i - 1);
  const b = BOUNDS_US.findIndex((u) => u >= lower);
  return b < 0 ? BOUNDS_US.length : b;
});
for (let i = 1; i < BOUNDS_US.length; i++) {
  if (BOUNDS_US[i] < 2 * BOUNDS_US[i - 1]) throw new Error('metrics-layout: histogram bounds must at least double (bucketOf relies on it)');
}

/**
 * The status slots of a route row: common codes exactly (everything the gateway itself answers, and what upstreams
 * commonly send), then one "other" slot per class. Memory stays bounded whatever statuses upstreams invent.
 */
export const STATUS_CODES = [
  101, 200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308,
  400, 401, 403, 404, 405, 406, 408, 409, 410, 411, 412, 413, 414, 415, 416, 421, 422, 426, 428, 429, 431, 451, 499,
  500, 501, 502, 503, 504, 505,
] as const;
/** the "other" slot of class c (0 = 1xx … 4 = 5xx; a status outside 100-599 counts as 5xx, as before) */
export const STATUS_OTHER = STATUS_CODES.length;
export const STATUS_SLOTS = STATUS_OTHER + 5;
/** slot by status 0..599 (a status beyond the table is looked up as 5xx "other") */
export const STATUS_SLOT = Uint8Array.from({ length: 600 }, (_, status) => {
  const exact = (STATUS_CODES as readonly number[]).indexOf(status);
  if (exact >= 0) return exact;
  const cls = ((status / 100) | 0) - 1;
  return STATUS_OTHER + (cls < 0 ? 4 : cls);
});
/** the class (0 = 1xx … 4 = 5xx) of a status slot */
export function classOfSlot(slot: number): number {
  return slot >= STATUS_OTHER ? slot - STATUS_OTHER : ((STATUS_CODES[slot] / 100) | 0) - 1;
}
/** the status slot of a response status (any integer) */
export function statusSlot(status: number): number {
  return status >= 0 && status < 600 ? STATUS_SLOT[status] : STATUS_OTHER + 4;
}

// worker header cells
export const W_LOOP_P50_US = 0;
export const W_LOOP_P99_US = 1;
export const W_LOOP_MAX_US = 2;
export const W_HEAP_USED_KB = 3;
export const W_HEAP_TOTAL_KB = 4;
export const W_SPANS_EXPORTED = 5;
export const W_SPANS_DROPPED = 6;
export const W_LOGS_WRITTEN = 7;
export const W_LOGS_DROPPED = 8;
export const W_LOGS_SAMPLED_OUT = 9;
export const W_PLAN_OVERFLOW = 10;
export const WORKER_CELLS = 16;

export const CODE_SLOTS = 128;
export const CODE_INDEX: Readonly<Record<string, number>> = Object.assign(
  Object.create(null),
  Object.fromEntries(Object.keys(ERRORS).map((c, i) => [c, Math.min(i, CODE_SLOTS - 1)])),
);
export const CODE_NAMES = Object.keys(ERRORS) as ErrorCode[];

export const NODE_SLOTS = 256;
export const N_IN_FLIGHT = 0;
export const N_OPEN = 1;
export const N_ATTEMPTS = 2;
/** failure cells, one per kind, from here on in the order of FAILURE_KINDS */
export const N_FAILURES = 3;
export const FAILURE_KINDS = ['connect', 'reset', 'bad_response', 'timeout'] as const;
/** latency of the node's responses: the last attempt's dispatch to the end of the response (count = responses) */
export const N_LATENCY = N_FAILURES + FAILURE_KINDS.length;
export const NODE_CELLS = N_LATENCY + HIST_CELLS;
/** the failure cell (offset in a node row) of an upstream error code; -1 for codes that are not a node's failure */
export function failureCell(code: ErrorCode): number {
  switch (code) {
    case 'NG_ERR_UPSTREAM_CONNECT':
      return N_FAILURES;
    case 'NG_ERR_UPSTREAM_RESET':
      return N_FAILURES + 1;
    case 'NG_ERR_UPSTREAM_BAD_RESPONSE':
      return N_FAILURES + 2;
    case 'NG_ERR_UPSTREAM_TIMEOUT':
      return N_FAILURES + 3;
    default:
      return -1;
  }
}

/** consumer plans per worker: slot 0 = no plan, the last = every plan beyond the cap ("_other") */
export const PLAN_SLOTS = 16;
export const PLAN_NONE = 0;
export const PLAN_OTHER = PLAN_SLOTS - 1;

/** phases: fixed ones, then one per policy module (bounded by the registry, not by traffic) */
export const PH_ROUTE = 0;
export const PH_CONNECT = 1;
export const PH_UPSTREAM = 2;
export const PH_TRANSFER = 3;
export const FIXED_PHASES = ['route', 'connect', 'upstream', 'transfer'] as const;
export const POLICY_PHASE_SLOTS = 12;
export const PHASE_SLOTS = FIXED_PHASES.length + POLICY_PHASE_SLOTS;

/**
 * Phase names by slot: the fixed phases, then policy module names in registry order (policies beyond the cap are
 * timed in logs and Server-Timing but not in metrics). Passed in rather than imported: the registry imports the
 * observability policies, which import this file.
 */
export function phaseNames(policyNames: readonly string[]): string[] {
  return [...FIXED_PHASES, ...policyNames.slice(0, POLICY_PHASE_SLOTS)];
}

export const R_REQUESTS = 0;
export const R_TOTAL = R_REQUESTS + PLAN_SLOTS * STATUS_SLOTS;
export const R_GATEWAY = R_TOTAL + HIST_CELLS;
export const R_BYTES_IN = R_GATEWAY + HIST_CELLS;
export const R_BYTES_OUT = R_BYTES_IN + 1;
export const R_PHASES = R_BYTES_OUT + 1;
export const ROUTE_CELLS = R_PHASES + PHASE_SLOTS * HIST_CELLS;

/** route slot 0 collects requests answered without a route: refused while read (400, 414, 431…) or matching none (404, 405); route="-" */
export const ROUTE_UNMATCHED = 0;
/** the route name, in metrics and access logs, of a request answered before any route was known */
export const NO_ROUTE = '-';
export const ROUTE_SLOTS = 256;
/** routes beyond the cap share the last slot, exported as route="_other" */
export const ROUTE_OTHER = ROUTE_SLOTS - 1;

export const B_WORKER = 0;
export const B_CODES = WORKER_CELLS;
export const B_NODES = B_CODES + CODE_SLOTS;
export const B_ROUTES = B_NODES + NODE_SLOTS * NODE_CELLS;
export const BLOCK_CELLS = B_ROUTES + ROUTE_SLOTS * ROUTE_CELLS;

/** What the control plane puts in `plan.services.observe` for the workers. */
export interface ObserveService {
  readonly sab: SharedArrayBuffer;
  /** metrics slot by route id of this plan */
  readonly routeSlots: readonly number[];
  /** metrics slot by [upstream index][node index] of this plan */
  readonly nodeSlots: readonly (readonly number[])[];
  /**
   * consumer-plan slot names by worker index ([w][slot], slot 0 unused): a worker picks slots as it meets plans and
   * announces them; a restarted worker starts from its predecessor's table so its cells keep their meaning
   */
  readonly planNames: readonly (readonly string[])[];
}

export function regionBytes(workers: number): number {
  return workers * BLOCK_CELLS * Int32Array.BYTES_PER_ELEMENT;
}

/** The bucket of a duration in ms (>= 0; NaN goes to the first bucket). See BIN_START. */
export function bucketOf(ms: number): number {
  const us = ms * 1000;
  if (us > MAX_US) return BOUNDS_US.length;
  const b = BIN_START[32 - Math.clz32(us | 0)];
  return us > BOUNDS_US[b] ? b + 1 : b;
}

/** Records one duration into the histogram at `at` (bucket count and sum in µs). Allocation-free. */
export function observe(cells: Int32Array, at: number, ms: number): void {
  if (!(ms >= 0)) ms = 0; // NaN or a clock step backwards
  addOwn(cells, at + bucketOf(ms), 1);
  addOwn(cells, at + HIST_SUM, (ms * 1000) | 0);
}

/** The metrics slots of a plan route (read by RouteRuntime once per plan; 0/[] when the plan has no region). */
export function routeMetricsSlots(services: Record<string, unknown>, routeId: number, upstream: number): { slot: number; nodes: readonly number[] } {
  const o = services.observe as ObserveService | undefined;
  if (o === undefined) return { slot: ROUTE_UNMATCHED, nodes: [] };
  return { slot: o.routeSlots[routeId] ?? ROUTE_OTHER, nodes: o.nodeSlots[upstream] ?? [] };
}

import type { Plan } from '../config/plan.js';
import { POLICIES } from '../policies/index.js';
import {
  B_CODES, B_NODES, B_ROUTES, B_WORKER, BLOCK_CELLS, BOUNDS_MS, BUCKETS, CODE_NAMES, HIST_CELLS, HIST_SUM,
  FAILURE_KINDS, N_ATTEMPTS, N_FAILURES, N_IN_FLIGHT, N_LATENCY, N_OPEN, NODE_CELLS, STATUS_CODES, STATUS_OTHER, STATUS_SLOTS, classOfSlot, NODE_SLOTS, PHASE_SLOTS, PLAN_NONE, PLAN_OTHER, PLAN_SLOTS,
  R_BYTES_IN, R_BYTES_OUT, R_GATEWAY, R_PHASES, R_REQUESTS, R_TOTAL, ROUTE_CELLS, ROUTE_OTHER, ROUTE_SLOTS,
  W_HEAP_TOTAL_KB, W_HEAP_USED_KB, W_LOGS_DROPPED, W_LOGS_SAMPLED_OUT, W_LOGS_WRITTEN, W_LOOP_MAX_US,
  NO_ROUTE, W_LOOP_P50_US, W_LOOP_P99_US, W_PLAN_OVERFLOW, W_SPANS_DROPPED, W_SPANS_EXPORTED, phaseNames,
  regionBytes, type ObserveService,
} from './metrics-layout.js';
import { PromWriter } from './prometheus.js';

const POLL_MS = 1000;
const CLASS_NAMES = ['1xx', '2xx', '3xx', '4xx', '5xx'];
/** bucket upper bounds in seconds, +Inf last */
const LE = [...BOUNDS_MS].map((ms) => ms / 1000).concat(Infinity);
/** the `code` label of each status slot: the exact code, or "other" (its class is in the `class` label) */
const CODE_LABELS = Array.from({ length: STATUS_SLOTS }, (_, s) => (s < STATUS_OTHER ? String(STATUS_CODES[s]) : 'other'));
const SLOT_CLASS = Array.from({ length: STATUS_SLOTS }, (_, s) => CLASS_NAMES[classOfSlot(s)]);

/** Extra facts the control plane adds to a scrape (config version, per-worker in-flight from its own counters). */
export interface ScrapeFacts {
  configVersion: number;
  workersUp: number;
}

/**
 * The control-plane side of the metrics region: it owns the SharedArrayBuffer, gives route names and upstream nodes
 * their slots (stable across reloads), folds the workers' 32-bit cells into 64-bit totals every second, and renders
 * the Prometheus text on a scrape by reading memory only (the workers are not asked anything).
 */
export class MetricsHub {
  readonly sab: SharedArrayBuffer;
  readonly workers: number;
  readonly #cells: Int32Array;
  readonly #last: Uint32Array;
  readonly #totals: Float64Array;
  readonly #routeSlot = new Map<string, number>();
  /** slot 0: requests answered without a route (refused while read, or matching none), as in the access log */
  readonly #routeNames: string[] = [NO_ROUTE];
  readonly #nodeSlot = new Map<string, number>();
  readonly #nodeLabels: { upstream: string; node: string }[] = [];
  /** nodes of the current plan, for gauges */
  #currentNodes: number[] = [];
  readonly #planNames: string[][];
  readonly #phaseNames = phaseNames(POLICIES.map((p) => p.name));
  #timer: NodeJS.Timeout | null = null;

  constructor(workers: number) {
    this.workers = workers;
    this.sab = new SharedArrayBuffer(regionBytes(workers));
    this.#cells = new Int32Array(this.sab);
    this.#last = new Uint32Array(this.#cells.length);
    this.#totals = new Float64Array(this.#cells.length);
    this.#planNames = Array.from({ length: workers }, () => ['']);
    this.#timer = setInterval(() => this.poll(), POLL_MS);
    this.#timer.unref();
  }

  /** Gives the plan's routes and nodes their slots and puts the region into plan.services.observe. */
  attach(plan: Plan): void {
    const routeSlots = plan.routes.map((r) => this.#slotOfRoute(r.name));
    const nodeSlots = plan.upstreams.map((u) => u.nodes.map((n) => this.#slotOfNode(u.name, n.url)));
    this.#currentNodes = nodeSlots.flat();
    const service: ObserveService = { sab: this.sab, routeSlots, nodeSlots, planNames: this.#planNames };
    (plan.services as Record<string, unknown>).observe = service;
  }

  /** A worker met a consumer plan for the first time and gave it `slot` in its block. */
  onPlanLabel(worker: number, slot: number, name: string): void {
    const names = this.#planNames[worker];
    if (!names || slot <= PLAN_NONE || slot >= PLAN_OTHER) return;
    while (names.length <= slot) names.push('');
    names[slot] = name;
  }

  #slotOfRoute(name: string): number {
    let s = this.#routeSlot.get(name);
    if (s === undefined) {
      s = this.#routeNames.length < ROUTE_OTHER ? this.#routeNames.length : ROUTE_OTHER;
      if (s < ROUTE_OTHER) this.#routeNames.push(name);
      this.#routeSlot.set(name, s);
    }
    return s;
  }

  #slotOfNode(upstream: string, url: string): number {
    const key = `${upstream} ${url}`;
    let s = this.#nodeSlot.get(key);
    if (s === undefined) {
      s = Math.min(this.#nodeLabels.length, NODE_SLOTS - 1);
      if (s === this.#nodeLabels.length) this.#nodeLabels.push({ upstream, node: url.replace(/^https?:\/\//, '') });
      else this.#nodeLabels[s] = { upstream: '_other', node: '_other' };
      this.#nodeSlot.set(key, s);
    }
    return s;
  }

  get #usedRouteSlots(): number {
    return this.#routeSlot.size >= ROUTE_OTHER ? ROUTE_SLOTS : this.#routeNames.length;
  }

  /** Folds the cells written since the last poll into the totals (a 32-bit cell may have wrapped once). */
  poll(): void {
    const cells = this.#cells;
    const last = this.#last;
    const totals = this.#totals;
    const fold = (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const now = Atomics.load(cells, i) >>> 0;
        const d = (now - last[i]) >>> 0;
        if (d !== 0) {
          totals[i] += d;
          last[i] = now;
        }
      }
    };
    const nodes = Math.min(NODE_SLOTS, this.#nodeLabels.length);
    const routes = this.#usedRouteSlots;
    for (let w = 0; w < this.workers; w++) {
      const b = w * BLOCK_CELLS;
      fold(b, b + B_NODES + nodes * NODE_CELLS);
      const plans = this.#usedPlanSlots(w);
      for (let r = 0; r < routes; r++) {
        const row = b + B_ROUTES + r * ROUTE_CELLS;
        fold(row + R_REQUESTS, row + R_REQUESTS + plans * STATUS_SLOTS);
        fold(row + R_REQUESTS + PLAN_OTHER * STATUS_SLOTS, row + R_TOTAL);
        fold(row + R_TOTAL, row + ROUTE_CELLS);
      }
    }
  }

  /**
   * Plan slots [0, n) of worker w that can hold counts (the slots it announced; PLAN_OTHER is read apart): most of a
   * route row is plan x status cells that stay 0, and skipping them keeps a scrape as cheap as before codes.
   * A slot written before its announcement arrives is folded on the next poll, with everything it counted.
   */
  #usedPlanSlots(w: number): number {
    return Math.min(PLAN_OTHER, Math.max(1, this.#planNames[w].length));
  }

  #total(cell: number): number {
    return this.#totals[cell];
  }

  #sumWorkers(offset: number): number {
    let n = 0;
    for (let w = 0; w < this.workers; w++) n += this.#totals[w * BLOCK_CELLS + offset];
    return n;
  }

  /** Writes the gateway's request, upstream-node and worker families into `out` (one scrape's writer). */
  render(facts: ScrapeFacts, out: PromWriter): void {
    this.poll();
    const routes = this.#usedRouteSlots;
    const routeName = (s: number) => (s === ROUTE_OTHER ? '_other' : this.#routeNames[s]);

    out.help('nanogate_config_version', 'gauge', 'version of the config plan in service');
    out.sample('nanogate_config_version', '', facts.configVersion);
    out.help('nanogate_workers_up', 'gauge', 'worker threads listening');
    out.sample('nanogate_workers_up', '', facts.workersUp);

    // requests by route, status code and consumer plan, merged over workers (plans merge by name)
    out.help('nanogate_requests_total', 'counter', 'requests answered, by route, status code (common codes exactly, the rest "other"), status class and consumer plan');
    for (let r = 0; r < routes; r++) {
      const merged = new Map<string, number>();
      for (let w = 0; w < this.workers; w++) {
        const row = w * BLOCK_CELLS + B_ROUTES + r * ROUTE_CELLS + R_REQUESTS;
        const names = this.#planNames[w];
        const used = this.#usedPlanSlots(w);
        for (let p = 0; p < PLAN_SLOTS; p++) {
          if (p === used) p = PLAN_OTHER;
          const plan = p === PLAN_NONE ? '' : p === PLAN_OTHER ? '_other' : (names[p] || '_unknown');
          for (let c = 0; c < STATUS_SLOTS; c++) {
            const v = this.#total(row + p * STATUS_SLOTS + c);
            if (v === 0) continue;
            const key = `${c}\u0000${plan}`;
            merged.set(key, (merged.get(key) ?? 0) + v);
          }
        }
      }
      for (const [key, v] of merged) {
        const [c, plan] = key.split('\u0000');
        const slot = Number(c);
        out.sample('nanogate_requests_total', out.labels('route', routeName(r), 'code', CODE_LABELS[slot], 'class', SLOT_CLASS[slot], 'plan', plan), v);
      }
    }

    this.#histograms(out, 'nanogate_request_duration_seconds', 'time from request arrival to the end of the response', routes, R_TOTAL, routeName);
    this.#histograms(out, 'nanogate_gateway_duration_seconds', 'gateway-added time: request arrival to dispatch upstream (parsing, routing, policies)', routes, R_GATEWAY, routeName);

    out.help('nanogate_phase_duration_seconds', 'histogram', 'time per phase on routes with timing (route, each policy, connect, upstream, transfer)');
    for (let r = 0; r < routes; r++) {
      for (let ph = 0; ph < PHASE_SLOTS && ph < this.#phaseNames.length; ph++) {
        this.#histogram(out, 'nanogate_phase_duration_seconds', out.labels('route', routeName(r), 'phase', this.#phaseNames[ph]), B_ROUTES + r * ROUTE_CELLS + R_PHASES + ph * HIST_CELLS);
      }
    }

    out.help('nanogate_request_body_bytes_total', 'counter', 'request body bytes received, by route');
    out.help('nanogate_response_body_bytes_total', 'counter', 'response body bytes sent, by route');
    for (let r = 0; r < routes; r++) {
      const base = B_ROUTES + r * ROUTE_CELLS;
      const bin = this.#sumWorkers(base + R_BYTES_IN);
      const bout = this.#sumWorkers(base + R_BYTES_OUT);
      if (bin > 0) out.sample('nanogate_request_body_bytes_total', out.labels('route', routeName(r)), bin);
      if (bout > 0) out.sample('nanogate_response_body_bytes_total', out.labels('route', routeName(r)), bout);
    }

    out.help('nanogate_rejections_total', 'counter', 'requests answered with a gateway error, by error code');
    for (let i = 0; i < CODE_NAMES.length; i++) {
      const v = this.#sumWorkers(B_CODES + i);
      if (v > 0) out.sample('nanogate_rejections_total', out.labels('code', CODE_NAMES[i]), v);
    }

    out.help('nanogate_upstream_in_flight', 'gauge', 'requests assigned or queued per upstream node (sampled every second)');
    out.help('nanogate_upstream_connections', 'gauge', 'open connections per upstream node (sampled every second)');
    out.help('nanogate_upstream_attempts_total', 'counter', 'attempts sent to the node, retries on another node included');
    out.help('nanogate_upstream_responses_total', 'counter', 'requests whose last attempt got a whole response from the node');
    out.help('nanogate_upstream_failures_total', 'counter', 'attempts that failed at the node, by kind (connect, reset, bad_response, timeout)');
    out.help('nanogate_upstream_duration_seconds', 'histogram', "per node: dispatch of the answering attempt to the end of the node's response");
    for (let n = 0; n < this.#nodeLabels.length; n++) {
      const l = this.#nodeLabels[n];
      const labels = out.labels('upstream', l.upstream, 'node', l.node);
      if (this.#currentNodes.includes(n)) {
        let inflight = 0;
        let open = 0;
        for (let w = 0; w < this.workers; w++) {
          inflight += Atomics.load(this.#cells, w * BLOCK_CELLS + B_NODES + n * NODE_CELLS + N_IN_FLIGHT);
          open += Atomics.load(this.#cells, w * BLOCK_CELLS + B_NODES + n * NODE_CELLS + N_OPEN);
        }
        out.sample('nanogate_upstream_in_flight', labels, inflight);
        out.sample('nanogate_upstream_connections', labels, open);
      }
      const row = B_NODES + n * NODE_CELLS;
      out.sample('nanogate_upstream_attempts_total', labels, this.#sumWorkers(row + N_ATTEMPTS));
      // the latency histogram counts every response: its count is the responses counter
      let responses = 0;
      for (let b = 0; b < BUCKETS; b++) responses += this.#sumWorkers(row + N_LATENCY + b);
      out.sample('nanogate_upstream_responses_total', labels, responses);
      for (let k = 0; k < FAILURE_KINDS.length; k++) {
        out.sample('nanogate_upstream_failures_total', `${labels},kind="${FAILURE_KINDS[k]}"`, this.#sumWorkers(row + N_FAILURES + k));
      }
      this.#histogram(out, 'nanogate_upstream_duration_seconds', labels, row + N_LATENCY);
    }

    // Precomputed percentiles are one gauge each (as prom-client's nodejs_eventloop_lag_p50_seconds): a `quantile`
    // label is reserved for summaries, and a summary needs _sum and _count over all time, which the lag has not.
    const perWorker: [string, number, number, string][] = [
      ['nanogate_worker_event_loop_lag_p50_seconds', W_LOOP_P50_US, 1e-6, 'median event-loop delay of each worker over the last second'],
      ['nanogate_worker_event_loop_lag_p99_seconds', W_LOOP_P99_US, 1e-6, '99th percentile of the event-loop delay of each worker over the last second'],
      ['nanogate_worker_event_loop_lag_max_seconds', W_LOOP_MAX_US, 1e-6, 'longest event-loop delay of each worker over the last second'],
      ['nanogate_worker_heap_used_bytes', W_HEAP_USED_KB, 1024, 'V8 heap in use by each worker'],
      ['nanogate_worker_heap_total_bytes', W_HEAP_TOTAL_KB, 1024, 'V8 heap reserved by each worker'],
    ];
    for (const [name, cell, scale, help] of perWorker) {
      out.help(name, 'gauge', help);
      for (let w = 0; w < this.workers; w++) out.sample(name, out.labels('worker', String(w)), Atomics.load(this.#cells, w * BLOCK_CELLS + B_WORKER + cell) * scale);
    }

    const counters: [string, number, string][] = [
      ['nanogate_access_log_lines_total', W_LOGS_WRITTEN, 'access-log lines handed to a destination'],
      ['nanogate_access_log_sampled_out_total', W_LOGS_SAMPLED_OUT, 'successful requests not logged because of sampling'],
      ['nanogate_access_log_dropped_total', W_LOGS_DROPPED, 'access-log lines dropped (HTTP destination queue full or unreachable)'],
      ['nanogate_spans_exported_total', W_SPANS_EXPORTED, 'spans accepted by the OTLP collector'],
      ['nanogate_spans_dropped_total', W_SPANS_DROPPED, 'spans dropped (queue full or collector unreachable)'],
      ['nanogate_consumer_plan_overflow_total', W_PLAN_OVERFLOW, `requests whose consumer plan was counted as "_other" (more than ${PLAN_OTHER - 1} plans)`],
    ];
    for (const [name, cell, help] of counters) {
      out.help(name, 'counter', help);
      out.sample(name, '', this.#sumWorkers(B_WORKER + cell));
    }
  }

  #histograms(out: PromWriter, name: string, help: string, routes: number, at: number, routeName: (s: number) => string): void {
    out.help(name, 'histogram', help);
    for (let r = 0; r < routes; r++) this.#histogram(out, name, out.labels('route', routeName(r)), B_ROUTES + r * ROUTE_CELLS + at);
  }

  /** One histogram series, merged over workers; nothing when it has no observations. */
  #histogram(out: PromWriter, name: string, labels: string, offset: number): void {
    let count = 0;
    for (let b = 0; b < BUCKETS; b++) count += this.#sumWorkers(offset + b);
    if (count === 0) return;
    let cumulative = 0;
    for (let b = 0; b < BUCKETS; b++) {
      cumulative += this.#sumWorkers(offset + b);
      out.bucket(name + '_bucket', labels, LE[b], cumulative);
    }
    out.sample(name + '_sum', labels, this.#sumWorkers(offset + HIST_SUM) / 1e6);
    out.sample(name + '_count', labels, count);
  }

  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}



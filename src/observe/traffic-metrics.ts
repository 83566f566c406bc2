import type { Plan } from '../config/plan.js';
import { BOUNDS_MS, BUCKETS } from './metrics-layout.js';
import type { PromWriter } from './prometheus.js';
import { SplitState } from '../traffic/split-state.js';
import { delta32 } from '../traffic/rollout-criteria.js';
import { ROLLOUT_ACTIONS, ROLLOUT_STATES } from '../traffic/rollout-machine.js';
import type { RolloutController } from '../traffic/rollout-controller.js';

/**
 * Per-version traffic of the routes with `traffic` (requests, errors, latency histogram, weight) and the state of
 * their rollouts, for the scrape. Read from the routes' split regions on the main thread: the workers only do the
 * Atomics.add they do anyway for the rollout.
 *
 * The region's counters are 32-bit and wrap; they are folded into 64-bit totals here, on every scrape and every
 * second while some route has a split (the latency sum in µs is the fastest to wrap: 4295 s of latency between two
 * folds, an hour of 1,000 requests a second at 1 ms). Totals are keyed by region, so a reload that keeps a route's
 * versions keeps its counters monotonic; a region that goes away takes its totals with it.
 */

const POLL_MS = 1000;
/** bucket upper bounds in seconds, +Inf last */
const LE = [...BOUNDS_MS].map((ms) => ms / 1000).concat(Infinity);
/** per version: requests, errors, BUCKETS buckets, sum µs */
const CELLS = 2 + BUCKETS + 1;

interface Folded {
  readonly last: Int32Array;
  readonly total: Float64Array;
}

export class TrafficMetrics {
  readonly #totals = new Map<string, Folded>();
  readonly #scratch = new Int32Array(BUCKETS);
  #plan: Plan | null = null;
  #timer: NodeJS.Timeout | null = null;

  /** The plan now serving; polls only while one of its routes has a split. */
  attach(plan: Plan): void {
    this.#plan = plan;
    const keys = new Set<string>();
    for (const r of plan.routes) if (r.traffic) keys.add(r.traffic.regionKey);
    for (const k of this.#totals.keys()) if (!keys.has(k)) this.#totals.delete(k);
    if (keys.size > 0 && this.#timer === null) {
      this.#timer = setInterval(() => this.#fold(), POLL_MS);
      this.#timer.unref();
    } else if (keys.size === 0) this.close();
    this.#fold();
  }

  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  render(out: PromWriter, rollouts: RolloutController): void {
    this.#fold();
    const plan = this.#plan;
    out.help('nanogate_traffic_requests_total', 'counter', 'per route with a split and version: requests that went to the version');
    out.help('nanogate_traffic_errors_total', 'counter', 'per route with a split and version: of those, 5xx answers and gateway failures');
    out.help('nanogate_traffic_duration_seconds', 'histogram', 'per route with a split and version: request arrival to the end of the response (P95: histogram_quantile(0.95, rate(..._bucket[1m])))');
    out.help('nanogate_traffic_weight_ratio', 'gauge', 'per route with a split and version: share of new requests the version gets now (0..1), as a rollout or the config set it');
    if (plan) {
      for (const r of plan.routes) {
        const t = r.traffic;
        if (!t) continue;
        const f = this.#totals.get(t.regionKey);
        const region = new SplitState(t.region, t.versions.length);
        t.versions.forEach((v, i) => {
          const labels = out.labels('route', r.name, 'version', v.name);
          out.sample('nanogate_traffic_weight_ratio', labels, region.weight(i) / 1000);
          if (!f) return;
          const at = i * CELLS;
          out.sample('nanogate_traffic_requests_total', labels, f.total[at]);
          out.sample('nanogate_traffic_errors_total', labels, f.total[at + 1]);
          if (f.total[at] === 0) return;
          let cumulative = 0;
          for (let b = 0; b < BUCKETS; b++) {
            cumulative += f.total[at + 2 + b];
            out.bucket('nanogate_traffic_duration_seconds_bucket', labels, LE[b], cumulative);
          }
          out.sample('nanogate_traffic_duration_seconds_sum', labels, f.total[at + 2 + BUCKETS] / 1e6);
          out.sample('nanogate_traffic_duration_seconds_count', labels, cumulative);
        });
      }
    }

    out.help('nanogate_rollout_state', 'gauge', 'per route with a rollout: 1 for the state it is in (running, paused, promoted, rolled_back, aborted)');
    out.help('nanogate_rollout_step', 'gauge', 'per route with a rollout: index of the current step (0 is the first)');
    out.help('nanogate_rollout_decisions_total', 'counter', 'per route with a rollout: decisions by action (start, restart, step, promote, rollback, hold, pause, resume, abort)');
    out.help('nanogate_rollout_evaluated_error_ratio', 'gauge', "per route with a rollout: the error ratio (0..1) its last evaluation measured over the step, for the canary and the stable versions (side)");
    out.help('nanogate_rollout_evaluated_p95_seconds', 'gauge', 'per route with a rollout: the P95 latency its last evaluation measured over the step, for the canary and the stable versions (side)');
    for (const s of rollouts.states()) {
      for (const name of ROLLOUT_STATES) out.sample('nanogate_rollout_state', out.labels('route', s.route, 'state', name), s.state === name ? 1 : 0);
      out.sample('nanogate_rollout_step', out.labels('route', s.route), s.step);
      const w = s.last?.stepWindow;
      if (!w) continue;
      for (const [side, m] of [['canary', w.canary], ['stable', w.stable]] as const) {
        const l = out.labels('route', s.route, 'side', side);
        if (m.errorRatePct !== null) out.sample('nanogate_rollout_evaluated_error_ratio', l, m.errorRatePct / 100);
        if (m.p95Ms !== null) out.sample('nanogate_rollout_evaluated_p95_seconds', l, m.p95Ms / 1000);
      }
    }
    for (const [key, n] of rollouts.decisions) {
      const [route, action] = key.split('\u0000');
      if ((ROLLOUT_ACTIONS as readonly string[]).includes(action)) out.sample('nanogate_rollout_decisions_total', out.labels('route', route, 'action', action), n);
    }
  }

  #fold(): void {
    const plan = this.#plan;
    if (!plan) return;
    for (const r of plan.routes) {
      const t = r.traffic;
      if (!t) continue;
      const region = new SplitState(t.region, t.versions.length);
      let f = this.#totals.get(t.regionKey);
      const fresh = f === undefined;
      if (!f) this.#totals.set(t.regionKey, (f = { last: new Int32Array(t.versions.length * CELLS), total: new Float64Array(t.versions.length * CELLS) }));
      for (let v = 0; v < t.versions.length; v++) {
        const at = v * CELLS;
        region.histogram(v, this.#scratch);
        this.#add(f, at, region.requests(v) | 0, fresh);
        this.#add(f, at + 1, region.errors(v) | 0, fresh);
        for (let b = 0; b < BUCKETS; b++) this.#add(f, at + 2 + b, this.#scratch[b], fresh);
        this.#add(f, at + 2 + BUCKETS, region.latencySumUs(v) | 0, fresh);
      }
    }
  }

  /** Adds what the cell gained since the last fold; a region first seen counts everything it holds. */
  #add(f: Folded, at: number, now: number, fresh: boolean): void {
    f.total[at] += fresh ? now >>> 0 : delta32(now, f.last[at]);
    f.last[at] = now;
  }
}

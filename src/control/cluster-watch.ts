import type pino from 'pino';
import type { Plan } from '../config/plan.js';
import {
  CIRCUIT,
  CIRCUIT_CLOSED,
  CIRCUIT_HALF_OPEN,
  CIRCUIT_OPEN,
  ClusterState,
  EJECTED_UNTIL,
  EJECTIONS,
  LAST_FAILURE,
  LAST_FAILURE_AT,
  LAST_FAILURE_NAMES,
  NONE,
  PANIC,
  LAST_SUCCESS_RATE,
  WINDOW_OK,
  WINDOW_TOTAL,
  after,
  clock32,
} from '../upstream/cluster-state.js';

const TICK_MS = 250;

interface Seen {
  generation: number;
  circuit: number;
  ejected: boolean[];
  panic: boolean;
  /** clock32() of the last multiplier decay per node */
  decayedAt: number[];
  /** clock32() of the last success-rate evaluation */
  ratedAt: number;
}

/**
 * Watches every upstream's shared region from the control plane: logs each passive ejection, return and panic
 * episode once (workers only flip the cells), and lets the ejection multiplier decay for a node that stayed out of
 * trouble for a base ejection time (Envoy's rule), so a node that failed once a week is not ejected for the cap.
 * A tick reads one generation cell per upstream; nothing is done for an upstream whose region did not change.
 */
export class ClusterWatch {
  readonly #log: pino.Logger;
  #plan: Plan | null = null;
  #states = new Map<string, ClusterState>();
  #seen = new Map<string, Seen>();
  #timer: NodeJS.Timeout | null = null;
  readonly #routeCircuits = new Map<string, number>();
  /** passive ejections and panic episodes seen, for metrics: upstream -> counts */
  readonly panics = new Map<string, number>();

  constructor(log: pino.Logger) {
    this.#log = log;
  }

  update(plan: Plan): void {
    this.#plan = plan;
    const states = new Map<string, ClusterState>();
    for (const u of plan.upstreams) {
      const old = this.#states.get(u.name);
      states.set(u.name, old && old.cells.buffer === u.clusterState ? old : new ClusterState(u.clusterState, u.nodes.length));
      if (!old || old.cells.buffer !== u.clusterState) this.#seen.delete(u.name);
    }
    this.#states = states;
    if (this.#timer === null) {
      this.#timer = setInterval(() => this.tick(), TICK_MS);
      this.#timer.unref();
    }
  }

  state(upstream: string): ClusterState | undefined {
    return this.#states.get(upstream);
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /**
   * Success-rate outliers (Envoy's success_rate_*): among the nodes with enough attempts in the interval, one whose
   * success rate is below mean − stdevFactor × stdev is ejected (same rules as any ejection: time growing with
   * repeats, maxEjectionPercent). The interval's counts then start again.
   */
  #rateNodes(u: Plan['upstreams'][number], s: ClusterState, sr: NonNullable<Plan['upstreams'][number]['outlier']['successRate']>, now: number): void {
    const rates: { node: number; rate: number }[] = [];
    for (let i = 0; i < u.nodes.length; i++) {
      const total = s.get(i, WINDOW_TOTAL);
      const ok = s.get(i, WINDOW_OK);
      s.set(i, WINDOW_TOTAL, 0);
      s.set(i, WINDOW_OK, 0);
      if (total >= sr.minRequests && s.get(i, EJECTED_UNTIL) === NONE) rates.push({ node: i, rate: ok / total });
    }
    if (rates.length < sr.minNodes) return;
    const mean = rates.reduce((a, r) => a + r.rate, 0) / rates.length;
    const stdev = Math.sqrt(rates.reduce((a, r) => a + (r.rate - mean) ** 2, 0) / rates.length);
    const threshold = mean - sr.stdevFactor * stdev;
    const maxEjected = Math.max(1, Math.floor((u.nodes.length * u.outlier.maxEjectionPercent) / 100));
    for (const r of rates) {
      if (r.rate >= threshold) continue;
      const forMs = Math.min(u.outlier.baseEjectionMs * (s.get(r.node, EJECTIONS) + 1), u.outlier.maxEjectionMs);
      if (s.eject(r.node, now, clock32(Date.now() + forMs), LAST_SUCCESS_RATE, maxEjected)) {
        this.#log.warn({ upstream: u.name, node: u.nodes[r.node].url, successRate: Number(r.rate.toFixed(3)), mean: Number(mean.toFixed(3)), threshold: Number(threshold.toFixed(3)) }, 'upstream node is a success-rate outlier');
      }
    }
  }

  #logCircuit(fields: Record<string, string>, state: number): void {
    if (state === CIRCUIT_OPEN) this.#log.error({ ...fields, circuit: 'open' }, 'circuit breaker opened: answering 503 at once');
    else if (state === CIRCUIT_HALF_OPEN) this.#log.warn({ ...fields, circuit: 'half-open' }, 'circuit breaker half-open: letting probes through');
    else this.#log.info({ ...fields, circuit: 'closed' }, 'circuit breaker closed');
  }

  tick(): void {
    const plan = this.#plan;
    if (plan === null) return;
    const now = clock32();
    // Routes with their own circuit: one cell each, read every tick (they have no generation of their own).
    for (const r of plan.routes) {
      if (r.circuitState === null) continue;
      const state = Atomics.load(new Int32Array(r.circuitState), CIRCUIT);
      if (state !== (this.#routeCircuits.get(r.name) ?? CIRCUIT_CLOSED)) {
        this.#routeCircuits.set(r.name, state);
        this.#logCircuit({ route: r.name }, state);
      }
    }
    for (const u of plan.upstreams) {
      const s = this.#states.get(u.name)!;
      let seen = this.#seen.get(u.name);
      if (!seen) {
        seen = { generation: -1, circuit: CIRCUIT_CLOSED, ejected: u.nodes.map(() => false), panic: false, decayedAt: u.nodes.map(() => now), ratedAt: now };
        this.#seen.set(u.name, seen);
      }
      for (let i = 0; i < u.nodes.length; i++) {
        if (s.get(i, EJECTIONS) === 0 || s.get(i, EJECTED_UNTIL) !== NONE) continue;
        const quiet = Math.max(s.get(i, LAST_FAILURE_AT), seen.decayedAt[i]);
        if (after(now, clock32(quiet + u.outlier.baseEjectionMs))) {
          s.add(i, EJECTIONS, -1);
          seen.decayedAt[i] = now;
        }
      }
      const sr = u.outlier.successRate;
      if (sr && after(now, clock32(seen.ratedAt + sr.intervalMs))) {
        seen.ratedAt = now;
        this.#rateNodes(u, s, sr, now);
      }
      const generation = s.generation;
      if (generation === seen.generation) continue;
      seen.generation = generation;
      for (let i = 0; i < u.nodes.length; i++) {
        const ejected = s.get(i, EJECTED_UNTIL) !== NONE;
        if (ejected === seen.ejected[i]) continue;
        seen.ejected[i] = ejected;
        if (ejected) {
          const until = s.get(i, EJECTED_UNTIL);
          this.#log.warn(
            { upstream: u.name, node: u.nodes[i].url, reason: LAST_FAILURE_NAMES[s.get(i, LAST_FAILURE)], ejections: s.get(i, EJECTIONS), forMs: Math.max(0, (until - now) | 0) },
            'upstream node ejected',
          );
        } else this.#log.info({ upstream: u.name, node: u.nodes[i].url }, 'ejected upstream node takes traffic again');
      }
      const circuit = Atomics.load(s.cells, CIRCUIT);
      if (u.circuit !== null && circuit !== seen.circuit) {
        seen.circuit = circuit;
        this.#logCircuit({ upstream: u.name }, circuit);
      }
      const panic = Atomics.load(s.cells, PANIC) === 1;
      if (panic !== seen.panic) {
        seen.panic = panic;
        if (panic) {
          this.panics.set(u.name, (this.panics.get(u.name) ?? 0) + 1);
          this.#log.error({ upstream: u.name, nodes: u.nodes.length }, 'no upstream node is available: sending to all of them (panic mode)');
        } else this.#log.info({ upstream: u.name }, 'upstream has available nodes again (panic mode over)');
      }
    }
  }
}

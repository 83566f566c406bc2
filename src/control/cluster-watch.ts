import type pino from 'pino';
import type { Plan } from '../config/plan.js';
import {
  ClusterState,
  EJECTED_UNTIL,
  EJECTIONS,
  LAST_FAILURE,
  LAST_FAILURE_AT,
  LAST_FAILURE_NAMES,
  NONE,
  PANIC,
  after,
  clock32,
} from '../upstream/cluster-state.js';

const TICK_MS = 250;

interface Seen {
  generation: number;
  ejected: boolean[];
  panic: boolean;
  /** clock32() of the last multiplier decay per node */
  decayedAt: number[];
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

  tick(): void {
    const plan = this.#plan;
    if (plan === null) return;
    const now = clock32();
    for (const u of plan.upstreams) {
      const s = this.#states.get(u.name)!;
      let seen = this.#seen.get(u.name);
      if (!seen) {
        seen = { generation: -1, ejected: u.nodes.map(() => false), panic: false, decayedAt: u.nodes.map(() => now) };
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

import type { PlanOutlier, PlanUpstream } from '../config/plan.js';
import { Balancer, type NodeAvailability, type PoolLoad } from './balancer.js';
import {
  ACTIVE,
  CONSECUTIVE_5XX,
  CONSECUTIVE_GATEWAY,
  ClusterState,
  EJECTED_UNTIL,
  EJECTIONS,
  HEALTH,
  HEALTH_DOWN,
  IN_FLIGHT,
  LAST_5XX,
  LAST_BAD_RESPONSE,
  LAST_CONNECT,
  LAST_RESET,
  LAST_TIMEOUT,
  LATENCY_US,
  NONE,
  PANIC,
  TRIALS,
  WINDOW_OK,
  WINDOW_TOTAL,
  after,
  clock32,
} from './cluster-state.js';

/** How an attempt on a node ended, as the outlier detector sees it. */
export const OUTCOME_OK = 0;
/** the node answered with a 5xx status */
export const OUTCOME_5XX = 1;
/** connect refused or timed out */
export const OUTCOME_CONNECT = 2;
/** the connection was reset or closed before a full response */
export const OUTCOME_RESET = 3;
/** no response head within the read timeout */
export const OUTCOME_TIMEOUT = 4;
/** hostile or broken framing */
export const OUTCOME_BAD_RESPONSE = 5;
/** the client went away: says nothing about the node */
export const OUTCOME_NONE = 6;

const FAILURE_OF = [0, LAST_5XX, LAST_CONNECT, LAST_RESET, LAST_TIMEOUT, LAST_BAD_RESPONSE, 0];

/** Something that wants to hear about passive ejections (the worker posts them to the control plane for the log). */
export type EjectionListener = (upstream: string, node: number, failure: number, forMs: number) => void;

/**
 * The worker's side of one upstream cluster: "which node, and may I send now", and what became of each attempt.
 * It owns the balancer, and reads and writes the upstream's shared region (cluster-state.ts), so a node ejected by
 * one worker is out on every worker at once, and in-flight counts are the whole gateway's, not one worker's.
 *
 * Availability of a node: not drained by the operator, not down by an active check, not ejected; a node whose
 * ejection period just ended takes at most `trialRequests` requests at a time until one succeeds. When no node is
 * available the cluster is in panic mode and sends to every node that is not drained (a dead upstream cannot be made
 * deader by trying it; a wrongly ejected one is found again).
 */
export class UpstreamCluster implements NodeAvailability {
  readonly name: string;
  readonly state: ClusterState;
  readonly balancer: Balancer;
  readonly nodeCount: number;
  /** in-flight per node across all workers, as the least-connections balancer reads it */
  readonly loads: PoolLoad[];
  readonly #outlier: PlanOutlier;
  readonly #maxEjected: number;
  readonly #flags: Int32Array;
  readonly #firstCell: number;
  /** an active check is configured: an ejected node comes back when it passes, not by trial requests */
  readonly #activeChecks: boolean;
  #panic = false;
  #now = 0;
  onEjection: EjectionListener | null = null;

  constructor(upstream: PlanUpstream, state: ClusterState, flags: Int32Array, firstCell: number) {
    this.name = upstream.name;
    this.state = state;
    this.nodeCount = upstream.nodes.length;
    this.#outlier = upstream.outlier;
    this.#activeChecks = upstream.healthCheck !== null;
    // Envoy's rule: at least one node may always be ejected, whatever the percentage.
    this.#maxEjected = Math.max(1, Math.floor((this.nodeCount * upstream.outlier.maxEjectionPercent) / 100));
    this.#flags = flags;
    this.#firstCell = firstCell;
    this.loads = upstream.nodes.map((_, i) => new SharedLoad(state, i));
    this.balancer = new Balancer(upstream, flags, firstCell);
  }

  /** A node for the next attempt (not `skip`, the one that just failed, when there is another), or -1. */
  pick(skip: number): number {
    this.#now = clock32();
    const i = this.balancer.pick(this.loads, skip, this);
    if (i >= 0) {
      if (this.#panic) this.#setPanic(false);
      return i;
    }
    // Nothing available: panic mode, every node that is not drained.
    const p = this.balancer.pick(this.loads, skip, DRAINED_ONLY);
    if (p >= 0) {
      if (!this.#panic) this.#setPanic(true);
      return p;
    }
    return skip >= 0 && this.#notDrained(skip) ? skip : -1;
  }

  #setPanic(on: boolean): void {
    this.#panic = on;
    if ((Atomics.load(this.state.cells, PANIC) === 1) !== on) {
      Atomics.store(this.state.cells, PANIC, on ? 1 : 0);
      this.state.bump();
    }
  }

  #notDrained(i: number): boolean {
    return Atomics.load(this.#flags, this.#firstCell + i) === 0;
  }

  /** NodeAvailability for the balancer (which skips drained nodes itself): down, ejected or trial-limited nodes. */
  available(i: number): boolean {
    const s = this.state;
    if (s.get(i, HEALTH) === HEALTH_DOWN) return false;
    const until = s.get(i, EJECTED_UNTIL);
    if (until !== NONE) {
      if (after(until, this.#now)) return false;
      // The ejection period is over. With active checks the node waits for a passing check (the checker restores
      // it); without, it comes back on trial.
      if (this.#activeChecks) return false;
      s.expire(i, this.#outlier.trialRequests);
    }
    const trials = s.get(i, TRIALS);
    return trials === 0 || s.get(i, IN_FLIGHT) < trials;
  }

  /** An attempt goes to node i: counted in flight on every worker's view until finish(i). */
  begin(i: number): void {
    this.state.add(i, IN_FLIGHT, 1);
    Atomics.add(this.state.cells, ACTIVE, 1);
  }

  /** The attempt on node i is over (its response ended, failed, or the client left). */
  finish(i: number): void {
    this.state.add(i, IN_FLIGHT, -1);
    Atomics.sub(this.state.cells, ACTIVE, 1);
  }

  /**
   * What the attempt on node i showed, once: at its response head, or when it failed before one. `latencyUs` is the
   * time to the head (0 for none). Passive health: a success clears the node's failure streaks (and ends a trial);
   * a failure extends its streak and ejects the node once the streak reaches the configured count.
   */
  observe(i: number, outcome: number, latencyUs: number): void {
    if (outcome === OUTCOME_NONE) return;
    const s = this.state;
    s.add(i, WINDOW_TOTAL, 1);
    if (latencyUs > 0) observeLatency(s, i, latencyUs);
    const o = this.#outlier;
    if (outcome === OUTCOME_OK) {
      s.add(i, WINDOW_OK, 1);
      // Stores only when there is something to clear: most requests leave the cells untouched.
      if (s.get(i, CONSECUTIVE_GATEWAY) !== 0) s.set(i, CONSECUTIVE_GATEWAY, 0);
      if (s.get(i, CONSECUTIVE_5XX) !== 0) s.set(i, CONSECUTIVE_5XX, 0);
      if (s.get(i, TRIALS) !== 0) {
        s.set(i, TRIALS, 0);
        s.bump();
      }
      return;
    }
    let streak: number;
    let limit: number;
    if (outcome === OUTCOME_5XX) {
      if (s.get(i, CONSECUTIVE_GATEWAY) !== 0) s.set(i, CONSECUTIVE_GATEWAY, 0);
      streak = s.add(i, CONSECUTIVE_5XX, 1);
      limit = o.consecutive5xx;
    } else {
      streak = s.add(i, CONSECUTIVE_GATEWAY, 1);
      limit = o.consecutiveGatewayFailures;
    }
    // A node on trial goes back out at its first failure of a kind that is enabled.
    const onTrial = s.get(i, TRIALS) !== 0;
    if (limit === 0 || (!onTrial && streak < limit)) return;
    const now = clock32();
    const times = s.get(i, EJECTIONS) + 1;
    let forMs = Math.min(o.baseEjectionMs * times, o.maxEjectionMs);
    if (o.jitterPercent > 0) forMs += Math.floor((forMs * o.jitterPercent * Math.random()) / 100);
    if (s.eject(i, now, clock32(Date.now() + forMs), FAILURE_OF[outcome], this.#maxEjected)) this.onEjection?.(this.name, i, FAILURE_OF[outcome], forMs);
  }
}

/** The least-connections balancer reads in-flight counts through this: the whole gateway's, from shared memory. */
class SharedLoad implements PoolLoad {
  readonly #state: ClusterState;
  readonly #cell: number;
  constructor(state: ClusterState, node: number) {
    this.#state = state;
    this.#cell = state.cell(node, IN_FLIGHT);
  }
  get inFlight(): number {
    return Atomics.load(this.#state.cells, this.#cell);
  }
}

/** Panic mode: only the operator's drain switch counts. */
const DRAINED_ONLY: NodeAvailability = { available: () => true };

/**
 * Peak-sensitive EWMA of the time to the response head (Finagle's "peak EWMA"): a sample above the current value
 * replaces it at once, a lower one pulls it down by 1/8. Integer µs, one compare-exchange (a lost race drops a
 * sample, which an average can afford).
 */
export function observeLatency(s: ClusterState, i: number, us: number): void {
  const cell = s.cell(i, LATENCY_US);
  const cur = Atomics.load(s.cells, cell);
  const sample = us > 0x7fffffff ? 0x7fffffff : us | 0;
  const next = cur === 0 || sample > cur ? sample : cur + ((sample - cur) >> 3);
  if (next !== cur) Atomics.compareExchange(s.cells, cell, cur, next);
}

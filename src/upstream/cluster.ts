import type { PlanOutlier, PlanUpstream } from '../config/plan.js';
import { ADMIT_CIRCUIT_OPEN, ADMIT_OK, ADMIT_PROBE, CircuitBreaker } from './circuit.js';
import { createBalancer, ewmaAt, ewmaUpdate, slowStartFactor, type Balancer, type NodeView } from './balancers/index.js';
import {
  ACTIVE,
  RETRIES_ACTIVE,
  RETRIES_REFUSED,
  RETRIES_TOTAL,
  SHED_TOTAL,
  CONSECUTIVE_5XX,
  CONSECUTIVE_GATEWAY,
  ClusterState,
  EJECTED_UNTIL,
  EJECTIONS,
  HEALTH,
  HEALTH_DOWN,
  HEALTHY_SINCE,
  LATENCY_STAMP,
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

export { ADMIT_CIRCUIT_OPEN, ADMIT_OK, ADMIT_PROBE } from './circuit.js';
/** admit(): maxConcurrent requests are in flight */
export const ADMIT_FULL = 3;

/** A request waiting in the cluster's queue for a free slot (the worker's Exchange). */
export interface QueuedRequest {
  /** clock.now deadline of its wait */
  readonly queuedUntil: number;
  /** a slot may be free: try again (admit may still refuse, and it queues again) */
  dequeued(): void;
  /** its wait is over without a slot */
  queueTimedOut(): void;
}

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
export class UpstreamCluster implements NodeView {
  readonly name: string;
  readonly state: ClusterState;
  readonly balancer: Balancer;
  readonly nodeCount: number;
  /** NodeView: the node count */
  readonly count: number;
  readonly #weights: readonly number[];
  readonly #slowStart: { readonly windowMs: number; readonly aggression: number; readonly minWeightPercent: number } | null;
  readonly #decayMs: number;
  /** success-rate ejection is configured: attempts and successes are counted per node */
  readonly #rated: boolean;
  /** the balancer reads latencies (peak-ewma): the EWMA is kept per node */
  readonly #timed: boolean;
  /**
   * Per node, this worker's plain moving average of the time to the response head (µs, weight 1/16 per answer):
   * pipelining sends no batches to a node above pipeliningBounds.slowNodeMs (h1-pool.ts). Not the peak EWMA: one
   * cold-start answer of 65 ms (measured on the first requests of a fresh worker) keeps that far above the limit for
   * seconds with its 10 s decay (still 47 ms 3 s later), while this one forgets it after about twenty answers. null: not needed.
   */
  readonly latencyAvgUs: Float64Array | null;
  /** the view in panic mode: every node that is not drained */
  readonly #panicView: NodeView;
  readonly #outlier: PlanOutlier;
  readonly #maxEjected: number;
  readonly #flags: Int32Array;
  readonly #firstCell: number;
  /** an active check is configured: an ejected node comes back when it passes, not by trial requests */
  readonly #activeChecks: boolean;
  /** the upstream's circuit breaker (its cells are in the upstream's region), or null */
  readonly circuit: CircuitBreaker | null;
  readonly #budget: { readonly percent: number; readonly minConcurrency: number };
  readonly #maxConcurrent: number;
  readonly #queueSize: number;
  readonly queueWaitMs: number;
  /** this worker's requests waiting for a slot, oldest first */
  readonly #queue: QueuedRequest[] = [];
  #panic = false;
  #now = 0;
  onEjection: EjectionListener | null = null;

  /** this worker's stripe of the region's per-worker counts (ClusterState.stripe) */
  readonly #stripe: number;

  /** `worker`: the worker's index (its stripe of the shared counts; its balancer's seed is worker + 1) */
  constructor(upstream: PlanUpstream, state: ClusterState, flags: Int32Array, firstCell: number, worker = 0) {
    const seed = worker + 1;
    this.name = upstream.name;
    this.state = state;
    this.#stripe = state.stripe(worker);
    this.nodeCount = upstream.nodes.length;
    this.count = this.nodeCount;
    this.#weights = upstream.nodes.map((n) => n.weight);
    this.#slowStart = upstream.balancing.slowStart ?? null;
    this.#decayMs = upstream.balancing.peakEwma.decayMs;
    this.#rated = upstream.outlier.successRate !== undefined;
    this.#timed = upstream.balancing.algorithm === 'peak-ewma';
    this.latencyAvgUs = upstream.pipelining > 1 && upstream.pipeliningSlowNodeMs > 0 ? new Float64Array(this.nodeCount) : null;
    this.#panicView = new PanicView(this, flags, firstCell);
    this.#outlier = upstream.outlier;
    this.#activeChecks = upstream.healthCheck !== null;
    // Envoy's rule: at least one node may always be ejected, whatever the percentage.
    this.#maxEjected = Math.max(1, Math.floor((this.nodeCount * upstream.outlier.maxEjectionPercent) / 100));
    this.#flags = flags;
    this.#firstCell = firstCell;

    this.circuit = upstream.circuit === null ? null : new CircuitBreaker(state.cells, upstream.circuit, () => state.bump());
    this.#budget = upstream.retryBudget;
    this.#maxConcurrent = upstream.maxConcurrent;
    this.#queueSize = upstream.queue.size;
    this.queueWaitMs = upstream.queue.maxWaitMs;
    this.balancer = createBalancer(upstream.balancing, seed, upstream.maglev ? new Int32Array(upstream.maglev) : undefined, this.#weights);
  }

  /**
   * A node for the next attempt (not `skip`, the one that just failed, when there is another), or -1. `key` is the
   * request's hash for consistent-hash (0 otherwise).
   */
  pick(skip: number, key = 0): number {
    // the time is read when a node's state needs it (#nowMs), not per pick: Date.now() is a runtime call
    this.#now = NONE;
    // In panic mode the balancer is asked once, over the panic view, until some node is available again (a failed
    // pick over the normal view would move round robin's cursor for nothing).
    if (!this.#panic || this.#anyAvailable(skip)) {
      const i = this.balancer.pick(this, skip, key);
      if (i >= 0) {
        if (this.#panic) this.#setPanic(false);
        return i;
      }
    }
    // Nothing available: panic mode, every node that is not drained.
    const p = this.balancer.pick(this.#panicView, skip, key);
    if (p >= 0) {
      if (!this.#panic) this.#setPanic(true);
      return p;
    }
    return skip >= 0 && this.#notDrained(skip) ? skip : -1;
  }

  /** clock32() once per pick, on first use: an ejected node, slow start or a latency EWMA asks for it */
  #nowMs(): number {
    return this.#now !== NONE ? this.#now : (this.#now = clock32());
  }

  #anyAvailable(skip: number): boolean {
    for (let i = 0; i < this.nodeCount; i++) if (i !== skip && this.#weights[i] > 0 && this.available(i)) return true;
    return false;
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

  /** NodeView: drained (operator), down (active check), ejected or trial-limited nodes are not available. */
  available(i: number): boolean {
    // plain reads (ClusterState.peek): a node drained, marked down or ejected a few µs ago may get one more request
    if (this.#flags[this.#firstCell + i] !== 0) return false;
    const s = this.state;
    if (s.peek(i, HEALTH) === HEALTH_DOWN) return false;
    const until = s.peek(i, EJECTED_UNTIL);
    if (until !== NONE) {
      if (after(until, this.#nowMs())) return false;
      // The ejection period is over. With active checks the node waits for a passing check (the checker restores
      // it); without, it comes back on trial.
      if (this.#activeChecks) return false;
      s.expire(i, this.#outlier.trialRequests);
    }
    const trials = s.peek(i, TRIALS);
    return trials === 0 || s.inFlight(i) < trials;
  }

  /** NodeView: the configured weight, ramped after the node became available when slow start is configured. */
  weight(i: number): number {
    const w = this.#weights[i];
    const ss = this.#slowStart;
    if (ss === null || w === 0) return w;
    const since = this.state.get(i, HEALTHY_SINCE);
    if (since === NONE) return w;
    const elapsed = (this.#nowMs() - since) | 0;
    return elapsed >= ss.windowMs || elapsed < 0 ? w : w * slowStartFactor(elapsed, 0, ss);
  }

  /** NodeView: requests in flight to node i across all workers. */
  inFlight(i: number): number {
    return this.state.inFlight(i);
  }

  /** NodeView: the node's peak EWMA of time to the response head, decayed to now (0: no sample). */
  latencyUs(i: number): number {
    const s = this.state;
    return ewmaAt(s.get(i, LATENCY_US), s.get(i, LATENCY_STAMP), this.#nowMs(), this.#decayMs);
  }

  /**
   * May a request go to this upstream now? The circuit breaker first, then the concurrency limit, which takes a slot
   * (counted in ACTIVE with a compare-exchange, so the limit holds exactly across workers; without a limit, in this
   * worker's stripe). With ADMIT_OK or ADMIT_PROBE the caller owns a slot and must pass it on to begin() or give it
   * back with release().
   */
  admit(): number {
    let verdict = ADMIT_OK;
    if (this.circuit !== null) {
      verdict = this.circuit.admit();
      if (verdict === ADMIT_CIRCUIT_OPEN) {
        Atomics.add(this.state.cells, SHED_TOTAL, 1);
        return verdict;
      }
    }
    const cells = this.state.cells;
    const max = this.#maxConcurrent;
    if (max === 0) {
      this.state.addActive(this.#stripe, 1);
      return verdict;
    }
    // The stripes hold what an earlier config admitted without a limit (a reload that set one): they count too.
    const unlimited = this.state.active() - Atomics.load(cells, ACTIVE);
    for (;;) {
      const n = Atomics.load(cells, ACTIVE);
      if (n + unlimited >= max) return ADMIT_FULL;
      if (Atomics.compareExchange(cells, ACTIVE, n, n + 1) === n) return verdict;
    }
  }

  /** Gives back a slot taken by admit() (the request ended, or waits for a retry). Wakes a queued request. */
  release(): void {
    if (this.#maxConcurrent === 0) this.state.addActive(this.#stripe, -1);
    else Atomics.sub(this.state.cells, ACTIVE, 1);
    if (this.#queue.length > 0) this.#queue.shift()!.dequeued();
  }

  /** Queues a request refused with ADMIT_FULL; false when the queue is full (then 503 at once). */
  enqueue(r: QueuedRequest): boolean {
    if (this.#queue.length >= this.#queueSize) {
      Atomics.add(this.state.cells, SHED_TOTAL, 1);
      return false;
    }
    this.#queue.push(r);
    return true;
  }

  /** Takes a request out of the queue (its client left). */
  dequeue(r: QueuedRequest): void {
    const i = this.#queue.indexOf(r);
    if (i >= 0) this.#queue.splice(i, 1);
  }

  /**
   * Every clock tick: slots freed by other workers are offered to this worker's queue (release() only wakes the
   * releasing worker's own), and waits that passed their deadline end.
   */
  sweep(now: number): void {
    const q = this.#queue;
    if (q.length === 0) return;
    while (q.length > 0 && q[0].queuedUntil <= now) q.shift()!.queueTimedOut();
    if (q.length > 0 && this.state.active() < this.#maxConcurrent) q.shift()!.dequeued();
  }

  /** An attempt goes to node i: counted in flight on every worker's view until finish(i). */
  begin(i: number): void {
    this.state.addInFlight(this.#stripe, i, 1);
  }

  /** The attempt on node i is over (its response ended, failed, or the client left). */
  finish(i: number): void {
    this.state.addInFlight(this.#stripe, i, -1);
  }

  /**
   * The retry budget (Envoy's retry_budget): a retry, counted from when it is decided (backoff included) until its
   * attempt ends, is allowed while retries are fewer than `percent` of the other requests in flight, or than
   * `minConcurrency`. True when allowed (then retryDone() must follow).
   */
  tryRetry(): boolean {
    const cells = this.state.cells;
    const b = this.#budget;
    for (;;) {
      const n = Atomics.load(cells, RETRIES_ACTIVE);
      // With this retry counted, retries must stay within `percent` of the requests in flight that are not retrying
      // (a retrying request turns one of those into a retry), so retries stay within `percent` of client requests;
      // Envoy's share of all active requests lets them reach percent / (1 - percent).
      const others = this.state.active() - n - 1;
      if (n + 1 > Math.max(b.minConcurrency, (others * b.percent) / 100)) {
        Atomics.add(cells, RETRIES_REFUSED, 1);
        return false;
      }
      if (Atomics.compareExchange(cells, RETRIES_ACTIVE, n, n + 1) === n) break;
    }
    Atomics.add(cells, RETRIES_TOTAL, 1);
    return true;
  }

  retryDone(): void {
    Atomics.sub(this.state.cells, RETRIES_ACTIVE, 1);
  }

  /** ms until an open circuit lets probes through (for Retry-After); 0 when it is not open. */
  circuitRetryAfterMs(): number {
    return this.circuit === null ? 0 : this.circuit.retryAfterMs();
  }


  /**
   * What the attempt on node i showed, once: at its response head, or when it failed before one. `latencyUs` is the
   * time to the head (0 for none). Passive health: a success clears the node's failure streaks (and ends a trial);
   * a failure extends its streak and ejects the node once the streak reaches the configured count.
   */
  observe(i: number, outcome: number, latencyUs: number, probe = false): void {
    if (outcome === OUTCOME_NONE) return;
    if (this.circuit !== null) this.circuit.record(outcome !== OUTCOME_OK, latencyUs, probe);
    const s = this.state;
    // Shared cells written per request cost cache-line traffic between workers: only what a configured feature reads.
    if (this.#rated) s.add(i, WINDOW_TOTAL, 1);
    const avg = this.latencyAvgUs;
    if (avg !== null && latencyUs > 0) avg[i] += (latencyUs - avg[i]) * 0.0625;
    if (this.#timed && latencyUs > 0) ewmaUpdate(s.cells, s.cell(i, LATENCY_US), s.cell(i, LATENCY_STAMP), latencyUs, clock32(), this.#decayMs);
    const o = this.#outlier;
    if (outcome === OUTCOME_OK) {
      if (this.#rated) s.add(i, WINDOW_OK, 1);
      // Stores only when there is something to clear: most requests leave the cells untouched. Plain reads
      // (ClusterState.peek): a streak another worker raised a moment ago is cleared by the next success.
      if (s.peek(i, CONSECUTIVE_GATEWAY) !== 0) s.set(i, CONSECUTIVE_GATEWAY, 0);
      if (s.peek(i, CONSECUTIVE_5XX) !== 0) s.set(i, CONSECUTIVE_5XX, 0);
      if (s.peek(i, TRIALS) !== 0) {
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

/** Panic mode's view: every node the operator did not drain is available; the rest is the cluster's own. */
class PanicView implements NodeView {
  readonly count: number;
  readonly #cluster: UpstreamCluster;
  readonly #flags: Int32Array;
  readonly #firstCell: number;
  constructor(cluster: UpstreamCluster, flags: Int32Array, firstCell: number) {
    this.#cluster = cluster;
    this.count = cluster.nodeCount;
    this.#flags = flags;
    this.#firstCell = firstCell;
  }
  available(i: number): boolean {
    return Atomics.load(this.#flags, this.#firstCell + i) === 0;
  }
  weight(i: number): number {
    return this.#cluster.weight(i);
  }
  inFlight(i: number): number {
    return this.#cluster.inFlight(i);
  }
  latencyUs(i: number): number {
    return this.#cluster.latencyUs(i);
  }
}

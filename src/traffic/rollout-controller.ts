import type { Logger } from 'pino';
import type { Plan, PlanRoute } from '../config/plan.js';
import { BUCKETS } from '../observe/metrics-layout.js';
import { CIRCUIT, CIRCUIT_OPEN } from '../upstream/cluster-state.js';
import { SplitState } from './split-state.js';
import type { PlanRollout } from './rollout-schema.js';
import type { Sample } from './rollout-criteria.js';
import { RolloutMachine, RolloutStateError, type Decision, type RolloutAction } from './rollout-machine.js';

/**
 * Runs the rollouts of the routes that have `traffic.rollout`, on the main thread: one machine per route
 * (rollout-machine.ts), one timer per rollout at its evaluation interval, each tick a sample of the route's split
 * region (src/traffic/split-state.ts) and of the canary upstream's circuit cell, then the machine's weights
 * written back into the region, where the workers pick them up at their next request.
 *
 * State lives here, not in the region: a reload whose rollout is the same (same route, versions, upstreams and
 * rollout block: PlanRollout.identity) keeps its machine, its step and its history, and writes its weights again
 * (a reload that changed only the configured weights would otherwise have put those in). A changed rollout starts
 * over at step 0 (logged and counted as a restart); a removed one stops and the configured weights come back.
 * A gateway restart starts every rollout over: nothing of it is persisted.
 */

export type RolloutCommand = 'pause' | 'resume' | 'promote' | 'abort';

/** The route has no rollout (GET/POST /routes/:name/rollout…). */
export class NoRolloutError extends Error {
  override readonly name = 'NoRolloutError';
}

export { RolloutStateError };

interface Run {
  readonly route: string;
  readonly spec: PlanRollout;
  readonly machine: RolloutMachine;
  region: SplitState;
  /** the canary upstream's shared region, when it has a circuit breaker */
  circuit: Int32Array | null;
  timer: NodeJS.Timeout | null;
}

export class RolloutController {
  readonly #log: Logger;
  readonly #runs = new Map<string, Run>();
  /** decisions by route and action, for nanogate_rollout_decisions_total; kept when a rollout restarts */
  readonly decisions = new Map<string, number>();
  #stopped = false;
  /** Date.now, replaceable by tests of the arithmetic only */
  readonly #now: () => number;

  constructor(log: Logger, now: () => number = Date.now) {
    this.#log = log;
    this.#now = now;
  }

  /** Takes a newly applied plan (start, reload, apply): starts, keeps, restarts or stops rollouts. */
  update(plan: Plan): void {
    if (this.#stopped) return;
    const seen = new Set<string>();
    for (const r of plan.routes) {
      const spec = r.traffic?.rollout ?? null;
      if (spec === null) continue;
      seen.add(r.name);
      const region = new SplitState(r.traffic!.region, r.traffic!.versions.length);
      const circuit = circuitOf(plan, r, spec);
      const have = this.#runs.get(r.name);
      if (have && have.spec.identity === spec.identity) {
        have.region = region;
        have.circuit = circuit;
        this.#write(have);
        continue;
      }
      if (have) this.#halt(have);
      const restart = have !== undefined;
      const machine = new RolloutMachine(spec, sample(region, this.#now()), restart ? 'restart' : 'start', restart ? 'the rollout block, the versions or their upstreams changed: starting over at step 0' : 'rollout configured');
      const run: Run = { route: r.name, spec, machine, region, circuit, timer: null };
      this.#runs.set(r.name, run);
      this.#write(run);
      this.#decided(run, machine.history[machine.history.length - 1]);
      this.#arm(run);
    }
    for (const [name, run] of this.#runs) {
      if (seen.has(name)) continue;
      this.#halt(run);
      this.#runs.delete(name);
      const r = plan.routes.find((x) => x.name === name);
      if (r?.traffic) {
        // the rollout block went away but the split stayed: back to the configured weights
        const region = new SplitState(r.traffic.region, r.traffic.versions.length);
        region.setWeights(r.traffic.weights);
        region.setConfigHash(r.traffic.configHash);
      }
      const weights = r?.traffic ? Object.fromEntries(r.traffic.versions.map((v, i) => [v.name, r.traffic!.weights[i] / 10])) : null;
      this.#log.info({ route: name, state: run.machine.state, step: run.machine.step, weights }, 'rollout removed from the config; the configured weights serve');
    }
  }

  /** The rollout of a route for the admin API, or null. */
  view(route: string) {
    const run = this.#runs.get(route);
    if (!run) return null;
    const m = run.machine;
    const s = run.spec;
    const live: number[] = [];
    for (let v = 0; v < s.versionNames.length; v++) live.push(run.region.weight(v));
    return {
      route,
      version: s.versionNames[s.version],
      state: m.state,
      step: m.step,
      steps: s.steps.map((x) => x / 10),
      stepStartedAt: new Date(m.stepStartedAt).toISOString(),
      weights: m.percentages(live),
      settings: {
        soakSeconds: s.soakMs / 1000,
        intervalSeconds: s.intervalMs / 1000,
        minRequests: s.minRequests,
        criteria: { maxErrorRateIncrease: s.maxErrorRateIncrease, maxP95Increase: s.maxP95Increase, noOpenCircuit: s.noOpenCircuit },
        rollback: s.rollback,
      },
      lastEvaluation: m.lastEvaluation,
      history: m.history,
    };
  }

  /** Names of the routes with a rollout. */
  routes(): string[] {
    return [...this.#runs.keys()];
  }

  /**
   * An admin command; returns the decision. Throws NoRolloutError (no rollout on the route) or RolloutStateError
   * (not in this state: resume a running rollout, promote a promoted one).
   */
  command(route: string, cmd: RolloutCommand, by: string): Decision {
    const run = this.#runs.get(route);
    if (!run) throw new NoRolloutError(`route "${route}" has no rollout`);
    const m = run.machine;
    const now = this.#now();
    let d: Decision;
    if (cmd === 'pause') d = m.pause(now, by);
    else if (cmd === 'resume') d = m.resume(sample(run.region, now), by);
    else if (cmd === 'promote') d = m.promote(now, by);
    else d = m.abort(now, by);
    this.#write(run);
    this.#decided(run, d);
    if (m.active) this.#arm(run);
    else this.#halt(run);
    return d;
  }

  /** One evaluation of a route's rollout now (the timer's tick). */
  evaluate(route: string): Decision | null {
    const run = this.#runs.get(route);
    return run ? this.#tick(run) : null;
  }

  stop(): void {
    this.#stopped = true;
    for (const run of this.#runs.values()) this.#halt(run);
  }

  /** Per route with a rollout: its state machine's numbers for the scrape (src/observe/traffic-metrics.ts). */
  *states(): Iterable<{ route: string; state: string; step: number; last: RolloutMachine['lastEvaluation']; canary: string }> {
    for (const run of this.#runs.values()) {
      yield { route: run.route, state: run.machine.state, step: run.machine.step, last: run.machine.lastEvaluation, canary: run.spec.versionNames[run.spec.version] };
    }
  }

  #tick(run: Run): Decision | null {
    const m = run.machine;
    const circuitOpen = run.circuit !== null && Atomics.load(run.circuit, CIRCUIT) === CIRCUIT_OPEN;
    const d = m.evaluate(sample(run.region, this.#now()), circuitOpen);
    if (d) {
      this.#write(run);
      this.#decided(run, d);
      if (!m.active) this.#halt(run);
    } else if (m.lastEvaluation) {
      const e = m.lastEvaluation;
      this.#log.debug({ route: run.route, step: m.step, state: m.state, weights: m.percentages(), verdict: e.verdict, canary: e.stepWindow.canary, stable: e.stepWindow.stable, recent: e.recent, reasons: e.reasons }, 'rollout evaluated');
    }
    return d;
  }

  /** The machine's weights into the region, when they differ (a write bumps the workers' generation). */
  #write(run: Run): void {
    const w = run.machine.weights;
    for (let v = 0; v < w.length; v++) {
      if (run.region.weight(v) !== w[v]) {
        run.region.setWeights(w);
        return;
      }
    }
  }

  #decided(run: Run, d: Decision): void {
    const key = `${run.route}\u0000${d.action}`;
    this.decisions.set(key, (this.decisions.get(key) ?? 0) + 1);
    const e = d.evaluation;
    const fields = {
      route: run.route,
      action: d.action,
      by: d.by,
      from: d.from,
      state: d.to,
      step: d.step,
      weights: d.weights,
      reason: d.reason,
      ...(e ? { verdict: e.verdict, canary: e.stepWindow.canary, stable: e.stepWindow.stable, recent: e.recent, lastInterval: e.lastInterval, circuitOpen: e.circuitOpen } : {}),
    };
    if (d.action === 'rollback' || d.action === 'hold') this.#log.warn(fields, MESSAGES[d.action]);
    else this.#log.info(fields, MESSAGES[d.action]);
  }

  #arm(run: Run): void {
    if (run.timer !== null || !run.machine.active || this.#stopped) return;
    run.timer = setInterval(() => this.#tick(run), run.spec.intervalMs);
    run.timer.unref();
  }

  #halt(run: Run): void {
    if (run.timer !== null) clearInterval(run.timer);
    run.timer = null;
  }
}

const MESSAGES: Record<RolloutAction, string> = {
  start: 'rollout started',
  restart: 'rollout restarted: its config changed',
  step: 'rollout stepped forward',
  promote: 'rollout promoted',
  rollback: 'rollout rolled back: the canary failed its evaluation',
  hold: 'rollout paused: the canary failed its evaluation (rollback is off)',
  pause: 'rollout paused',
  resume: 'rollout resumed',
  abort: 'rollout aborted',
};

/** A reading of the region's per-version counters (copies: the region keeps changing). */
export function sample(region: SplitState, at: number): Sample {
  const n = region.versions;
  const requests: number[] = [];
  const errors: number[] = [];
  const buckets: Int32Array[] = [];
  for (let v = 0; v < n; v++) {
    requests.push(region.requests(v) | 0);
    errors.push(region.errors(v) | 0);
    const b = new Int32Array(BUCKETS);
    region.histogram(v, b);
    buckets.push(b);
  }
  return { at, requests, errors, buckets };
}

/** The CIRCUIT cell's region of the canary's upstream, when that upstream has a circuit breaker. */
function circuitOf(plan: Plan, r: PlanRoute, spec: PlanRollout): Int32Array | null {
  const u = plan.upstreams[r.traffic!.versions[spec.version].upstream];
  return u && u.circuit !== null ? new Int32Array(u.clusterState) : null;
}

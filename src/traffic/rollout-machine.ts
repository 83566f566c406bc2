import type { PlanRollout } from './rollout-schema.js';
import { allFailed, delta32, failures, measure, windowOf, type Criteria, type Measured, type Sample } from './rollout-criteria.js';

/**
 * The state machine of one rollout, pure: it is given samples of the route's per-version counters and the time,
 * and answers with the weights to set and the decision it took. The controller (rollout-controller.ts) samples the
 * shared region, writes the weights, logs and counts; this file decides.
 *
 *              pass (soaked, minRequests, criteria hold)
 *   running ───────────────────────────────────────────► running (next step) … ► promoted (100 %)
 *     │  ▲                                                                          ▲
 *     │  │ resume (step starts over)                          promote (admin) ──────┘
 *     ▼  │
 *   paused ── (admin pause; or a failing evaluation with rollback: false)
 *     │
 *     └─ a failing evaluation, running or paused ─► rolled_back (canary 0 %)     abort (admin) ─► aborted (canary 0 %)
 *
 * Each evaluation judges three windows, all inside the current step (deltas since it started):
 * - the last interval: every canary request failed (at least DOWN_MIN of them) → fail at once. A canary whose
 *   upstream is down answers 502/503 only, and waiting for minRequests of those would keep clients failing.
 * - the recent window: the shortest run of the newest samples that holds minRequests canary requests, so a
 *   canary that turns bad in the middle of a long step is judged on its latest requests, not diluted by the
 *   good ones before;
 * - the whole step: what a pass is decided on, once it holds minRequests canary requests and has soaked.
 * The error rate is judged on windows of at least minRequests canary requests, P95 on windows of at least
 * max(minRequests, P95_MIN_REQUESTS): the 95th percentile of 10 answers is the slowest of them, and one answer
 * slowed by a GC pause or a busy core would fail an otherwise healthy canary (measured: on a loaded 2-core machine
 * a canary identical to stable showed P95s of 75-175 ms over 10 requests against 10-30 ms over 200). With fewer,
 * the step waits (it may wait forever on a route without traffic: the admin API shows `waiting` and the counts).
 */

export type RolloutStateName = 'running' | 'paused' | 'promoted' | 'rolled_back' | 'aborted';
export const ROLLOUT_STATES: readonly RolloutStateName[] = ['running', 'paused', 'promoted', 'rolled_back', 'aborted'];

export type RolloutAction = 'start' | 'restart' | 'step' | 'promote' | 'rollback' | 'hold' | 'pause' | 'resume' | 'abort';
export const ROLLOUT_ACTIONS: readonly RolloutAction[] = ['start', 'restart', 'step', 'promote', 'rollback', 'hold', 'pause', 'resume', 'abort'];

/** pass: the step passed; soaking: criteria hold, soak not over; waiting: fewer than minRequests; fail; paused */
export type Verdict = 'pass' | 'soaking' | 'waiting' | 'fail' | 'paused';

export interface Judged {
  canary: Measured;
  stable: Measured;
}

export interface Evaluation {
  at: string;
  step: number;
  verdict: Verdict;
  reasons: string[];
  /** ms since the step started */
  elapsedMs: number;
  /** since the step started */
  stepWindow: Judged;
  /** the newest minRequests canary requests, where the error rate was judged (null: the step has fewer) */
  recent: (Judged & { sinceMs: number }) | null;
  /** the newest max(minRequests, P95_MIN_REQUESTS) canary requests, where P95 was judged (null: not judged) */
  recentP95: (Judged & { sinceMs: number }) | null;
  /** the last interval's canary requests and errors */
  lastInterval: { requests: number; errors: number };
  circuitOpen: boolean;
}

export interface Decision {
  at: string;
  action: RolloutAction;
  /** "controller", or the admin actor ("token:…", "anonymous"), or "reload" */
  by: string;
  from: RolloutStateName | null;
  to: RolloutStateName;
  step: number;
  /** percent per version name */
  weights: Record<string, number>;
  reason: string;
  evaluation?: Evaluation;
}

/** An admin action that does not apply in the current state (pause a promoted rollout…). */
export class RolloutStateError extends Error {
  override readonly name = 'RolloutStateError';
}

/** a whole interval of failures needs at least this many canary requests (or minRequests, if lower) */
export const DOWN_MIN = 3;
/** canary requests a window needs before its P95 is judged (see the comment at the top) */
export const P95_MIN_REQUESTS = 100;
/** samples kept per step (a step waiting for minRequests on thin traffic would otherwise grow without bound) */
export const MAX_SAMPLES = 600;
export const MAX_HISTORY = 200;

export class RolloutMachine {
  readonly spec: PlanRollout;
  state: RolloutStateName = 'running';
  step = 0;
  /** per mille per version, what the region should hold */
  weights: number[];
  stepStartedAt = 0;
  lastEvaluation: Evaluation | null = null;
  readonly history: Decision[] = [];
  /** samples since the step started; [0] is the step's baseline */
  #samples: Sample[] = [];
  readonly #others: number[];

  constructor(spec: PlanRollout, sample: Sample, action: 'start' | 'restart' = 'start', reason = 'rollout configured') {
    this.spec = spec;
    this.#others = spec.versionNames.map((_, i) => i).filter((i) => i !== spec.version);
    this.weights = weightsFor(spec, spec.steps[0]);
    this.#enter(0, sample);
    if (spec.steps[0] >= 1000) this.#promoted(sample.at);
    this.#decide(sample.at, action, 'controller', null, reason);
  }

  /** One evaluation; a Decision when it changed the state or the step, else null (see lastEvaluation). */
  evaluate(sample: Sample, circuitOpen: boolean): Decision | null {
    if (this.state !== 'running' && this.state !== 'paused') return null;
    const s = this.spec;
    const samples = this.#samples;
    if (samples.length >= MAX_SAMPLES) samples.splice(1, 1);
    samples.push(sample);
    const last = samples.length - 1;
    const base = samples[0];
    const canary = [s.version];
    const stepCanary = windowOf(base, sample, canary);
    const stepStable = windowOf(base, sample, this.#others);
    const interval = last > 0 ? windowOf(samples[last - 1], sample, canary) : stepCanary;

    const reasons: string[] = [];
    if (circuitOpen && s.noOpenCircuit) reasons.push("the circuit breaker of the canary's upstream is open");
    if (allFailed(interval, Math.min(DOWN_MIN, s.minRequests))) reasons.push(`all ${interval.requests} canary requests of the last interval failed`);

    const canaryAt = (j: number) => delta32(sample.requests[s.version], samples[j].requests[s.version]);
    /** the newest samples holding `need` canary requests: [first sample index, its window] or null */
    const suffix = (need: number): number | null => {
      if (stepCanary.requests < need) return null;
      let j = last - 1;
      while (j > 0 && canaryAt(j) < need) j--;
      return j;
    };
    const judge = (j: number | null, criteria: Criteria, label: string): Evaluation['recent'] => {
      if (j === null) return null;
      const rc = windowOf(samples[j], sample, canary);
      const rs = windowOf(samples[j], sample, this.#others);
      for (const r of failures(criteria, rc, rs)) reasons.push(`${label} ${rc.requests} requests: ${r}`);
      // the whole step too, when it is longer than that window
      if (j > 0) for (const r of failures(criteria, stepCanary, stepStable)) reasons.push(`step: ${r}`);
      return { canary: measure(rc), stable: measure(rs), sinceMs: sample.at - samples[j].at };
    };
    const p95Min = Math.max(s.minRequests, P95_MIN_REQUESTS);
    const recent = judge(suffix(s.minRequests), { maxErrorRateIncrease: s.maxErrorRateIncrease, maxP95Increase: null, p95FloorMs: 0 }, 'last');
    const recentP95 = s.maxP95Increase === null ? null : judge(suffix(p95Min), { maxErrorRateIncrease: null, maxP95Increase: s.maxP95Increase, p95FloorMs: s.p95FloorMs }, 'last');
    const enough = stepCanary.requests >= (s.maxP95Increase === null ? s.minRequests : p95Min);

    const elapsedMs = sample.at - this.stepStartedAt;
    let verdict: Verdict;
    if (reasons.length) verdict = 'fail';
    else if (this.state === 'paused') verdict = 'paused';
    else if (!enough) verdict = 'waiting';
    else if (elapsedMs < s.soakMs) verdict = 'soaking';
    else verdict = 'pass';
    const evaluation: Evaluation = {
      at: new Date(sample.at).toISOString(),
      step: this.step,
      verdict,
      reasons,
      elapsedMs,
      stepWindow: { canary: measure(stepCanary), stable: measure(stepStable) },
      recent,
      recentP95,
      lastInterval: { requests: interval.requests, errors: interval.errors },
      circuitOpen,
    };
    this.lastEvaluation = evaluation;

    if (verdict === 'fail') {
      if (s.rollback) {
        const from = this.state;
        this.state = 'rolled_back';
        this.weights = weightsFor(s, 0);
        return this.#decide(sample.at, 'rollback', 'controller', from, reasons.join('; '), evaluation);
      }
      if (this.state === 'paused') return null; // already holding for an operator
      this.state = 'paused';
      return this.#decide(sample.at, 'hold', 'controller', 'running', `${reasons.join('; ')} (rollback: false, holding the weights)`, evaluation);
    }
    if (verdict !== 'pass') return null;
    const next = this.step + 1;
    if (next >= s.steps.length || s.steps[next] >= 1000) {
      this.#promoted(sample.at);
      return this.#decide(sample.at, 'promote', 'controller', 'running', `step ${this.step} passed; the last step ends in promotion`, evaluation);
    }
    const passed = this.step;
    this.weights = weightsFor(s, s.steps[next]);
    this.#enter(next, sample);
    return this.#decide(sample.at, 'step', 'controller', 'running', `step ${passed} passed`, evaluation);
  }

  /** Stops stepping forward; a failing evaluation still rolls back. */
  pause(at: number, by: string): Decision {
    if (this.state !== 'running') throw new RolloutStateError(`the rollout is ${this.state}; only a running one can be paused`);
    this.state = 'paused';
    return this.#decide(at, 'pause', by, 'running', 'paused through the admin API');
  }

  /** Runs on from where it paused; the step starts over (its soak and its counts). */
  resume(sample: Sample, by: string): Decision {
    if (this.state !== 'paused') throw new RolloutStateError(`the rollout is ${this.state}; only a paused one can be resumed`);
    this.state = 'running';
    this.#enter(this.step, sample);
    return this.#decide(sample.at, 'resume', by, 'paused', 'resumed through the admin API; the step starts over');
  }

  /** The version takes 100 % now. */
  promote(at: number, by: string): Decision {
    if (this.state === 'promoted') throw new RolloutStateError('the rollout is promoted already');
    const from = this.state;
    this.#promoted(at);
    return this.#decide(at, 'promote', by, from, 'promoted through the admin API');
  }

  /** The version goes to 0 % and the rollout stops. */
  abort(at: number, by: string): Decision {
    if (this.state === 'aborted') throw new RolloutStateError('the rollout is aborted already');
    const from = this.state;
    this.state = 'aborted';
    this.weights = weightsFor(this.spec, 0);
    return this.#decide(at, 'abort', by, from, 'aborted through the admin API');
  }

  /** Whether evaluations still run (running, or paused: a pause still rolls back a failing canary). */
  get active(): boolean {
    return this.state === 'running' || this.state === 'paused';
  }

  /** percent per version name */
  percentages(weights: readonly number[] = this.weights): Record<string, number> {
    const out: Record<string, number> = {};
    this.spec.versionNames.forEach((n, i) => (out[n] = weights[i] / 10));
    return out;
  }

  #promoted(at: number): void {
    this.state = 'promoted';
    this.weights = weightsFor(this.spec, 1000);
    this.stepStartedAt = at;
  }

  #enter(step: number, sample: Sample): void {
    this.step = step;
    this.stepStartedAt = sample.at;
    this.#samples = [sample];
  }

  #decide(at: number, action: RolloutAction, by: string, from: RolloutStateName | null, reason: string, evaluation?: Evaluation): Decision {
    const d: Decision = { at: new Date(at).toISOString(), action, by, from, to: this.state, step: this.step, weights: this.percentages(), reason, ...(evaluation ? { evaluation } : {}) };
    this.history.push(d);
    if (this.history.length > MAX_HISTORY) this.history.shift();
    return d;
  }
}

/**
 * Weights per mille with the rolled-out version at `canary`: the other versions share the rest in the proportions
 * of their configured weights (all to the first of them when those are all 0); rounding leftovers go to the first
 * of them (the stable version comes first in traffic.versions).
 */
export function weightsFor(spec: Pick<PlanRollout, 'version' | 'baseWeights'>, canary: number): number[] {
  const n = spec.baseWeights.length;
  const out = new Array<number>(n).fill(0);
  out[spec.version] = canary;
  const rest = 1000 - canary;
  let sum = 0;
  let first = -1;
  for (let i = 0; i < n; i++) {
    if (i === spec.version) continue;
    if (first < 0) first = i;
    sum += spec.baseWeights[i];
  }
  if (first < 0) return out;
  let given = 0;
  for (let i = 0; i < n; i++) {
    if (i === spec.version) continue;
    out[i] = sum === 0 ? 0 : Math.floor((rest * spec.baseWeights[i]) / sum);
    given += out[i];
  }
  out[first] += rest - given;
  return out;
}

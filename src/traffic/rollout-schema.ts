import { Type, type Static } from '@sinclair/typebox';
import type { ConfigIssue } from '../config/errors.js';

/**
 * `traffic.rollout` of a route: a canary rollout the control plane runs by itself (src/traffic/rollout-controller.ts).
 * The schema checks each value; rolloutIssues() checks what needs the versions and the other keys (steps that go
 * up, a version that exists, a soak at least one interval long, at least one bound in the criteria).
 */
export const RolloutCriteriaSchema = Type.Object(
  {
    maxErrorRateIncrease: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 100,
        description: "percentage points the canary's error rate (5xx and gateway failures) may exceed the stable versions' over the same window: 1 lets 0.5 % go to 1.5 %; left out: the error rate is not judged",
      }),
    ),
    maxP95Increase: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 10000,
        description: "percent the canary's P95 latency may exceed the stable versions' over the same window: 20 lets 100 ms go to 120 ms. Judged on windows of at least 100 canary requests (or minRequests if more), so with it a step waits for 100; left out: latency is not judged",
      }),
    ),
    p95FloorMs: Type.Number({
      minimum: 0,
      maximum: 60000,
      default: 5,
      description: 'P95s below this many ms count as this much in the comparison, so that jitter in sub-millisecond latencies (0.4 ms against 0.6 ms is +50 %) does not fail a canary; 0: compare as measured',
    }),
    noOpenCircuit: Type.Boolean({
      default: true,
      description: "an open circuit breaker on the canary's upstream fails the evaluation at once (only for an upstream with circuitBreaker)",
    }),
  },
  { additionalProperties: false, description: 'what an evaluation checks; at least one of maxErrorRateIncrease and maxP95Increase' },
);

export const RolloutSchema = Type.Object(
  {
    version: Type.String({ minLength: 1, description: 'the version being rolled out (a name in traffic.versions); the other versions share the rest of the traffic in their configured proportions' }),
    steps: Type.Array(Type.Number({ exclusiveMinimum: 0, maximum: 100, description: 'percent of the traffic for the version, one decimal at most' }), {
      minItems: 1,
      maxItems: 50,
      description: 'the canary weight of each step in percent, strictly increasing: [5, 25, 50, 100]. After the last step passes the version takes 100 % (promoted); a step of 100 is that promotion',
    }),
    soakSeconds: Type.Number({ exclusiveMinimum: 0, maximum: 86400, default: 60, description: 'time each step runs before it may pass, in seconds (at least intervalSeconds)' }),
    intervalSeconds: Type.Number({ exclusiveMinimum: 0, maximum: 3600, default: 5, description: 'time between two evaluations of the criteria, in seconds' }),
    minRequests: Type.Integer({
      minimum: 1,
      maximum: 100_000_000,
      description: 'canary requests a step needs before it may pass, and a window before its error rate is judged (required: without a minimum a step could pass on no traffic); P95 needs at least 100. A step that never gets them keeps waiting (GET /routes/:name/rollout says so)',
    }),
    criteria: RolloutCriteriaSchema,
    rollback: Type.Boolean({
      default: true,
      description: 'a failing evaluation sets the version to 0 % at once (rolled_back); false: the rollout pauses at its weights instead and waits for the admin API',
    }),
  },
  { additionalProperties: false, description: 'a canary rollout run by the gateway: steps of weights, a soak time per step, criteria evaluated every interval, automatic promotion and rollback (docs/traffic-management.md)' },
);

export type RolloutConfig = Static<typeof RolloutSchema>;

/** A compiled rollout: what the controller needs, in the units it works in. */
export interface PlanRollout {
  /** index of the rolled-out version in traffic.versions */
  readonly version: number;
  readonly versionNames: readonly string[];
  /** canary weight of each step, per mille */
  readonly steps: readonly number[];
  readonly soakMs: number;
  readonly intervalMs: number;
  readonly minRequests: number;
  /** percentage points, or null: not judged */
  readonly maxErrorRateIncrease: number | null;
  /** percent, or null: not judged */
  readonly maxP95Increase: number | null;
  /** ms: P95s below it are compared as it */
  readonly p95FloorMs: number;
  readonly noOpenCircuit: boolean;
  readonly rollback: boolean;
  /** the configured weights of the versions, per mille (the other versions share the rest in these proportions) */
  readonly baseWeights: readonly number[];
  /** identifies the rollout across reloads: same versions, same upstreams, same rollout block */
  readonly identity: string;
}

/**
 * Checks a rollout against its versions and compiles it, or returns null with the problems in `issues`.
 * `versions` are the route's traffic.versions (name, upstream, weight in percent); `where` is the path of the
 * rollout block (routes[0].traffic.rollout).
 */
export function compileRollout(
  r: RolloutConfig,
  versions: readonly { name: string; upstream: string; weight: number }[],
  where: string,
  issues: ConfigIssue[],
): PlanRollout | null {
  const before = issues.length;
  const names = versions.map((v) => v.name);
  const version = names.indexOf(r.version);
  if (version < 0) issues.push({ path: `${where}.version`, message: `"${r.version}" is not one of the route's versions`, hint: `versions: ${names.join(', ')}` });
  else if (versions.length < 2) issues.push({ path: `${where}.version`, message: 'a rollout needs another version to take the rest of the traffic and to compare with' });
  const steps: number[] = [];
  r.steps.forEach((s, i) => {
    const perMille = Math.round(s * 10);
    if (Math.abs(perMille - s * 10) > 1e-6) issues.push({ path: `${where}.steps[${i}]`, message: `${s}: a step has one decimal at most` });
    if (i > 0 && !(s > r.steps[i - 1])) issues.push({ path: `${where}.steps[${i}]`, message: `${s} is not above the step before it (${r.steps[i - 1]}): steps must increase` });
    steps.push(perMille);
  });
  if (r.soakSeconds < r.intervalSeconds) {
    issues.push({ path: `${where}.soakSeconds`, message: `${r.soakSeconds} s is shorter than intervalSeconds (${r.intervalSeconds} s): a step would pass before it was evaluated once`, hint: 'raise soakSeconds or lower intervalSeconds' });
  }
  const c = r.criteria;
  if (c.maxErrorRateIncrease === undefined && c.maxP95Increase === undefined) {
    issues.push({ path: `${where}.criteria`, message: 'has neither maxErrorRateIncrease nor maxP95Increase, so a step could never fail', hint: 'e.g. criteria: { maxErrorRateIncrease: 1, maxP95Increase: 20 }' });
  }
  if (issues.length > before) return null;
  return {
    version,
    versionNames: names,
    steps,
    soakMs: Math.round(r.soakSeconds * 1000),
    intervalMs: Math.round(r.intervalSeconds * 1000),
    minRequests: r.minRequests,
    maxErrorRateIncrease: c.maxErrorRateIncrease ?? null,
    maxP95Increase: c.maxP95Increase ?? null,
    p95FloorMs: c.p95FloorMs,
    noOpenCircuit: c.noOpenCircuit,
    rollback: r.rollback,
    baseWeights: versions.map((v) => Math.round(v.weight * 10)),
    // the configured weights are not part of it: the rollout overrides them while it runs
    identity: JSON.stringify([versions.map((v) => [v.name, v.upstream]), r]),
  };
}

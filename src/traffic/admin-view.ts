import { BUCKETS } from '../observe/metrics-layout.js';
import type { Plan, PlanRoute } from '../config/plan.js';
import { SCHEDULE_SLOTS, SplitState, p95Ms } from './split-state.js';

/**
 * What the admin API shows of a route's split (GET /routes/:name/traffic) and how it reads a manual weight change
 * (PUT /routes/:name/traffic). Read from the route's shared region, so it is what the workers split by now.
 */
export function trafficView(plan: Plan, route: PlanRoute) {
  const t = route.traffic!;
  const s = new SplitState(t.region, t.versions.length);
  const h = new Int32Array(BUCKETS);
  return {
    route: route.name,
    version: plan.version,
    generation: s.generation(),
    // the region's weights differ from the config's after a rollout step or a PUT
    overridden: t.versions.some((_, v) => s.weight(v) !== t.weights[v]),
    sticky: t.sticky,
    targetingRules: t.targeting?.length ?? 0,
    affinityCookie: t.affinity?.cookie ?? null,
    versions: t.versions.map((v, i) => {
      s.histogram(i, h);
      const requests = s.requests(i);
      const errors = s.errors(i);
      return {
        name: v.name,
        upstream: plan.upstreams[v.upstream]?.name,
        weight: s.weight(i) / 10,
        configuredWeight: t.weights[i] / 10,
        requests,
        errors,
        errorRate: requests === 0 ? 0 : errors / requests,
        p95Ms: Math.round(p95Ms(h) * 1000) / 1000,
      };
    }),
  };
}

/**
 * The per-mille weights of a PUT body `{"weights": {"stable": 75, "canary": 25}}`: every version named once, each
 * weight a percentage with at most one decimal, adding to 100. Throws an Error whose message is the client's answer.
 */
export function parseWeights(body: unknown, names: readonly string[]): number[] {
  const w = (body as { weights?: unknown } | null)?.weights;
  const example = `{"weights": {${names.map((n) => `"${n}": …`).join(', ')}}}`;
  if (w === null || typeof w !== 'object' || Array.isArray(w)) throw new Error(`the body must be ${example}`);
  const given = w as Record<string, unknown>;
  for (const k of Object.keys(given)) if (!names.includes(k)) throw new Error(`unknown version "${k}" (versions: ${names.join(', ')})`);
  const out = names.map((n) => {
    const x = given[n];
    if (x === undefined) throw new Error(`version "${n}" has no weight; name every version: ${example}`);
    if (typeof x !== 'number' || !Number.isFinite(x) || x < 0 || x > 100) throw new Error(`the weight of "${n}" must be a number from 0 to 100`);
    const tenths = Math.round(x * 10);
    if (Math.abs(x * 10 - tenths) > 1e-6) throw new Error(`the weight of "${n}" (${x}) has more than one decimal`);
    return tenths;
  });
  const sum = out.reduce((a, b) => a + b, 0);
  if (sum !== SCHEDULE_SLOTS) throw new Error(`the weights add to ${sum / 10}, not 100`);
  return out;
}

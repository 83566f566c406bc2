import type { ConfigIssue } from '../config/errors.js';
import { didYouMean } from '../config/errors.js';
import type { SharedRegistry } from '../shared/registry.js';
import type { TrafficConfig } from './schema.js';
import { SCHEDULE_SLOTS, SplitState, weightsHash } from './split-state.js';

/** A targeting rule as the worker tests it: lower-case header name, or the consumer's id/plan/roles/subscription. */
export type PlanTargetRule =
  | { readonly version: number; readonly kind: 'header'; readonly name: string; readonly value: string }
  | {
      readonly version: number;
      readonly kind: 'consumer';
      readonly ids: readonly string[] | null;
      readonly plans: readonly string[] | null;
      readonly roles: readonly string[] | null;
      readonly subscription: { readonly api: string; readonly environment: string | null } | null;
    };

/** A route's compiled `traffic`: plain data plus its shared region (src/traffic/split-state.ts). */
export interface PlanTraffic {
  /** the SharedRegistry key of `region` (SplitState.key): the control plane finds the region by it */
  readonly regionKey: string;
  readonly region: SharedArrayBuffer;
  /** in config order; `upstream` is an index into plan.upstreams */
  readonly versions: readonly { readonly name: string; readonly upstream: number }[];
  /** the configured weights in per-mille, and their hash (written into the region only when it changed) */
  readonly weights: readonly number[];
  readonly configHash: number;
  readonly sticky: { readonly by: 'consumer' | 'header' | 'cookie' | 'ip'; readonly name: string | null } | null;
  readonly targeting: readonly PlanTargetRule[] | null;
  readonly affinity: { readonly cookie: string; readonly ttlSeconds: number; readonly secret: string } | null;
}

/** Shortest affinity secret: an HMAC-SHA256 key under 16 bytes is guessable (RFC 2104 section 3 asks for >= L/2). */
const MIN_SECRET_BYTES = 16;

/**
 * Checks and compiles a route's `traffic`. Problems go into `issues` with their path under `where` (e.g.
 * routes[2].traffic); returns null when there were any. `hasAuth`: an auth policy reaches the route (consumer
 * stickiness and consumer targeting need a consumer).
 */
export function compileTraffic(
  t: TrafficConfig,
  routeName: string,
  where: string,
  upstreams: ReadonlyMap<string, number>,
  refusedUpstream: (name: string) => boolean,
  hasAuth: boolean,
  shared: SharedRegistry,
  issues: ConfigIssue[],
): PlanTraffic | null {
  const before = issues.length;
  const names = new Map<string, number>();
  const versions: { name: string; upstream: number }[] = [];
  const weights: number[] = [];
  let decimalsOk = true;
  t.versions.forEach((v, i) => {
    const at = `${where}.versions[${i}]`;
    if (names.has(v.name)) issues.push({ path: `${at}.name`, message: `duplicate version name "${v.name}" (also ${where}.versions[${names.get(v.name)}])` });
    names.set(v.name, i);
    const u = upstreams.get(v.upstream);
    if (u === undefined && !refusedUpstream(v.upstream)) {
      issues.push({ path: `${at}.upstream`, message: `unknown upstream "${v.upstream}"`, hint: didYouMean(v.upstream, upstreams.keys()) ?? `declared: ${[...upstreams.keys()].join(', ') || 'none'}` });
    }
    const tenths = Math.round(v.weight * 10);
    if (Math.abs(v.weight * 10 - tenths) > 1e-6) decimalsOk = false;
    if (Math.abs(v.weight * 10 - tenths) > 1e-6) issues.push({ path: `${at}.weight`, message: `${v.weight} has more than one decimal`, hint: `use e.g. ${tenths / 10}` });
    versions.push({ name: v.name, upstream: u ?? -1 });
    weights.push(tenths);
  });
  const sum = weights.reduce((a, b) => a + b, 0);
  // One decimal each, so 100 ± 0.05 means exactly 1000 tenths.
  if (sum !== SCHEDULE_SLOTS && decimalsOk) {
    issues.push({ path: `${where}.versions`, message: `the weights add to ${sum / 10}, not 100`, hint: t.versions.map((v) => `${v.name}: ${v.weight}`).join(', ') });
  }

  let sticky: PlanTraffic['sticky'] = null;
  if (t.sticky) {
    const s = t.sticky;
    if ((s.by === 'header' || s.by === 'cookie') && s.name === undefined) {
      issues.push({ path: `${where}.sticky.name`, message: `sticky by ${s.by} needs the ${s.by} name`, hint: `e.g. sticky: { by: ${s.by}, name: ${s.by === 'header' ? 'x-user-id' : 'sid'} }` });
    } else if ((s.by === 'consumer' || s.by === 'ip') && s.name !== undefined) {
      issues.push({ path: `${where}.sticky.name`, message: `sticky by ${s.by} takes no name` });
    } else if (s.by === 'consumer' && !hasAuth) {
      issues.push({ path: `${where}.sticky.by`, message: 'sticky by consumer needs an auth policy on the route (or a global one): without it no request has a consumer', hint: 'add policies.auth, or stick by header, cookie or ip' });
    }
    sticky = { by: s.by, name: s.name === undefined ? null : s.by === 'header' ? s.name.toLowerCase() : s.name };
  }

  let targeting: PlanTargetRule[] | null = null;
  if (t.targeting) {
    targeting = [];
    t.targeting.forEach((r, i) => {
      const at = `${where}.targeting[${i}]`;
      const v = names.get(r.version);
      if (v === undefined) {
        issues.push({ path: `${at}.version`, message: `unknown version "${r.version}"`, hint: didYouMean(r.version, names.keys()) ?? `versions: ${[...names.keys()].join(', ')}` });
        return;
      }
      if (r.header) targeting!.push({ version: v, kind: 'header', name: r.header.name.toLowerCase(), value: r.header.value });
      else if (r.consumer) {
        if (!hasAuth) issues.push({ path: `${at}.consumer`, message: 'targeting by consumer needs an auth policy on the route (or a global one)', hint: 'add policies.auth, or target by header' });
        const c = r.consumer;
        targeting!.push({
          version: v,
          kind: 'consumer',
          ids: c.ids ?? null,
          plans: c.plans ?? null,
          roles: c.roles ?? null,
          subscription: c.subscription ? { api: c.subscription.api, environment: c.subscription.environment ?? null } : null,
        });
      }
    });
  }

  let affinity: PlanTraffic['affinity'] = null;
  if (t.affinity) {
    const a = t.affinity;
    if (Buffer.byteLength(a.secret) < MIN_SECRET_BYTES) {
      issues.push({ path: `${where}.affinity.secret`, message: `the secret is shorter than ${MIN_SECRET_BYTES} bytes`, hint: 'e.g. secret: ${NG_AFFINITY_SECRET} with `openssl rand -base64 32`' });
    }
    if (t.sticky?.by === 'cookie' && t.sticky.name === a.cookie) {
      issues.push({ path: `${where}.affinity.cookie`, message: `"${a.cookie}" is also the sticky cookie; the gateway sets this one itself`, hint: 'give the affinity cookie a name of its own' });
    }
    affinity = { cookie: a.cookie, ttlSeconds: a.ttlSeconds, secret: a.secret };
  }

  if (issues.length > before) return null;
  const regionKey = SplitState.key(routeName, versions.map((v) => v.name));
  const fresh = !shared.has(regionKey);
  const region = shared.get(regionKey, SplitState.bytes(versions.length));
  const traffic: PlanTraffic = { regionKey, region, versions, weights, configHash: weightsHash(weights), sticky, targeting, affinity };
  // A new region starts with the configured weights at once (nothing reads it yet). A kept one is written only when
  // the plan is applied (applyConfiguredWeights), so a config refused later cannot change what is serving.
  if (fresh) applyConfiguredWeights(traffic);
  return traffic;
}

/**
 * Writes a route's configured weights into its region when they differ from the ones last configured (configHash):
 * a reload that does not touch the weights keeps those a rollout or the admin API set. Returns true when it wrote.
 */
export function applyConfiguredWeights(t: PlanTraffic): boolean {
  const state = new SplitState(t.region, t.versions.length);
  if (state.configHash() === t.configHash && state.generation() !== 0) return false;
  state.setWeights(t.weights);
  state.setConfigHash(t.configHash);
  return true;
}

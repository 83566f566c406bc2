import type { ConfigIssue } from '../config/errors.js';
import { didYouMean } from '../config/errors.js';
import type { PlanPredicate } from '../config/plan.js';
import type { PredicateConfig } from '../config/schema.js';
import type { SharedRegistry } from '../shared/registry.js';
import { MIRROR_BYTES } from './mirror-layout.js';
import type { MirrorConfig } from './mirror-schema.js';

/** A route's mirror as the workers get it: everything resolved, the marker header line made once. */
export interface PlanMirror {
  /** index of the shadow upstream in plan.upstreams */
  readonly upstream: number;
  /** share of matching requests copied, in tenths of a percent (0-1000) */
  readonly perMille: number;
  readonly headers: readonly PlanPredicate[] | null;
  readonly query: readonly PlanPredicate[] | null;
  readonly timeoutMs: number;
  readonly maxInFlight: number;
  readonly maxBodyBytes: number;
  /** "x-nanogate-mirror: 1\r\n" */
  readonly headerLine: string;
  /** the route's mirror cells (mirror-layout.ts), kept across reloads by route name */
  readonly cells: SharedArrayBuffer;
}

type PredicateCompiler = (preds: Record<string, PredicateConfig> | undefined, where: string, lowerNames: boolean, issues: ConfigIssue[]) => PlanPredicate[] | null;

/**
 * Compiles `routes[i].mirror`, or reports what is wrong with it under `where`. `predicates` is the route matcher's
 * own compiler (src/config/compile.ts), so a mirror's match means exactly what a route's does.
 */
export function compileMirror(
  m: MirrorConfig | undefined,
  where: string,
  routeName: string,
  upstreams: ReadonlyMap<string, number>,
  shared: SharedRegistry,
  predicates: PredicateCompiler,
  issues: ConfigIssue[],
): PlanMirror | null {
  if (m === undefined) return null;
  const before = issues.length;
  const upstream = upstreams.get(m.upstream);
  if (upstream === undefined) {
    const declared = [...upstreams.keys()];
    issues.push({ path: `${where}.upstream`, message: `unknown upstream "${m.upstream}"`, hint: didYouMean(m.upstream, declared) ?? `declared: ${declared.join(', ') || 'none'}` });
  }
  // Tenths of a percent are the schedule's unit: 12.5 is 125 copies in every 1000 matching requests.
  const perMille = Math.round(m.percent * 10);
  if (!(m.percent >= 0 && m.percent <= 100)) {
    issues.push({ path: `${where}.percent`, message: `${m.percent} is not a percent between 0 and 100` });
  } else if (Math.abs(perMille - m.percent * 10) > 1e-6) {
    issues.push({ path: `${where}.percent`, message: `${m.percent} has more than one decimal`, hint: `e.g. ${(perMille / 10).toFixed(1)}` });
  }
  const headers = predicates(m.match?.headers, `${where}.match.headers`, true, issues);
  const query = predicates(m.match?.query, `${where}.match.query`, false, issues);
  if (issues.length > before) return null;
  return {
    upstream: upstream!,
    perMille,
    headers,
    query,
    timeoutMs: m.timeoutMs,
    maxInFlight: m.maxInFlight,
    maxBodyBytes: m.body.maxBytes,
    headerLine: `${m.header.name.toLowerCase()}: ${m.header.value}\r\n`,
    cells: shared.get(`mirror:${routeName}`, MIRROR_BYTES),
  };
}

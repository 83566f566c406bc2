import type { Plan } from '../config/plan.js';
import type { PromWriter } from '../observe/prometheus.js';
import { MIRROR_OUTCOMES, readMirrorCells, type MirrorOutcome } from './mirror-layout.js';

/**
 * The mirrors' counters as Prometheus text, read from each mirrored route's shared cells at scrape time (no
 * per-request cost beyond the Atomics.add of the outcome). The families are always declared, with samples only for
 * routes of the plan in service that have a mirror.
 */
export function renderMirrorMetrics(plan: Plan, out: PromWriter): void {
  out.help(
    'nanogate_mirror_requests_total',
    'counter',
    'per mirrored route: copies by outcome (sent, dropped_full, skipped_body, skipped_match; then each sent copy ends as ok, error or timeout)',
  );
  out.help('nanogate_mirror_in_flight', 'gauge', 'per mirrored route: copies queued or on their way, across workers');
  for (const r of plan.routes) {
    if (r.mirror === null) continue;
    const { outcomes, inFlight } = readMirrorCells(r.mirror.cells);
    for (const outcome of MIRROR_OUTCOMES) out.sample('nanogate_mirror_requests_total', out.labels('route', r.name, 'outcome', outcome), outcomes[outcome]);
    out.sample('nanogate_mirror_in_flight', out.labels('route', r.name), inFlight);
  }
}

/** A mirrored route's mirror for the admin API (GET /routes): where the copies go, how, and what became of them. */
export function mirrorView(plan: Plan, routeIndex: number): { upstream: string; percent: number; timeoutMs: number; maxInFlight: number; maxBodyBytes: number; inFlight: number; outcomes: Record<MirrorOutcome, number> } | null {
  const m = plan.routes[routeIndex]?.mirror;
  if (!m) return null;
  const { outcomes, inFlight } = readMirrorCells(m.cells);
  return { upstream: plan.upstreams[m.upstream].name, percent: m.perMille / 10, timeoutMs: m.timeoutMs, maxInFlight: m.maxInFlight, maxBodyBytes: m.maxBodyBytes, inFlight, outcomes };
}

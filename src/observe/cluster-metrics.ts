import type { Plan } from '../config/plan.js';
import {
  CIRCUIT,
  CIRCUIT_NAMES,
  CIRCUIT_OPENINGS,
  RETRIES_REFUSED,
  RETRIES_TOTAL,
  SHED_TOTAL,
  ClusterState,
  EJECTED_UNTIL,
  EJECTIONS_TOTAL,
  HEALTH,
  HEALTH_DOWN,
  HEALTH_UNKNOWN,
  LATENCY_US,
  NONE,
  PANIC,
} from '../upstream/cluster-state.js';
import type { PromWriter } from './prometheus.js';
import type { DiscoveryStatus } from '../discovery/source.js';

export interface ClusterMetricFacts {
  /** discovery sources by upstream name */
  readonly discovery: Readonly<Record<string, DiscoveryStatus>>;
  /** health-check changes by upstream and direction ("healthy", "unhealthy", "restored") */
  readonly healthChanges: ReadonlyMap<string, number>;
  readonly panics: ReadonlyMap<string, number>;
  readonly checksTotal: number;
  readonly checkFailuresTotal: number;
}

/**
 * Upstream health as Prometheus text, read from the upstreams' shared regions at scrape time (no per-request cost):
 * node health and ejection, in-flight across workers, latency EWMA, ejections, panic mode, health-check totals.
 */
export function renderClusterMetrics(plan: Plan, facts: ClusterMetricFacts, out: PromWriter): void {
  out.help('nanogate_upstream_node_healthy', 'gauge', 'per node: 1 when it may take traffic (not down by an active check, not ejected), else 0');
  out.help('nanogate_upstream_node_ejected', 'gauge', 'per node: 1 while ejected by passive outlier detection');
  out.help('nanogate_upstream_node_active_requests', 'gauge', 'per node: requests in flight across all workers');
  out.help('nanogate_upstream_node_latency_ewma_seconds', 'gauge', 'per node of a peak-ewma upstream: peak-sensitive moving average of the time to the response head');
  out.help('nanogate_upstream_ejections_total', 'counter', 'per node: passive ejections');
  out.help('nanogate_upstream_panic', 'gauge', 'per upstream: 1 while no node is available and traffic goes to all of them');
  out.help('nanogate_upstream_active_requests', 'gauge', 'per upstream: requests holding a slot (in flight or between tries) across all workers');
  out.help('nanogate_upstream_retries_total', 'counter', 'per upstream: retries started');
  out.help('nanogate_upstream_retries_refused_total', 'counter', 'per upstream: retries the retry budget refused');
  out.help('nanogate_upstream_shed_total', 'counter', 'per upstream: requests refused at once by an open circuit or a full queue');
  out.help('nanogate_upstream_circuit_state', 'gauge', 'per upstream: 1 for the circuit breaker state it is in (closed, open, half-open)');
  out.help('nanogate_upstream_circuit_openings_total', 'counter', 'per upstream: times the circuit breaker opened');
  const now = Date.now() | 0;
  for (const u of plan.upstreams) {
    const s = new ClusterState(u.clusterState, u.nodes.length);
    for (let i = 0; i < u.nodes.length; i++) {
      const labels = out.labels('upstream', u.name, 'node', u.nodes[i].authority);
      const until = s.get(i, EJECTED_UNTIL);
      const ejected = until !== NONE && ((until - now) | 0) > 0;
      const health = s.get(i, HEALTH);
      out.sample('nanogate_upstream_node_healthy', labels, !ejected && (health === HEALTH_UNKNOWN || health !== HEALTH_DOWN) ? 1 : 0);
      out.sample('nanogate_upstream_node_ejected', labels, ejected ? 1 : 0);
      out.sample('nanogate_upstream_node_active_requests', labels, s.inFlight(i));
      if (u.balancing.algorithm === 'peak-ewma') out.sample('nanogate_upstream_node_latency_ewma_seconds', labels, s.get(i, LATENCY_US) / 1e6);
      out.sample('nanogate_upstream_ejections_total', labels, s.get(i, EJECTIONS_TOTAL));
    }
    const ul = out.labels('upstream', u.name);
    out.sample('nanogate_upstream_panic', ul, Atomics.load(s.cells, PANIC));
    out.sample('nanogate_upstream_active_requests', ul, s.active());
    out.sample('nanogate_upstream_retries_total', ul, Atomics.load(s.cells, RETRIES_TOTAL));
    out.sample('nanogate_upstream_retries_refused_total', ul, Atomics.load(s.cells, RETRIES_REFUSED));
    out.sample('nanogate_upstream_shed_total', ul, Atomics.load(s.cells, SHED_TOTAL));
    if (u.circuit !== null) {
      const state = Atomics.load(s.cells, CIRCUIT);
      for (let c = 0; c < CIRCUIT_NAMES.length; c++) out.sample('nanogate_upstream_circuit_state', out.labels('upstream', u.name, 'state', CIRCUIT_NAMES[c]), state === c ? 1 : 0);
      out.sample('nanogate_upstream_circuit_openings_total', ul, Atomics.load(s.cells, CIRCUIT_OPENINGS));
    }
  }
  out.help('nanogate_upstream_health_changes_total', 'counter', 'node health changes found by active checks, by upstream and new state');
  for (const [key, v] of facts.healthChanges) {
    const [upstream, to] = key.split('\u0000');
    out.sample('nanogate_upstream_health_changes_total', out.labels('upstream', upstream, 'state', to), v);
  }
  out.help('nanogate_upstream_panic_episodes_total', 'counter', 'times an upstream entered panic mode');
  for (const [upstream, v] of facts.panics) out.sample('nanogate_upstream_panic_episodes_total', out.labels('upstream', upstream), v);
  out.help('nanogate_discovery_nodes', 'gauge', 'per upstream with discovery: nodes in the set its source last handed on');
  out.help('nanogate_discovery_stale', 'gauge', 'per upstream with discovery: 1 while its source fails and the last good set serves');
  out.help('nanogate_discovery_errors_total', 'counter', 'per upstream with discovery: failed or refused answers of its source');
  out.help('nanogate_discovery_updates_total', 'counter', 'per upstream with discovery: node sets its source handed on');
  for (const [upstream, d] of Object.entries(facts.discovery)) {
    const l = out.labels('upstream', upstream);
    out.sample('nanogate_discovery_nodes', l, d.nodes);
    out.sample('nanogate_discovery_stale', l, d.stale ? 1 : 0);
    out.sample('nanogate_discovery_errors_total', l, d.errors);
    out.sample('nanogate_discovery_updates_total', l, d.updates);
  }
  out.help('nanogate_route_circuit_state', 'gauge', 'per route with its own circuit breaker: 1 for the state it is in');
  for (const r of plan.routes) {
    if (r.circuit === null || r.circuitState === null) continue;
    const state = Atomics.load(new Int32Array(r.circuitState), CIRCUIT);
    for (let c = 0; c < CIRCUIT_NAMES.length; c++) out.sample('nanogate_route_circuit_state', out.labels('route', r.name, 'state', CIRCUIT_NAMES[c]), state === c ? 1 : 0);
  }
  out.help('nanogate_health_checks_total', 'counter', 'active health checks run');
  out.sample('nanogate_health_checks_total', '', facts.checksTotal);
  out.help('nanogate_health_check_failures_total', 'counter', 'active health checks that failed');
  out.sample('nanogate_health_check_failures_total', '', facts.checkFailuresTotal);
}

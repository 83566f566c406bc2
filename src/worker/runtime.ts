import type { Plan, PlanPredicate, PlanRoute } from '../config/plan.js';
import { H1Pool } from '../upstream/h1-pool.js';
import { UndiciNodePool } from '../upstream/undici-pool.js';
import { H2NodePool } from '../upstream/h2-pool.js';
import { UpstreamCluster } from '../upstream/cluster.js';
import { CircuitBreaker } from '../upstream/circuit.js';
import { compileHashKey, type HashKeyRequest } from '../upstream/balancers/hash.js';
import { ClusterState } from '../upstream/cluster-state.js';
import { MatchScratch, walk, type RadixNode } from '../router/radix.js';
import { CidrSet } from '../shared/cidr.js';
import { POLICY_BY_NAME } from '../policies/index.js';
import type { PolicyHooks, RequestBodyTransform } from '../pipeline/policy.js';
import { flagCells, nodeBases, nodeCellBase, routeCell } from '../shared/admin-flags.js';
import { routeMetricsSlots } from '../observe/metrics-layout.js';
import type { NodeError } from '../control/messages.js';
import { NO_ROUTE } from './refusal.js';
import { TrafficSplit } from '../traffic/split.js';
import { consumerLookup } from '../identity/consumers.js';
import { aggregateRuntime, type AggregateRuntime } from '../aggregate/runner.js';
import { MirrorRoute, MirrorSet } from '../traffic/mirror.js';
import { flat } from '../shared/flat-string.js';
import { undefinedFilled, zeroFilled } from '../shared/fresh-arrays.js';

/** What a worker builds from a plan: pools, balancers and per-route precomputed strings. */
export interface NodePool {
  readonly inFlight: number;
  /** requests moved out of a pipelined batch by its head-of-line bounds and sent again (H1Pool only) */
  readonly resent?: number;
  dispatch(ex: import('../upstream/exchange.js').UpstreamExchange): void;
  cancel(ex: import('../upstream/exchange.js').UpstreamExchange): boolean;
  sweep(now: number): void;
  close(): void;
  /** stop taking requests for good: idle connections close now, busy ones when their request ends */
  retire(): void;
}

export class UpstreamRuntime {
  readonly name: string;
  readonly pools: NodePool[];
  /** which node, and how each attempt went (health, ejection, in-flight across workers) */
  readonly cluster: UpstreamCluster;
  /** "host: 10.0.0.1:8080\r\n" per node, for hostHeader: upstream */
  readonly hostLines: string[];
  /** host:port per node, for logs */
  readonly authorities: string[];
  /** per node, the last failure seen by this worker (null: none); kept across a reload for an unchanged node URL */
  readonly lastErrors: (NodeError | null)[];
  readonly urls: string[];
  /** consistent-hash: the request's key (src/upstream/balancers/hash.ts); null for the other balancers */
  readonly hashKey: ((req: HashKeyRequest) => number) | null;

  constructor(plan: Plan, index: number, previous: UpstreamRuntime | undefined, flags: Int32Array, firstNodeCell: number, workerIndex = 0) {
    const u = plan.upstreams[index];
    this.name = u.name;
    // Seeded per worker, so that workers' random choices and round-robin starts differ.
    this.cluster = new UpstreamCluster(u, new ClusterState(u.clusterState, u.nodes.length), flags, firstNodeCell, workerIndex);
    this.hashKey = u.balancing.algorithm === 'consistent-hash' ? compileHashKey(u.balancing.consistentHash.hashOn) : null;
    this.hostLines = u.nodes.map((n) => flat(`host: ${n.authority}\r\n`));
    this.authorities = u.nodes.map((n) => n.authority);
    this.lastErrors = u.nodes.map((n) => {
      const before = previous?.urls.indexOf(n.url) ?? -1;
      return before >= 0 ? previous!.lastErrors[before] : null;
    });
    this.urls = u.nodes.map((n) => n.url);
    this.pools = u.nodes.map((n, i) => {
      if (u.protocol !== 'http1') return new H2NodePool(n, u);
      if (n.tls) return new UndiciNodePool(n, u);
      // Keep warm connections (and what the pipelining probe learnt) across a reload when the node and pool
      // settings did not change.
      const old = previous?.pools[i];
      const pool = old instanceof H1Pool && old.node.url === n.url && old.sameSettings(u) ? old : new H1Pool(n, u);
      pool.bind(this.cluster.state, i, this.cluster.latencyAvgUs);
      return pool;
    });
  }

  /** Records a failed request on node `i` (one object per node, rewritten in place: failures may come in floods). */
  noteError(i: number, code: string, detail: string): void {
    const e = this.lastErrors[i];
    if (e === null) this.lastErrors[i] = { at: Date.now(), code, detail };
    else {
      e.at = Date.now();
      e.code = code;
      e.detail = detail;
    }
  }
}

export class RouteRuntime {
  readonly plan: PlanRoute;
  readonly upstream: UpstreamRuntime;
  readonly methods: readonly string[] | null;
  readonly headers: readonly PlanPredicate[] | null;
  readonly query: readonly PlanPredicate[] | null;
  /** the runtime's match scratch: params of the last match */
  readonly scratch: MatchScratch;
  // Phase hook lists; null when empty, so a route without policies pays one null check per phase.
  readonly access: PolicyHooks[] | null;
  readonly rewrite: PolicyHooks[] | null;
  readonly response: PolicyHooks[] | null;
  /** hooks that open response body filters (src/pipeline/body-chain.ts), in policy order; null: none, no chain */
  readonly responseBody: PolicyHooks[] | null;
  /** hooks that may answer in place of the upstream's answer or failure (PolicyHooks.answer); null: none */
  readonly answer: PolicyHooks[] | null;
  readonly log: PolicyHooks[] | null;
  /** request-body transforms in policy order (PolicyHooks.requestBody); null on routes without */
  readonly requestBody: RequestBodyTransform[] | null;
  /** the smallest maxBytes of those transforms: a held body beyond it gets 413 */
  readonly requestBodyLimit: number;
  /** the request goes through Exchange.runPipeline (access or rewrite hooks present) */
  readonly hasRequestPhases: boolean;
  /** any policy at all: the handler copies request facts and takes timestamps */
  readonly hasPolicies: boolean;
  /** the handler copies request facts: for policies, or for a balancer key (consistent-hash) */
  readonly needsFacts: boolean;
  readonly slotCount: number;
  /** a fresh array of the route's policy slots, all undefined */
  readonly newSlots: () => unknown[];
  /** a policy on this route answers CORS preflights: OPTIONS with Origin and Access-Control-Request-Method matches too */
  readonly preflight: boolean;
  /** cell of this route's "disabled" switch in Runtime.flags */
  readonly flagCell: number;
  // observability (src/observe/): this route's metrics row and its nodes' rows, kept by name across reloads
  readonly metricsSlot: number;
  readonly nodeMetricsSlots: readonly number[];
  /** policy names of the access then rewrite hooks, when a hook asked for per-hook timing; else null */
  readonly timedHooks: readonly string[] | null;
  /** a hook reads the request's timestamps (PolicyHooks.readsTiming / timesHooks): the handler takes them */
  readonly timed: boolean;
  /** a fresh array of zero marks, one per timed hook; null when the route times no hooks */
  readonly newHookMarks: (() => number[]) | null;
  /** the route's in-flight cell across workers, when it has a concurrency limit */
  readonly concurrency: Int32Array | null;
  /** the route's own circuit breaker, when it has one (its upstream's is in the cluster) */
  readonly circuit: CircuitBreaker | null;
  /** what answers when the upstream cannot (src/config/plan.ts PlanFallback), with the fallback upstream resolved */
  readonly fallback: { kind: 'static'; status: number; headers: readonly string[]; body: Buffer } | { kind: 'upstream'; upstream: UpstreamRuntime } | null;
  /** the weighted split between versions (src/traffic/split.ts); null: every request goes to `upstream` */
  readonly split: TrafficSplit | null;
  /** an aggregate route's calls with their upstreams (src/aggregate/), or null: the route proxies */
  readonly aggregate: AggregateRuntime | null;
  /** copies of a sampled share of the requests to a shadow upstream (src/traffic/mirror.ts); null: no mirror */
  readonly mirror: MirrorRoute | null;

  constructor(plan: PlanRoute, upstream: UpstreamRuntime, scratch: MatchScratch, workerIndex: number, services: Record<string, unknown>, upstreams: readonly UpstreamRuntime[] = [], mirrors: MirrorSet | null = null, tls = false) {
    this.scratch = scratch;
    this.mirror = plan.mirror && mirrors ? new MirrorRoute(plan.mirror, mirrors.for(plan.mirror.upstream)) : null;
    this.concurrency = plan.routeState ? new Int32Array(plan.routeState) : null;
    this.circuit = plan.circuit && plan.circuitState ? new CircuitBreaker(new Int32Array(plan.circuitState), plan.circuit) : null;
    const f = plan.fallback;
    // a static body is encoded once per plan, not per answer; it goes out as bytes through the response phase
    this.fallback = f === null ? null : f.kind === 'static' ? { kind: 'static', status: f.status, headers: f.headers, body: Buffer.from(f.body) } : { kind: 'upstream', upstream: upstreams[f.upstream] };
    this.aggregate = plan.aggregate === null ? null : aggregateRuntime(plan.aggregate, upstreams);
    const hooks: PolicyHooks[] = [];
    for (const [slot, p] of (plan.policies ?? []).entries()) {
      const mod = POLICY_BY_NAME.get(p.name)!;
      hooks.push(mod.create(p.data, { workerIndex, slot, routeName: plan.name, services }));
    }
    const pick = (k: keyof PolicyHooks) => {
      const list = hooks.filter((h) => typeof h[k] === 'function');
      return list.length ? list : null;
    };
    this.access = pick('access');
    this.rewrite = pick('rewrite');
    this.response = pick('response');
    this.responseBody = pick('responseBody');
    this.answer = pick('answer');
    this.log = pick('log');
    const bodies = hooks.flatMap((h) => (h.requestBody === undefined ? [] : [h.requestBody]));
    this.requestBody = bodies.length ? bodies : null;
    this.requestBodyLimit = bodies.length ? Math.min(...bodies.map((b) => b.maxBytes)) : 0;
    this.hasRequestPhases = this.access !== null || this.rewrite !== null;
    this.slotCount = hooks.length;
    this.newSlots = undefinedFilled(hooks.length);
    this.hasPolicies = hooks.length > 0;
    const t = plan.traffic;
    const versionUpstreams = t === null ? [] : t.versions.map((v) => upstreams[v.upstream]);
    this.split = t === null ? null : new TrafficSplit(t, plan.name, versionUpstreams, consumerLookup(services), tls);
    this.needsFacts =
      this.hasPolicies ||
      this.aggregate !== null ||
      upstream.hashKey !== null ||
      (this.fallback?.kind === 'upstream' && this.fallback.upstream.hashKey !== null) ||
      (this.split !== null && (this.split.needsFacts || versionUpstreams.some((u) => u.hashKey !== null)));
    this.preflight = (plan.policies ?? []).some((p) => POLICY_BY_NAME.get(p.name)!.answersPreflight?.(p.data) === true);
    this.plan = plan;
    this.upstream = upstream;
    this.methods = plan.methods;
    this.headers = plan.headers;
    this.query = plan.query;
    this.flagCell = routeCell(plan.id);
    const m = routeMetricsSlots(services, plan.id, plan.upstream);
    this.metricsSlot = m.slot;
    this.nodeMetricsSlots = m.nodes;
    const names = (plan.policies ?? []).map((p) => p.name);
    this.timedHooks = hooks.some((h) => h.timesHooks === true)
      ? [...names.filter((_, i) => typeof hooks[i].access === 'function'), ...names.filter((_, i) => typeof hooks[i].rewrite === 'function')]
      : null;
    this.timed = hooks.some((h) => h.readsTiming === true || h.timesHooks === true);
    this.newHookMarks = this.timedHooks === null ? null : zeroFilled(this.timedHooks.length);
  }
}

/** The request facts a route candidate is checked against; filled by the handler before matching. */
export interface MatchInput {
  method: string;
  /** lower-case names and values, flat */
  headerNames: string[];
  headerValues: string[];
  headerCount: number;
  query: string;
}

export class Runtime {
  readonly plan: Plan;
  readonly routes: RouteRuntime[];
  readonly upstreams: UpstreamRuntime[];
  readonly trusted: CidrSet;
  /** admin switches of this plan (src/shared/admin-flags.ts), written by the control plane with Atomics */
  readonly flags: Int32Array;
  /** pools of earlier plans that still finish requests; swept until empty */
  readonly retiring: NodePool[];
  /** the mirrors' own pools, one set per shadow upstream (empty when no route mirrors) */
  readonly mirrors: MirrorSet;
  readonly scratch = new MatchScratch();
  readonly #hosts: Map<string, RadixNode>;
  readonly #wildcardHosts: ReadonlyArray<readonly [string, RadixNode]>;
  readonly #any: RadixNode;
  readonly hostRouting: boolean;
  /** "via: 1.1 nanogate\r\n" and the value alone */
  readonly viaValue: string;
  /** log hooks for requests answered without a route (plan.unrouted: the global access log), or null */
  readonly unroutedLog: PolicyHooks[] | null;
  #input: MatchInput | null = null;
  readonly #accept = (id: number): boolean => this.#check(id);

  constructor(plan: Plan, previous: Runtime | null, workerIndex = 0) {
    this.plan = plan;
    this.flags = flagCells(plan);
    this.retiring = previous ? previous.retiring : [];
    const bases = nodeBases(plan);
    this.upstreams = plan.upstreams.map((_, i) => {
      const old = previous?.upstreams.find((u) => u.name === plan.upstreams[i].name);
      return new UpstreamRuntime(plan, i, old, this.flags, nodeCellBase(this.flags, bases[i]), workerIndex);
    });
    this.mirrors = new MirrorSet(plan.upstreams, previous?.mirrors ?? null);
    this.routes = plan.routes.map((r) => new RouteRuntime(r, this.upstreams[r.upstream], this.scratch, workerIndex, plan.services, this.upstreams, this.mirrors, plan.listen.tls !== null));
    this.trusted = new CidrSet(plan.proxy.trustedProxies);
    this.#hosts = plan.router.hosts;
    this.#wildcardHosts = plan.router.wildcardHosts;
    this.#any = plan.router.any;
    this.hostRouting = this.#hosts.size > 0 || this.#wildcardHosts.length > 0;
    this.viaValue = `1.1 ${plan.proxy.via}`;
    const unrouted = (plan.unrouted ?? [])
      .map((p, slot) => POLICY_BY_NAME.get(p.name)!.create(p.data, { workerIndex, slot, routeName: NO_ROUTE, services: plan.services }))
      .filter((h) => typeof h.log === 'function');
    this.unroutedLog = unrouted.length ? unrouted : null;
  }

  /**
   * Pools the new runtime no longer uses are retired once it takes over: requests already on them finish (a reload
   * drops nothing), their connections close as they end, and `next` keeps sweeping them for timeouts until empty.
   */
  retire(next: Runtime): void {
    const kept = new Set([...next.upstreams.flatMap((u) => u.pools), ...next.mirrors.pools()]);
    for (const p of [...this.upstreams.flatMap((u) => u.pools), ...this.mirrors.pools()]) {
      if (kept.has(p)) continue;
      p.retire();
      if (p.inFlight > 0) next.retiring.push(p);
    }
  }

  /** A prepared runtime that never took over: close what it opened that the current one does not share. */
  discard(current: Runtime): void {
    const kept = new Set([...current.upstreams.flatMap((u) => u.pools), ...current.mirrors.pools()]);
    for (const p of [...this.upstreams.flatMap((u) => u.pools), ...this.mirrors.pools()]) if (!kept.has(p)) p.close();
  }

  sweep(now: number): void {
    for (const u of this.upstreams) {
      for (const p of u.pools) p.sweep(now);
      u.cluster.sweep(now);
    }
    this.mirrors.sweep(now);
    const r = this.retiring;
    if (r.length > 0) {
      for (let i = r.length - 1; i >= 0; i--) {
        r[i].sweep(now);
        if (r[i].inFlight === 0) r.splice(i, 1);
      }
    }
  }

  /**
   * Finds the route for a request. `host` is lower case without port ('' when host routing is off).
   * Returns null when nothing matches; allowedMethods() then tells whether a route matched but for the method.
   */
  match(host: string, path: string, input: MatchInput): RouteRuntime | null {
    const scratch = this.scratch;
    if (this.#methodMiss.length !== 0) this.#methodMiss.length = 0; // clearing an empty array still costs ~35 ns
    scratch.wildStart = -1;
    this.#input = input;
    let id = -1;
    if (host !== '') {
      const tree = this.#hosts.get(host);
      if (tree !== undefined) id = walk(tree, path, 0, 0, scratch, this.#accept);
      if (id < 0) {
        for (let i = 0; i < this.#wildcardHosts.length; i++) {
          const [suffix, wtree] = this.#wildcardHosts[i];
          if (host.length > suffix.length && host.endsWith(suffix)) {
            id = walk(wtree, path, 0, 0, scratch, this.#accept);
            if (id >= 0) break;
          }
        }
      }
    }
    if (id < 0) id = walk(this.#any, path, 0, 0, scratch, this.#accept);
    this.#input = null;
    return id < 0 ? null : this.routes[id];
  }

  /** Allowed methods for a 405, from the candidates whose path matched. */
  allowedMethods(): string {
    const ids = this.#methodMiss;
    if (ids.length === 0) return '';
    const set = new Set<string>();
    for (const id of ids) for (const m of this.routes[id].methods ?? []) set.add(m);
    return [...set].sort().join(', ');
  }

  /** routes of the last match that failed on the method alone (for 405 and Allow) */
  readonly #methodMiss: number[] = [];

  #check(id: number): boolean {
    const route = this.routes[id];
    const input = this.#input!;
    const methods = route.methods;
    if (methods !== null) {
      let ok = false;
      for (let i = 0; i < methods.length; i++) if (methods[i] === input.method) { ok = true; break; }
      // HEAD is served by any route that serves GET (RFC 9110 9.3.2).
      if (!ok && input.method === 'HEAD') for (let i = 0; i < methods.length; i++) if (methods[i] === 'GET') { ok = true; break; }
      // A CORS preflight is answered by the route's cors policy, whatever methods the route serves.
      if (!ok && route.preflight && input.method === 'OPTIONS') ok = isPreflight(input);
      if (!ok) {
        // Only a route that matches in every other respect makes this a 405 rather than a 404.
        if ((route.headers === null || checkHeaders(route.headers, input)) && (route.query === null || checkQuery(route.query, input.query))) {
          this.#methodMiss.push(id);
        }
        return false;
      }
    }
    if (route.headers !== null && !checkHeaders(route.headers, input)) return false;
    if (route.query !== null && !checkQuery(route.query, input.query)) return false;
    return true;
  }
}

/** OPTIONS with both Origin and Access-Control-Request-Method (Fetch standard, CORS-preflight request). */
function isPreflight(input: MatchInput): boolean {
  let found = 0;
  for (let j = 0; j < input.headerCount; j++) {
    const name = input.headerNames[j];
    if (name === 'origin') found |= 1;
    else if (name === 'access-control-request-method') found |= 2;
  }
  return found === 3;
}

function testValue(p: PlanPredicate, value: string | undefined): boolean {
  switch (p.op) {
    case 'present':
      return (value !== undefined) === p.value;
    case 'exact':
      return value === p.value;
    case 'prefix':
      return value !== undefined && value.startsWith(p.value);
    case 'regex':
      return value !== undefined && p.value.test(value);
  }
}

export function checkHeaders(preds: readonly PlanPredicate[], input: MatchInput): boolean {
  for (let i = 0; i < preds.length; i++) {
    const p = preds[i];
    let value: string | undefined;
    for (let j = 0; j < input.headerCount; j++) if (input.headerNames[j] === p.name) { value = input.headerValues[j]; break; }
    if (!testValue(p, value)) return false;
  }
  return true;
}

export function checkQuery(preds: readonly PlanPredicate[], query: string): boolean {
  const params = new URLSearchParams(query);
  for (let i = 0; i < preds.length; i++) {
    const v = params.get(preds[i].name);
    if (!testValue(preds[i], v === null ? undefined : v)) return false;
  }
  return true;
}

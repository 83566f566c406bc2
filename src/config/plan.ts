import type { RadixNode } from '../router/radix.js';

/**
 * The compiled, immutable form of a config: everything a worker needs, resolved and precomputed. It is plain data
 * (structured-clone safe) so the control plane compiles once and every worker receives the same plan.
 */
export interface Plan {
  readonly version: number;
  readonly createdAt: string;
  readonly source: string;
  readonly listen: { host: string; port: number; reusePort: boolean; tls: import('../tls/compile.js').PlanListenerTls | null; http2: import('../node-listener/compile.js').PlanHttp2Listener | null };
  readonly limits: { maxUrlLength: number; maxHeaderBytes: number; maxHeaderCount: number; maxBodyBytes: number };
  readonly proxy: { trustedProxies: readonly string[]; via: string; drainTimeoutMs: number; requestIdHeader: string };
  readonly upstreams: readonly PlanUpstream[];
  readonly routes: readonly PlanRoute[];
  readonly router: PlanRouter;
  /**
   * global log-phase policies (the access log) for requests answered before a route is known: refused while the
   * request is read (400, 414, 431…) or matching no route; they are logged with route "-". Empty when none.
   */
  readonly unrouted: readonly PlanPolicy[];
  /** control-plane resources handed to workers by name (shared tables); policies reach them through PolicyEnv */
  readonly services: Record<string, unknown>;
  /** route-disabled and node-drained switches (src/shared/admin-flags.ts); set by the Gateway before posting */
  readonly adminFlags?: SharedArrayBuffer;
}

/** One policy on one route: its module name and the data its compile step produced. */
export interface PlanPolicy {
  readonly name: string;
  readonly data: unknown;
}

export interface PlanUpstream {
  readonly name: string;
  /** as configured (least-connections is the old name of least-request) */
  readonly balancer: string;
  /** the algorithm and its knobs (src/upstream/balancers/) */
  readonly balancing: import('../upstream/balancers/schema.js').BalancingConfig;
  /** the Maglev lookup table of the node set (consistent-hash only), shared by the workers */
  readonly maglev: SharedArrayBuffer | null;
  readonly connections: number;
  /** most requests one connection takes in one batch (1: no pipelining); `pipelining: auto` compiles to AUTO_PIPELINING_DEPTH */
  readonly pipelining: number;
  /** `pipelining: auto`: a node gets batches only after it passed the probe (src/upstream/h1-probe.ts) */
  readonly pipeliningProbe: boolean;
  /** head-of-line limits (ms, 0: none): wait behind others before being sent again; node latency above which no batches */
  readonly pipeliningMaxWaitMs: number;
  readonly pipeliningSlowNodeMs: number;
  /** path of the pipelining probe's HEAD requests: the health check's path, else / */
  readonly probePath: string;
  readonly keepAliveMs: number;
  readonly connectTimeoutMs: number;
  readonly readTimeoutMs: number;
  /** client TLS to the https:// nodes (src/tls/compile.ts); null: Node's defaults (system CAs, verify on) */
  readonly tls: import('../tls/compile.js').PlanUpstreamTls | null;
  /** the nodes' protocol (src/upstream/h2-pool.ts for h2 and h2c) */
  readonly protocol: 'http1' | 'h2' | 'h2c';
  /** streams at most per HTTP/2 session (protocol h2/h2c); the node's own SETTINGS may lower it */
  readonly maxConcurrentStreams: number;
  readonly nodes: readonly PlanNode[];
  /** where the node set comes from besides `nodes` (src/discovery/), validated with its defaults; null: static */
  readonly discovery: import('../discovery/schema.js').DiscoveryConfig | null;
  readonly outlier: PlanOutlier;
  readonly healthCheck: PlanHealthCheck | null;
  /** the upstream's shared health/ejection/in-flight region (src/upstream/cluster-state.ts) */
  readonly clusterState: SharedArrayBuffer;
  readonly circuit: PlanCircuit | null;
  readonly retryBudget: { readonly percent: number; readonly minConcurrency: number };
  /** in flight across all workers (0: no limit), and the per-worker wait queue beyond it */
  readonly maxConcurrent: number;
  readonly queue: { readonly size: number; readonly maxWaitMs: number };
}

export interface PlanCircuit {
  readonly errorPercent: number;
  readonly slowPercent: number;
  /** 0: no slow-call rule */
  readonly slowCallMs: number;
  readonly bucketMs: number;
  readonly minRequests: number;
  readonly openMs: number;
  readonly halfOpenRequests: number;
}

export interface PlanRetry {
  /** retries after the first try */
  readonly attempts: number;
  readonly onConnect: boolean;
  readonly onReset: boolean;
  readonly onTimeout: boolean;
  /** 5xx statuses that are retried */
  readonly statuses: readonly number[];
  readonly nonIdempotent: boolean;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** 0: the read timeout */
  readonly perTryTimeoutMs: number;
  readonly maxBodyBytes: number;
}

export type PlanFallback =
  | { readonly kind: 'static'; readonly status: number; readonly headers: readonly string[]; readonly body: string }
  | { readonly kind: 'upstream'; readonly upstream: number };

export interface PlanOutlier {
  readonly consecutiveGatewayFailures: number;
  readonly consecutive5xx: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionMs: number;
  readonly maxEjectionPercent: number;
  readonly jitterPercent: number;
  readonly trialRequests: number;
  readonly successRate?: { readonly intervalMs: number; readonly minRequests: number; readonly minNodes: number; readonly stdevFactor: number };
}

export interface PlanHealthCheck {
  readonly type: 'http' | 'tcp';
  readonly method: string;
  readonly path: string;
  readonly host: string | null;
  /** index = status: true when it counts as healthy */
  readonly expected: readonly boolean[];
  readonly bodyContains: string | null;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly healthyThreshold: number;
  readonly unhealthyThreshold: number;
  readonly jitterMs: number;
  readonly concurrency: number;
}

export interface PlanNode {
  readonly url: string;
  readonly tls: boolean;
  readonly host: string;
  readonly port: number;
  /** value for the Host header when the route says hostHeader: upstream */
  readonly authority: string;
  readonly weight: number;
}

export type PlanPredicate =
  | { readonly name: string; readonly op: 'exact' | 'prefix'; readonly value: string }
  | { readonly name: string; readonly op: 'regex'; readonly value: RegExp }
  | { readonly name: string; readonly op: 'present'; readonly value: boolean };

/** A piece of a rewritten path: literal text, a param by index, or the wildcard rest. */
export type RewritePart = string | { readonly param: number } | { readonly rest: true };

export interface PlanRoute {
  readonly id: number;
  readonly name: string;
  /** the upstream it forwards to (an aggregate route: its first call's) */
  readonly upstream: number;
  /** an aggregate route's calls (src/aggregate/), or null for a proxying route */
  readonly aggregate: import('../aggregate/compile.js').PlanAggregate | null;
  /** upper-case methods, or null for any */
  readonly methods: readonly string[] | null;
  readonly headers: readonly PlanPredicate[] | null;
  readonly query: readonly PlanPredicate[] | null;
  readonly paramNames: readonly string[];
  readonly kind: 'exact' | 'prefix' | 'wildcard';
  /** characters of the matched path to drop before forwarding (stripPrefix), or -1 */
  readonly stripLength: number;
  readonly rewrite: readonly RewritePart[] | null;
  /** "upstream", "preserve", or a literal host */
  readonly hostHeader: string;
  readonly connectTimeoutMs: number;
  readonly readTimeoutMs: number;
  readonly maxBodyBytes: number;
  /** deadline of the whole request in ms (0: none) */
  readonly requestTimeoutMs: number;
  readonly retry: PlanRetry;
  readonly requestBody: { readonly bufferBytes: number; readonly minBytesPerSecond: number; readonly graceMs: number };
  /** in flight on this route across all workers (0: no limit), counted in `routeState` */
  readonly maxConcurrent: number;
  readonly routeState: SharedArrayBuffer | null;
  readonly fallback: PlanFallback | null;
  /** the route's own circuit breaker (besides its upstream's), with its shared cells */
  readonly circuit: PlanCircuit | null;
  readonly circuitState: SharedArrayBuffer | null;
  readonly priority: number;
  /** the weighted split between versions (src/traffic/compile.ts), or null: every request goes to `upstream` */
  readonly traffic: import('../traffic/compile.js').PlanTraffic | null;
  /** policies in execution order (global ones merged in), or null */
  readonly policies: readonly PlanPolicy[] | null;
  /** copies of a sampled share of the requests to a shadow upstream (src/traffic/mirror.ts), or null */
  readonly mirror: import('../traffic/mirror-compile.js').PlanMirror | null;
  /** where it was declared, e.g. routes[3] */
  readonly where: string;
  /** WebSocket upgrades and their relay (src/websocket/), or null: an upgrade is forwarded as a plain GET */
  readonly websocket: import('../websocket/compile.js').PlanWebSocket | null;
}

export interface PlanRouter {
  /** exact host (lower case, no port) -> tree */
  readonly hosts: Map<string, RadixNode>;
  /** wildcard hosts as [".example.com", tree], longest suffix first */
  readonly wildcardHosts: ReadonlyArray<readonly [string, RadixNode]>;
  /** routes with no host condition */
  readonly any: RadixNode;
}

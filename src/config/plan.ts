import type { RadixNode } from '../router/radix.js';

/**
 * The compiled, immutable form of a config: everything a worker needs, resolved and precomputed. It is plain data
 * (structured-clone safe) so the control plane compiles once and every worker receives the same plan.
 */
export interface Plan {
  readonly version: number;
  readonly createdAt: string;
  readonly source: string;
  readonly listen: { host: string; port: number; reusePort: boolean; tls: { cert: string; key: string; passphrase?: string } | null };
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
  readonly balancer: 'round-robin' | 'least-connections';
  readonly connections: number;
  readonly pipelining: number;
  readonly keepAliveMs: number;
  readonly connectTimeoutMs: number;
  readonly readTimeoutMs: number;
  readonly nodes: readonly PlanNode[];
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
  readonly upstream: number;
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
  readonly priority: number;
  /** policies in execution order (global ones merged in), or null */
  readonly policies: readonly PlanPolicy[] | null;
  /** where it was declared, e.g. routes[3] */
  readonly where: string;
}

export interface PlanRouter {
  /** exact host (lower case, no port) -> tree */
  readonly hosts: Map<string, RadixNode>;
  /** wildcard hosts as [".example.com", tree], longest suffix first */
  readonly wildcardHosts: ReadonlyArray<readonly [string, RadixNode]>;
  /** routes with no host condition */
  readonly any: RadixNode;
}

import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';
import { isIP } from 'node:net';
import type { Config, PredicateConfig, RouteConfig } from './schema.js';
import { CIRCUIT_BUCKETS, ClusterState, regionBytes } from '../upstream/cluster-state.js';
import { compileAggregate, type PlanAggregate } from '../aggregate/compile.js';
import { balancingIssues } from '../upstream/balancers/schema.js';
import { discoveryIssues } from '../discovery/index.js';
import type { DiscoveryConfig } from '../discovery/schema.js';
import type { DiscoveredNode } from '../discovery/source.js';
import { buildMaglevTable, isPrime } from '../upstream/balancers/maglev.js';
import { statusTable, type CircuitBreakerConfig, type FallbackConfig, type HealthCheckConfig, type RetryConfig } from '../upstream/resilience-schema.js';
import type { Plan, PlanCircuit, PlanFallback, PlanHealthCheck, PlanNode, PlanRetry, PlanPredicate, PlanRoute, PlanUpstream, RewritePart } from './plan.js';
import { ConfigError, didYouMean, type ConfigIssue } from './errors.js';
import type { PartialConfig } from './load.js';
import { insertPattern, newNode, parsePattern, type PatternPart, type RadixNode } from '../router/radix.js';
import { parseCidr } from '../shared/cidr.js';
import { SharedRegistry } from '../shared/registry.js';
import { POLICIES } from '../policies/index.js';
import { PolicyConfigError, type CompileContext } from '../pipeline/policy.js';
import type { PlanPolicy } from './plan.js';
import { compileConsumers } from '../identity/compile.js';
import { CONSUMERS_SERVICE } from '../identity/consumers.js';
import { routeTemplate } from '../observe/semconv.js';
import { compileWebSocket } from '../websocket/compile.js';
import { compileMirror, type PlanMirror } from '../traffic/mirror-compile.js';
import { compileTraffic } from '../traffic/compile.js';
import { compileListenerTls, compileUpstreamTls } from '../tls/compile.js';
import { compileHttp2Listener } from '../node-listener/compile.js';

export interface CompileResult {
  plan: Plan;
  /** routes that can never match, and similar non-fatal findings */
  warnings: string[];
}

/**
 * Turns a validated config into a Plan, or throws one ConfigError listing every problem found. `start`, `validate`
 * and a live reload all call this same function. `partial` (from stageConfigText, when the file was refused) says that the
 * config is what is left of a file after the schema refused some of it: messages then name the routes' places in the
 * file, and a route naming a refused upstream is not also told that the upstream is unknown.
 */
/** Node sets found by discovery, by upstream name (the control plane's DiscoveryManager keeps them). */
export type DiscoveredNodes = ReadonlyMap<string, readonly DiscoveredNode[]>;

export function compileConfig(
  config: Config,
  file: string,
  version = 1,
  shared = new SharedRegistry(),
  partial: PartialConfig | null = null,
  discovered: DiscoveredNodes | null = null,
): CompileResult {
  const issues: ConfigIssue[] = [];
  const warnings: string[] = [];

  const upstreams = compileUpstreams(config, file, shared, discovered, issues, warnings);
  const upstreamIndex = new Map(upstreams.map((u, i) => [u.name, i]));
  const routes: PlanRoute[] = [];
  const parsed: { parts: PatternPart[][]; hostKeys: string[] }[] = [];
  const names = new Map<string, number>();

  config.routes.forEach((rc, i) => {
    const at = partial?.routeIndex[i] ?? i;
    const where = `routes[${at}]`;
    const before = issues.length;
    if (names.has(rc.name)) issues.push({ path: `${where}.name`, message: `duplicate route name "${rc.name}" (also routes[${names.get(rc.name)}])` });
    names.set(rc.name, at);
    // An aggregate route calls its parts' upstreams; its own (for timeouts and per-route upstream metrics) is the
    // first part's unless it names one.
    const upstreamName = rc.upstream ?? rc.aggregate?.calls[0].upstream;
    if (upstreamName === undefined) issues.push({ path: `${where}.upstream`, message: 'a route needs an upstream (or aggregate calls)' });
    else if (rc.aggregate !== undefined && rc.upstream !== undefined) issues.push({ path: `${where}.upstream`, message: 'an aggregate route calls the upstreams of its calls: leave upstream out' });
    const upstream = upstreamName === undefined ? undefined : upstreamIndex.get(upstreamName);
    if (upstreamName !== undefined && rc.aggregate === undefined && upstream === undefined && !partial?.upstreamRefused(upstreamName)) {
      const declared = [...upstreamIndex.keys(), ...(partial?.refusedUpstreams ?? [])];
      issues.push({ path: `${where}.upstream`, message: `unknown upstream "${upstreamName}"`, hint: didYouMean(upstreamName, declared) ?? `declared: ${declared.join(', ') || 'none'}` });
    }
    const route = compileRoute(rc, i, where, upstream ?? -1, config.limits.maxBodyBytes, upstreamName === undefined ? undefined : config.upstreams[upstreamName], issues);
    if (route) {
      const r = route.route as { policies: PlanPolicy[] | null; routeState: SharedArrayBuffer | null; fallback: PlanFallback | null; aggregate: PlanAggregate | null };
      if (rc.aggregate !== undefined) {
        r.aggregate = compileAggregate(rc.aggregate, `${where}.aggregate`, route.route.paramNames, upstreamIndex, (n) => partial?.upstreamRefused(n) ?? false, (config.proxy.requestIdHeader ?? 'x-request-id').toLowerCase(), issues);
        if (rc.rewrite !== undefined || rc.stripPrefix) issues.push({ path: `${where}.rewrite`, message: 'an aggregate route builds the paths of its calls: rewrite and stripPrefix do not apply' });
        if (rc.fallback !== undefined) issues.push({ path: `${where}.fallback`, message: 'an aggregate route answers with its parts: a fallback does not apply' });
        if (rc.mirror !== undefined) issues.push({ path: `${where}.mirror`, message: 'an aggregate route calls several upstreams: a mirror does not apply', hint: 'mirror the routes its calls go to' });
      }
      r.policies = compilePolicies(config, rc, where, shared, issues);
      // One shared cell per limited route: its in-flight count across workers, kept across reloads by name.
      if (rc.maxConcurrent > 0) r.routeState = shared.get(`route-inflight:${rc.name}`, Int32Array.BYTES_PER_ELEMENT);
      r.fallback = compileFallback(rc.fallback, `${where}.fallback`, upstreamIndex, issues);
      // A route's own circuit: its cells (the same layout as an upstream region's header) kept across reloads by name.
      const rcb = r as unknown as { circuit: PlanCircuit | null; circuitState: SharedArrayBuffer | null };
      rcb.circuit = compileCircuit(rc.circuitBreaker);
      rcb.circuitState = rcb.circuit ? shared.get(`route-circuit:${rc.name}`, regionBytes(0)) : null;
      (r as unknown as { websocket: PlanRoute['websocket'] }).websocket = compileWebSocket(rc.websocket, rc.name, rc.match.methods, where, config, shared, issues);
      if (rc.websocket !== undefined) {
        // A WebSocket connection goes to the route's upstream as one long exchange: no parts, splits or shadow copies.
        for (const k of ['aggregate', 'traffic', 'mirror'] as const) {
          if (rc[k] !== undefined) issues.push({ path: `${where}.websocket`, message: `a WebSocket route cannot also have ${k}`, hint: `move ${k} to a route of its own` });
        }
      }
      (r as unknown as { mirror: PlanMirror | null }).mirror = compileMirror(rc.mirror, `${where}.mirror`, rc.name, upstreamIndex, shared, compilePredicates, issues);
      if (rc.traffic && rc.aggregate !== undefined) {
        issues.push({ path: `${where}.traffic`, message: 'an aggregate route calls the upstreams of its parts: a traffic split does not apply', hint: 'split the upstream routes the parts call instead' });
      } else if (rc.traffic) {
        const hasAuth = rc.policies?.auth !== undefined || config.policies?.auth !== undefined;
        const refused = (name: string) => partial?.upstreamRefused(name) ?? false;
        (r as unknown as { traffic: PlanRoute['traffic'] }).traffic = compileTraffic(rc.traffic, rc.name, `${where}.traffic`, upstreamIndex, refused, hasAuth, shared, issues);
      }
    }
    if (route && issues.length === before) {
      routes.push(route.route);
      parsed.push({ parts: route.patterns, hostKeys: route.hostKeys });
    }
  });

  const tls = config.listen.tls ? compileListenerTls(config.listen.tls, file, issues, warnings) : null;
  const http2 = config.listen.http2 ? compileHttp2Listener(config.listen.http2, config.listen, tls, config.listen.tls !== undefined, file, issues) : null;
  for (const [i, cidr] of config.proxy.trustedProxies.entries()) {
    if (!parseCidr(cidr)) issues.push({ path: `proxy.trustedProxies[${i}]`, message: `"${cidr}" is not an IP address or CIDR block` });
  }
  if (!isLoopback(config.admin.host) && !config.admin.token) {
    issues.push({ path: 'admin.token', message: `the admin API listens on ${config.admin.host}, which is not loopback, so it needs a token`, hint: 'set admin.token, e.g. token: ${NANOGATE_ADMIN_TOKEN}' });
  }

  if (config.status && config.status.port !== 0) {
    const same = (host: string) => host === config.status!.host || isWildcard(host) || isWildcard(config.status!.host);
    if (config.status.port === config.admin.port && same(config.admin.host)) {
      issues.push({ path: 'status.port', message: `${config.status.port} is admin.port: the status listener needs a port of its own` });
    } else if (config.status.port === config.listen.port && same(config.listen.host)) {
      issues.push({ path: 'status.port', message: `${config.status.port} is listen.port: the status listener needs a port of its own` });
    }
  }

  const consumers = compileConsumers(config, issues);
  // The router is built from the routes that compiled, also when others did not: its checks (two routes that
  // match the same requests) are reported with the rest instead of after the other errors are fixed.
  const router = buildRouter(routes, parsed, issues, warnings);
  const unrouted = compileUnrouted(config, shared, issues);
  if (issues.length) throw new ConfigError(file, issues);

  const plan: Plan = {
    version,
    createdAt: new Date().toISOString(),
    source: file,
    listen: { host: config.listen.host, port: config.listen.port, reusePort: config.listen.reusePort, tls, http2 },
    limits: { ...config.limits },
    proxy: {
      trustedProxies: [...config.proxy.trustedProxies],
      via: config.proxy.via,
      drainTimeoutMs: config.proxy.drainTimeoutMs,
      requestIdHeader: (config.proxy.requestIdHeader ?? 'x-request-id').toLowerCase(),
    },
    upstreams,
    routes,
    router,
    unrouted,
    services: { [CONSUMERS_SERVICE]: consumers },
  };
  return { plan, warnings };
}

/** Global policies that also see requests answered without a route: only the access log (a log phase, no state). */
const UNROUTED = ['accessLog'];

/**
 * Batch size of `pipelining: auto` once a node passed its probe: about what arrives in one event-loop turn at 50
 * busy client connections, while a slow answer at the head of a batch holds back at most 31 others (for at most
 * pipeliningBounds.maxWaitMs).
 */
export const AUTO_PIPELINING_DEPTH = 32;

/**
 * The global access log compiled for requests without a route (route "-"). A problem in it is reported once under
 * policies.<name>, whether or not a route merged it in too.
 */
function compileUnrouted(config: Config, shared: SharedRegistry, issues: ConfigIssue[]): PlanPolicy[] {
  const global = (config.policies ?? {}) as Record<string, unknown>;
  const out: PlanPolicy[] = [];
  for (const mod of POLICIES) {
    if (!UNROUTED.includes(mod.name) || global[mod.name] === undefined) continue;
    const cc: CompileContext = { routeName: null, where: `policies.${mod.name}`, config, shared: (key, bytes) => shared.get(`${mod.name}:${key}`, bytes) };
    try {
      out.push({ name: mod.name, data: mod.compile ? mod.compile(global[mod.name], cc) : global[mod.name] });
    } catch (err) {
      const path = `policies.${mod.name}`;
      const issue: ConfigIssue = err instanceof PolicyConfigError
        ? { path: err.path ? `${path}.${err.path}` : path, message: err.message, hint: err.hint }
        : { path, message: `cannot be compiled: ${(err as Error).message}` };
      if (!issues.some((i) => i.path === issue.path && i.message === issue.message)) issues.push(issue);
    }
  }
  return out;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** an address that binds every interface, so it takes a port on each host address too */
function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

function compileUpstreams(config: Config, file: string, shared: SharedRegistry, discovered: DiscoveredNodes | null, issues: ConfigIssue[], warnings: string[]): PlanUpstream[] {
  const out: PlanUpstream[] = [];
  for (const [name, u] of Object.entries(config.upstreams)) {
    const nodes: PlanNode[] = [];
    let discovery: DiscoveryConfig | null = null;
    if (u.discovery) {
      const copy = structuredClone(u.discovery) as DiscoveryConfig;
      const found = discoveryIssues(copy, `upstreams.${name}.discovery`);
      issues.push(...found);
      // A watched file named relative to the config is found next to it, wherever the gateway was started.
      if (copy.type === 'file' && !isAbsolute(copy.path)) copy.path = resolvePath(dirname(file), copy.path);
      if (found.length === 0) discovery = copy;
    } else if (u.nodes.length === 0) {
      issues.push({ path: `upstreams.${name}.nodes`, message: 'an upstream needs at least one node, or a discovery source', hint: 'add nodes: [{ url: http://host:port }], or discovery: { type: dns, ... }' });
    }
    // Discovered nodes replace the static ones once the source has answered (it never hands on an empty set).
    const found = discovery !== null ? discovered?.get(name) : undefined;
    const entries = found && found.length > 0 ? found.map((n) => ({ url: `http://${n.host.includes(':') ? `[${n.host}]` : n.host}:${n.port}`, weight: n.weight })) : u.nodes;
    entries.forEach((n, j) => {
      const where = `upstreams.${name}.nodes[${j}].url`;
      let url: URL;
      try {
        url = new URL(n.url);
      } catch {
        issues.push({ path: where, message: `"${n.url}" is not a URL` });
        return;
      }
      if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash || url.username) {
        issues.push({ path: where, message: `"${n.url}" must be scheme://host:port only`, hint: 'use a route rewrite for paths' });
        return;
      }
      const tls = url.protocol === 'https:';
      const port = url.port ? Number(url.port) : tls ? 443 : 80;
      const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
      nodes.push({ url: `${url.protocol}//${url.host}`, tls, host, port, authority: url.host, weight: n.weight });
    });
    // h2 is negotiated by TLS ALPN, h2c is spoken in the clear from the first byte: each needs its scheme.
    if (u.protocol !== 'http1') {
      const wantTls = u.protocol === 'h2';
      nodes.forEach((n, j) => {
        if (n.tls !== wantTls) {
          issues.push({ path: `upstreams.${name}.nodes[${j}].url`, message: `protocol ${u.protocol} needs ${wantTls ? 'https' : 'http'}:// nodes, got "${n.url}"`, hint: wantTls ? 'use https://, or protocol: h2c for cleartext HTTP/2' : 'use http://, or protocol: h2 for HTTP/2 over TLS' });
        }
      });
      if (discovery !== null && wantTls) issues.push({ path: `upstreams.${name}.protocol`, message: 'discovered nodes are plain http://, so protocol h2 cannot reach them', hint: 'use protocol: h2c' });
    }
    if (nodes.length && nodes.every((n) => n.weight === 0)) {
      issues.push({ path: `upstreams.${name}.nodes`, message: 'every node has weight 0, so nothing can be served' });
    }
    out.push({
      name,
      balancer: u.balancer,
      balancing: { ...u.balancing, algorithm: u.balancer === 'least-connections' ? 'least-request' : u.balancer },
      maglev: u.balancer === 'consistent-hash' && isPrime(u.balancing.consistentHash.tableSize) ? maglevTable(nodes, u.balancing.consistentHash.tableSize) : null,
      connections: u.connections,
      pipelining: u.pipelining === 'auto' ? AUTO_PIPELINING_DEPTH : u.pipelining,
      pipeliningProbe: u.pipelining === 'auto',
      pipeliningMaxWaitMs: u.pipeliningBounds.maxWaitMs,
      pipeliningSlowNodeMs: u.pipeliningBounds.slowNodeMs,
      probePath: u.healthCheck?.type !== 'tcp' && u.healthCheck?.path ? u.healthCheck.path : '/',
      keepAliveMs: u.keepAliveMs,
      connectTimeoutMs: u.connectTimeoutMs,
      readTimeoutMs: u.readTimeoutMs,
      tls: compileUpstreamTls(u.tls, name, file, issues, warnings),
      protocol: u.protocol,
      maxConcurrentStreams: u.http2.maxConcurrentStreams,
      nodes,
      discovery,
      outlier: { ...u.outlierDetection },
      healthCheck: compileHealthCheck(u.healthCheck, `upstreams.${name}.healthCheck`, issues),
      // Keyed by the node set: a reload that keeps the nodes keeps their health, ejections and in-flight counts.
      clusterState: clusterRegion(shared, name, nodes),
      circuit: compileCircuit(u.circuitBreaker),
      retryBudget: { ...u.retryBudget },
      maxConcurrent: u.maxConcurrent,
      queue: { ...u.queue },
    });
    if (u.queue.size > 0 && u.maxConcurrent === 0) {
      issues.push({ path: `upstreams.${name}.queue.size`, message: 'a queue needs maxConcurrent (the limit it waits for)', hint: 'set upstreams.' + name + '.maxConcurrent' });
    }
    for (const i of balancingIssues({ ...u.balancing, algorithm: 'round-robin' }, `upstreams.${name}.balancing`)) issues.push(i);
    const o = u.outlierDetection;
    if (o.maxEjectionMs < o.baseEjectionMs) {
      issues.push({ path: `upstreams.${name}.outlierDetection.maxEjectionMs`, message: `must be at least baseEjectionMs (${o.baseEjectionMs})` });
    }
  }
  return out;
}

/**
 * The upstream's shared region, keyed by its node set: a reload that keeps the nodes keeps the memory. A new node set
 * (a config change, or discovery) gets a new region with the state of the nodes it keeps (health, ejection, latency)
 * carried over by URL, so an ejected node does not come back because another one joined.
 */
function clusterRegion(shared: SharedRegistry, name: string, nodes: readonly PlanNode[]): SharedArrayBuffer {
  const prefix = `cluster:${name}:`;
  const urls = nodes.map((n) => n.url);
  const key = prefix + urls.join(',');
  const fresh = !shared.has(key);
  const sab = shared.get(key, regionBytes(nodes.length));
  if (fresh) {
    const previous = shared.withPrefix(prefix).filter(([k]) => k !== key).at(-1);
    if (previous) {
      const oldUrls = previous[0].slice(prefix.length).split(',').filter(Boolean);
      new ClusterState(sab, nodes.length).carryFrom(new ClusterState(previous[1], oldUrls.length), oldUrls, urls);
    }
  }
  return sab;
}

/** The Maglev table of a node set, built once here and shared (not copied) with every worker. */
function maglevTable(nodes: readonly PlanNode[], size: number): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(size * Int32Array.BYTES_PER_ELEMENT);
  buildMaglevTable(nodes.map((n) => ({ id: n.url, weight: n.weight })), size, new Int32Array(sab));
  return sab;
}

function compileCircuit(c: CircuitBreakerConfig | undefined): PlanCircuit | null {
  if (!c) return null;
  return {
    errorPercent: c.errorPercent,
    slowPercent: c.slowPercent,
    slowCallMs: c.slowCallMs ?? 0,
    bucketMs: Math.ceil(c.windowMs / CIRCUIT_BUCKETS),
    minRequests: c.minRequests,
    openMs: c.openMs,
    halfOpenRequests: c.halfOpenRequests,
  };
}

function compileFallback(f: FallbackConfig | undefined, where: string, upstreams: Map<string, number>, issues: ConfigIssue[]): PlanFallback | null {
  if (!f) return null;
  if ('upstream' in f) {
    const i = upstreams.get(f.upstream);
    if (i === undefined) {
      issues.push({ path: `${where}.upstream`, message: `unknown upstream "${f.upstream}"`, hint: didYouMean(f.upstream, upstreams.keys()) ?? `declared: ${[...upstreams.keys()].join(', ') || 'none'}` });
      return null;
    }
    return { kind: 'upstream', upstream: i };
  }
  const headers: string[] = [];
  for (const [k, v] of Object.entries(f.headers ?? {})) headers.push(k.toLowerCase(), v);
  return { kind: 'static', status: f.status, headers, body: f.body ?? '' };
}

function compileRetry(r: RetryConfig, where: string, issues: ConfigIssue[]): PlanRetry {
  if (r.backoffMaxMs < r.backoffBaseMs) issues.push({ path: `${where}.backoffMaxMs`, message: `must be at least backoffBaseMs (${r.backoffBaseMs})` });
  return {
    attempts: r.attempts,
    onConnect: r.on.includes('connect-failure'),
    onReset: r.on.includes('reset'),
    onTimeout: r.on.includes('timeout'),
    statuses: r.on.filter((x): x is number => typeof x === 'number'),
    nonIdempotent: r.nonIdempotent,
    backoffBaseMs: r.backoffBaseMs,
    backoffMaxMs: r.backoffMaxMs,
    perTryTimeoutMs: r.perTryTimeoutMs ?? 0,
    maxBodyBytes: r.maxBodyBytes,
  };
}

function compileHealthCheck(h: HealthCheckConfig | undefined, where: string, issues: ConfigIssue[]): PlanHealthCheck | null {
  if (!h) return null;
  if (h.timeoutMs >= h.intervalMs) issues.push({ path: `${where}.timeoutMs`, message: `must be below intervalMs (${h.intervalMs}), or checks of one node would overlap` });
  if (h.type === 'tcp' && (h.bodyContains !== undefined || h.host !== undefined)) {
    issues.push({ path: where, message: 'bodyContains and host are for http checks', hint: 'set type: http, or remove them' });
  }
  return {
    type: h.type,
    method: h.method,
    path: h.path,
    host: h.host ?? null,
    expected: statusTable(h.expectedStatuses),
    bodyContains: h.bodyContains ?? null,
    intervalMs: h.intervalMs,
    timeoutMs: h.timeoutMs,
    healthyThreshold: h.healthyThreshold,
    unhealthyThreshold: h.unhealthyThreshold,
    jitterMs: h.jitterMs,
    concurrency: h.concurrency,
  };
}

export function compilePredicates(preds: Record<string, PredicateConfig> | undefined, where: string, lowerNames: boolean, issues: ConfigIssue[]): PlanPredicate[] | null {
  if (!preds) return null;
  const out: PlanPredicate[] = [];
  for (const [rawName, p] of Object.entries(preds)) {
    const name = lowerNames ? rawName.toLowerCase() : rawName;
    if (typeof p === 'string') out.push({ name, op: 'exact', value: p });
    else if (p.exact !== undefined) out.push({ name, op: 'exact', value: p.exact });
    else if (p.prefix !== undefined) out.push({ name, op: 'prefix', value: p.prefix });
    else if (p.present !== undefined) out.push({ name, op: 'present', value: p.present });
    else if (p.regex !== undefined) {
      try {
        out.push({ name, op: 'regex', value: new RegExp(p.regex) });
      } catch (err) {
        issues.push({ path: `${where}.${rawName}.regex`, message: `invalid regular expression: ${(err as Error).message}` });
      }
    }
  }
  return out.length ? out : null;
}

function compileRoute(
  rc: RouteConfig,
  id: number,
  where: string,
  upstream: number,
  defaultMaxBody: number,
  upstreamConfig: Config['upstreams'][string] | undefined,
  issues: ConfigIssue[],
): { route: PlanRoute; patterns: PatternPart[][]; hostKeys: string[] } | null {
  const m = rc.match;
  if ((m.path === undefined) === (m.prefix === undefined)) {
    issues.push({ path: `${where}.match`, message: 'needs exactly one of "path" or "prefix"' });
    return null;
  }
  const patterns: PatternPart[][] = [];
  let kind: PlanRoute['kind'];
  let paramNames: string[] = [];
  let stripLength = -1;
  if (m.path !== undefined) {
    const parts = parsePattern(m.path);
    if (typeof parts === 'string') {
      issues.push({ path: `${where}.match.path`, message: `"${m.path}": ${parts}` });
      return null;
    }
    paramNames = parts.flatMap((p) => (p.kind === 'param' ? [p.name] : []));
    if (new Set(paramNames).size !== paramNames.length) {
      issues.push({ path: `${where}.match.path`, message: `"${m.path}" uses a param name twice` });
      return null;
    }
    kind = parts.at(-1)?.kind === 'wild' ? 'wildcard' : 'exact';
    patterns.push(parts);
    if (rc.stripPrefix) {
      if (kind !== 'wildcard' || paramNames.length) {
        issues.push({ path: `${where}.stripPrefix`, message: 'only a prefix match or a wildcard path without params can strip its prefix', hint: 'use rewrite instead' });
      } else stripLength = m.path.length - 2; // "/static/*" drops "/static"
    }
  } else {
    const prefix = m.prefix!.length > 1 && m.prefix!.endsWith('/') ? m.prefix!.slice(0, -1) : m.prefix!;
    if (prefix.includes(':') || prefix.includes('*')) {
      issues.push({ path: `${where}.match.prefix`, message: `"${m.prefix}": a prefix is literal text; use path with :params or /* instead` });
      return null;
    }
    kind = 'prefix';
    // "/api" matches "/api" itself and everything under "/api/", never "/apix".
    const exact = parsePattern(prefix) as PatternPart[];
    const wild = parsePattern(prefix === '/' ? '/*' : `${prefix}/*`) as PatternPart[];
    patterns.push(exact, wild);
    if (rc.stripPrefix) stripLength = prefix === '/' ? 0 : prefix.length;
  }

  let rewrite: RewritePart[] | null = null;
  if (rc.rewrite !== undefined) {
    rewrite = [];
    for (const piece of rc.rewrite.split(/(:[A-Za-z_][A-Za-z0-9_]*|\*)/)) {
      if (!piece) continue;
      if (piece === '*') {
        if (kind === 'exact') issues.push({ path: `${where}.rewrite`, message: '"*" needs a wildcard or prefix match to take the rest of the path from' });
        rewrite.push({ rest: true });
      } else if (piece.startsWith(':')) {
        const idx = paramNames.indexOf(piece.slice(1));
        if (idx < 0) issues.push({ path: `${where}.rewrite`, message: `"${piece}" is not a param of the match`, hint: paramNames.length ? `params: ${paramNames.join(', ')}` : 'the match has no params' });
        rewrite.push({ param: idx });
      } else rewrite.push(piece);
    }
    if (rc.stripPrefix) issues.push({ path: `${where}.rewrite`, message: 'use either rewrite or stripPrefix, not both' });
  }

  const hostKeys: string[] = [];
  for (const [j, h] of (m.hosts ?? []).entries()) {
    const host = h.toLowerCase();
    if (host.startsWith('*.') ? !/^\*(\.[a-z0-9-]+)+$/.test(host) : !/^[a-z0-9.-]+$|^\[[0-9a-f:.]+\]$/.test(host)) {
      issues.push({ path: `${where}.match.hosts[${j}]`, message: `"${h}" is not a host name or *.domain pattern` });
    }
    hostKeys.push(host);
  }
  if (!hostKeys.length) hostKeys.push('');

  const hostHeader = rc.hostHeader;
  const headers = compilePredicates(m.headers, `${where}.match.headers`, true, issues);
  const query = compilePredicates(m.query, `${where}.match.query`, false, issues);
  const route: PlanRoute = {
    id,
    name: rc.name,
    upstream,
    aggregate: null,
    methods: m.methods ? [...new Set(m.methods)] : null,
    headers,
    query,
    paramNames,
    kind,
    stripLength,
    rewrite,
    hostHeader,
    connectTimeoutMs: rc.timeouts?.connectMs ?? upstreamConfig?.connectTimeoutMs ?? 2000,
    readTimeoutMs: rc.timeouts?.readMs ?? upstreamConfig?.readTimeoutMs ?? 30000,
    maxBodyBytes: rc.maxBodyBytes ?? defaultMaxBody,
    requestTimeoutMs: rc.timeouts?.requestMs ?? 0,
    retry: compileRetry(rc.retries, `${where}.retries`, issues),
    requestBody: { ...rc.requestBody },
    maxConcurrent: rc.maxConcurrent,
    routeState: null,
    fallback: null,
    circuit: null,
    circuitState: null,
    traffic: null,
    priority: rc.priority,
    policies: null,
    mirror: null,
    where,
    websocket: null,
  };
  return { route, patterns, hostKeys };
}

/** Global policies merged with the route's own (the route's entry wins), each compiled by its module. */
function compilePolicies(config: Config, rc: RouteConfig, where: string, shared: SharedRegistry, issues: ConfigIssue[]): PlanPolicy[] | null {
  const global = (config.policies ?? {}) as Record<string, unknown>;
  const own = (rc.policies ?? {}) as Record<string, unknown>;
  const out: PlanPolicy[] = [];
  for (const mod of [...POLICIES].sort((a, b) => b.priority - a.priority)) {
    const fromRoute = own[mod.name] !== undefined;
    const cfg = fromRoute ? own[mod.name] : global[mod.name];
    if (cfg === undefined) continue;
    const base = fromRoute ? `${where}.policies.${mod.name}` : `policies.${mod.name}`;
    const cc: CompileContext = { routeName: rc.name, routeMethods: rc.match.methods ?? null, routeTemplate: routeTemplate(rc.match), where: base, config, shared: (key, bytes) => shared.get(`${mod.name}:${key}`, bytes) };
    try {
      out.push({ name: mod.name, data: mod.compile ? mod.compile(cfg, cc) : cfg });
    } catch (err) {
      if (err instanceof PolicyConfigError) issues.push({ path: err.path ? `${base}.${err.path}` : base, message: err.message, hint: err.hint });
      else issues.push({ path: base, message: `cannot be compiled: ${(err as Error).message}` });
    }
  }
  return out.length ? out : null;
}

// ---------------------------------------------------------------------------------------------- router build

/** Order of candidates on one tree node: higher priority, more conditions, methods listed, path over prefix. */
export function rankCompare(a: PlanRoute, b: PlanRoute): number {
  return (
    b.priority - a.priority ||
    conditionCount(b) - conditionCount(a) ||
    Number(b.methods !== null) - Number(a.methods !== null) ||
    Number(b.kind !== 'prefix') - Number(a.kind !== 'prefix')
  );
}

function conditionCount(r: PlanRoute): number {
  return (r.headers?.length ?? 0) + (r.query?.length ?? 0);
}

/** The methods a route serves: a route that lists GET also serves HEAD (RFC 9110 9.3.2). */
function served(r: PlanRoute): readonly string[] | null {
  return r.methods !== null && r.methods.includes('GET') && !r.methods.includes('HEAD') ? [...r.methods, 'HEAD'] : r.methods;
}

function methodsOverlap(a: PlanRoute, b: PlanRoute): boolean {
  const am = served(a), bm = served(b);
  if (am === null || bm === null) return true;
  return am.some((m) => bm.includes(m));
}

function methodsCover(a: PlanRoute, b: PlanRoute): boolean {
  const am = served(a), bm = served(b);
  if (am === null) return true;
  if (bm === null) return false;
  return bm.every((m) => am.includes(m));
}

function samePredicate(a: PlanPredicate, b: PlanPredicate): boolean {
  return a.name === b.name && a.op === b.op && String(a.value) === String(b.value);
}

/** True when no request can satisfy both predicate lists (e.g. x-version: "1" against x-version: "2"). */
function predicatesDisjoint(a: readonly PlanPredicate[] | null, b: readonly PlanPredicate[] | null): boolean {
  if (!a || !b) return false;
  for (const p of a) {
    for (const q of b) {
      if (p.name !== q.name) continue;
      if (p.op === 'exact' && q.op === 'exact' && p.value !== q.value) return true;
      if (p.op === 'present' && q.op === 'present' && p.value !== q.value) return true;
      if (p.op === 'present' && p.value === false && q.op !== 'present') return true;
      if (q.op === 'present' && q.value === false && p.op !== 'present') return true;
    }
  }
  return false;
}

/** Every request that matches b also matches a (a's conditions are a subset of b's). */
function predicatesCover(a: readonly PlanPredicate[] | null, b: readonly PlanPredicate[] | null): boolean {
  if (!a) return true;
  if (!b) return false;
  return a.every((p) => b.some((q) => samePredicate(p, q)));
}

function buildRouter(routes: PlanRoute[], parsed: { parts: PatternPart[][]; hostKeys: string[] }[], issues: ConfigIssue[], warnings: string[]) {
  const hosts = new Map<string, RadixNode>();
  const wildcard = new Map<string, RadixNode>();
  const any = newNode('');
  const lists = new Set<number[]>();
  const listsOf = new Map<number, number[][]>();

  routes.forEach((route, i) => {
    const { parts, hostKeys } = parsed[i];
    for (const key of hostKeys) {
      let root: RadixNode;
      if (key === '') root = any;
      else if (key.startsWith('*.')) root = wildcard.get(key.slice(1)) ?? wildcard.set(key.slice(1), newNode('')).get(key.slice(1))!;
      else root = hosts.get(key) ?? hosts.set(key, newNode('')).get(key)!;
      for (const p of parts) {
        const { node, list } = insertPattern(root, p);
        const arr = (node[list] ??= []);
        arr.push(i);
        lists.add(arr);
        listsOf.set(i, [...(listsOf.get(i) ?? []), arr]);
      }
    }
  });

  const shadowedIn = new Map<number, number>();
  const shadower = new Map<number, number>();
  for (const list of lists) {
    list.sort((x, y) => rankCompare(routes[x], routes[y]));
    for (let j = 1; j < list.length; j++) {
      const b = routes[list[j]];
      for (let k = 0; k < j; k++) {
        const a = routes[list[k]];
        if (rankCompare(a, b) === 0 && methodsOverlap(a, b) && !predicatesDisjoint(a.headers, b.headers) && !predicatesDisjoint(a.query, b.query)) {
          issues.push({
            path: b.where,
            message: `route "${b.name}" matches the same requests as ${a.where} ("${a.name}") with no rule to choose between them`,
            hint: 'give one a higher priority, or a method, header or query condition that tells them apart',
          });
        } else if (methodsCover(a, b) && predicatesCover(a.headers, b.headers) && predicatesCover(a.query, b.query)) {
          shadowedIn.set(list[j], (shadowedIn.get(list[j]) ?? 0) + 1);
          shadower.set(list[j], list[k]);
          break;
        }
      }
    }
  }
  // Keyed by position in `routes` (as the tree lists are), which differs from PlanRoute.id once a route was dropped.
  for (const [pos, count] of shadowedIn) {
    if (count === listsOf.get(pos)?.length) {
      const b = routes[pos];
      const a = routes[shadower.get(pos)!];
      warnings.push(`${b.where}: route "${b.name}" can never match: ${a.where} ("${a.name}") takes every request it would`);
    }
  }
  // Translate route indices (position in `routes`) to ids: they are equal only when no route was dropped.
  const wildcardHosts = [...wildcard.entries()].sort((x, y) => y[0].length - x[0].length);
  return { hosts, wildcardHosts, any };
}

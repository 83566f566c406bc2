import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as h2connect } from 'node:http2';
import { tlsConnectOptions } from '../upstream/undici-pool.js';
import { connect, type Socket } from 'node:net';
import type pino from 'pino';
import type { Plan, PlanHealthCheck, PlanUpstream } from '../config/plan.js';
import { ClusterState, HEALTH, HEALTH_DOWN, HEALTH_UP, HEALTHY_SINCE, LAST_ACTIVE_CHECK, LAST_FAILURE, LAST_FAILURE_AT, clock32 } from '../upstream/cluster-state.js';

/** How many bytes of a check's body are searched for `bodyContains`. */
const BODY_LIMIT = 64 * 1024;

/** One node's checker: its streaks and its timer. A node never has two checks in flight. */
class NodeCheck {
  passes = 0;
  failures = 0;
  inFlight = false;
  timer: NodeJS.Timeout | null = null;
  lastResult: string | null = null;
  constructor(readonly index: number) {}
}

/** The checks of one upstream, for one node set and one healthCheck config. */
class UpstreamChecks {
  readonly nodes: NodeCheck[];
  running = 0;
  readonly queue: NodeCheck[] = [];
  stopped = false;

  constructor(
    readonly upstream: PlanUpstream,
    readonly check: PlanHealthCheck,
    readonly state: ClusterState,
    readonly owner: HealthChecker,
  ) {
    this.nodes = upstream.nodes.map((_, i) => new NodeCheck(i));
  }

  start(): void {
    // The first round goes out at once (spread by the jitter), so a node that is down at start is found quickly.
    for (const n of this.nodes) this.#schedule(n, Math.floor(Math.random() * (this.check.jitterMs + 1)));
  }

  stop(): void {
    this.stopped = true;
    for (const n of this.nodes) if (n.timer) clearTimeout(n.timer);
  }

  #schedule(n: NodeCheck, delay: number): void {
    if (this.stopped) return;
    n.timer = setTimeout(() => this.#due(n), delay);
    n.timer.unref();
  }

  #due(n: NodeCheck): void {
    n.timer = null;
    if (this.stopped || n.inFlight) return;
    if (this.running >= this.check.concurrency) {
      this.queue.push(n);
      return;
    }
    this.#run(n);
  }

  #run(n: NodeCheck): void {
    n.inFlight = true;
    this.running++;
    probe(this.upstream.nodes[n.index], this.check, this.upstream.tls, this.upstream.protocol).then((failure) => {
      n.inFlight = false;
      this.running--;
      if (!this.stopped) {
        this.#record(n, failure);
        const next = this.queue.shift();
        if (next) this.#run(next);
        this.#schedule(n, this.check.intervalMs + Math.floor(Math.random() * (this.check.jitterMs + 1)));
      }
    });
  }

  #record(n: NodeCheck, failure: string | null): void {
    const s = this.state;
    const i = n.index;
    n.lastResult = failure;
    this.owner.checksTotal++;
    if (failure === null) {
      n.failures = 0;
      n.passes++;
      const health = s.get(i, HEALTH);
      if (health !== HEALTH_UP && (health !== HEALTH_DOWN || n.passes >= this.check.healthyThreshold)) {
        s.set(i, HEALTH, HEALTH_UP);
        s.set(i, HEALTHY_SINCE, clock32());
        s.bump();
        if (health === HEALTH_DOWN) this.owner.changed(this.upstream, i, 'healthy', null);
      }
      // A passing check ends a passive ejection whose period is over (Envoy's successful_active_health_check_uneject_host).
      if (!s.ejected(i, clock32()) && s.expire(i, 0)) this.owner.changed(this.upstream, i, 'restored', null);
      return;
    }
    this.owner.failuresTotal++;
    n.passes = 0;
    n.failures++;
    if (s.get(i, HEALTH) !== HEALTH_DOWN && n.failures >= this.check.unhealthyThreshold) {
      s.set(i, HEALTH, HEALTH_DOWN);
      s.set(i, LAST_FAILURE, LAST_ACTIVE_CHECK);
      s.set(i, LAST_FAILURE_AT, clock32());
      s.bump();
      this.owner.changed(this.upstream, i, 'unhealthy', failure);
    }
  }
}

/**
 * Active health checks, on the control plane. Each configured upstream's nodes are probed every `intervalMs` (plus
 * jitter), at most `concurrency` at once per upstream, never two checks of one node at a time; the result goes into
 * the upstream's shared region (cluster-state.ts) that every worker reads on its next pick. Checks are plain
 * callbacks on the main thread's loop: a slow or hung node costs a socket and a timer, never a blocked admin API.
 */
export class HealthChecker {
  readonly #log: pino.Logger;
  #checks = new Map<string, UpstreamChecks>();
  /** totals for metrics */
  checksTotal = 0;
  failuresTotal = 0;
  readonly changes = new Map<string, number>();

  constructor(log: pino.Logger) {
    this.#log = log;
  }

  /** Follows a new plan: keeps the checks of upstreams whose node set and check config did not change. */
  update(plan: Plan): void {
    const next = new Map<string, UpstreamChecks>();
    for (const u of plan.upstreams) {
      if (u.healthCheck === null) continue;
      const old = this.#checks.get(u.name);
      if (old && old.state.cells.buffer === u.clusterState && JSON.stringify(old.check) === JSON.stringify(u.healthCheck)) {
        next.set(u.name, old);
        continue;
      }
      const checks = new UpstreamChecks(u, u.healthCheck, new ClusterState(u.clusterState, u.nodes.length), this);
      next.set(u.name, checks);
      checks.start();
    }
    for (const [name, c] of this.#checks) if (next.get(name) !== c) c.stop();
    this.#checks = next;
  }

  stop(): void {
    for (const c of this.#checks.values()) c.stop();
    this.#checks.clear();
  }

  /** Last check result per node ('ok', the failure, or null before the first), for the admin API. */
  lastResults(upstream: string): (string | null)[] | null {
    const c = this.#checks.get(upstream);
    return c ? c.nodes.map((n) => (n.lastResult === null && n.passes === 0 && n.failures === 0 ? null : (n.lastResult ?? 'ok'))) : null;
  }

  changed(u: PlanUpstream, node: number, to: 'healthy' | 'unhealthy' | 'restored', why: string | null): void {
    const key = `${u.name}\u0000${to}`;
    this.changes.set(key, (this.changes.get(key) ?? 0) + 1);
    const fields = { upstream: u.name, node: u.nodes[node].url, health: to, ...(why ? { reason: why } : {}) };
    if (to === 'unhealthy') this.#log.warn(fields, 'upstream node failed its health checks');
    else this.#log.info(fields, to === 'healthy' ? 'upstream node passed its health checks' : 'ejected upstream node passed a health check');
  }
}

/** One check of one node: null when it passed, else why it failed (for the log and the admin API). */
function probe(node: PlanUpstream['nodes'][number], check: PlanHealthCheck, tls: PlanUpstream['tls'], protocol: PlanUpstream['protocol']): Promise<string | null> {
  if (check.type === 'tcp') return probeTcp(node.host, node.port, check.timeoutMs);
  return protocol === 'http1' ? probeHttp(node, check, tls) : probeH2(node, check, tls);
}

/** The HTTP check over HTTP/2 (protocol h2 or h2c): a node that speaks only HTTP/1.1 fails it, as its requests would. */
function probeH2(node: PlanUpstream['nodes'][number], check: PlanHealthCheck, tls: PlanUpstream['tls']): Promise<string | null> {
  return new Promise((resolve) => {
    let settled = false;
    const session = h2connect(node.url, node.tls ? { servername: check.host ?? node.host, ...tlsConnectOptions(tls) } : {});
    const done = (why: string | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      resolve(why);
    };
    const timer = setTimeout(() => done(`no answer within ${check.timeoutMs} ms`), check.timeoutMs);
    session.on('error', (err: NodeJS.ErrnoException) => done(`request failed (${err.code ?? err.message})`));
    const req = session.request({ ':method': check.method, ':path': check.path, ':authority': check.host ?? node.authority, 'user-agent': 'nanogate-health-check' });
    req.on('error', (err: NodeJS.ErrnoException) => done(`request failed (${err.code ?? err.message})`));
    req.on('response', (headers) => {
      const status = Number(headers[':status']);
      if (!check.expected[status]) return done(`answered ${status}`);
      if (check.bodyContains === null) return done(null);
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => {
        body += chunk;
        if (body.includes(check.bodyContains!)) done(null);
        else if (body.length > BODY_LIMIT) done(`the body does not contain "${check.bodyContains}"`);
      });
      req.on('end', () => done(body.includes(check.bodyContains!) ? null : `the body does not contain "${check.bodyContains}"`));
    });
    req.end();
  });
}

function probeTcp(host: string, port: number, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    let socket: Socket | null = null;
    const done = (why: string | null) => {
      clearTimeout(timer);
      socket?.destroy();
      socket = null;
      resolve(why);
    };
    const timer = setTimeout(() => done(`connect timed out after ${timeoutMs} ms`), timeoutMs);
    socket = connect({ host, port });
    socket.once('connect', () => done(null));
    socket.once('error', (err: NodeJS.ErrnoException) => done(`connect failed (${err.code ?? err.message})`));
  });
}

function probeHttp(node: PlanUpstream['nodes'][number], check: PlanHealthCheck, tls: PlanUpstream['tls']): Promise<string | null> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (why: string | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(why);
    };
    const timer = setTimeout(() => done(`no answer within ${check.timeoutMs} ms`), check.timeoutMs);
    const options = {
      host: node.host,
      port: node.port,
      method: check.method,
      path: check.path,
      headers: { host: check.host ?? node.authority, 'user-agent': 'nanogate-health-check', connection: 'close' },
      agent: false as const,
      ...(node.tls ? { servername: check.host ?? node.host, ...tlsConnectOptions(tls) } : {}),
    };
    const req = (node.tls ? httpsRequest : httpRequest)(options, (res) => {
      const status = res.statusCode ?? 0;
      if (!check.expected[status]) {
        res.resume();
        return done(`answered ${status}`);
      }
      if (check.bodyContains === null) {
        res.resume();
        return done(null);
      }
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
        if (body.includes(check.bodyContains!)) done(null);
        else if (body.length > BODY_LIMIT) done(`the body does not contain "${check.bodyContains}"`);
      });
      res.on('end', () => done(body.includes(check.bodyContains!) ? null : `the body does not contain "${check.bodyContains}"`));
      res.on('error', () => done('the connection failed mid-body'));
    });
    req.on('error', (err: NodeJS.ErrnoException) => done(`request failed (${err.code ?? err.message})`));
    req.end();
  });
}

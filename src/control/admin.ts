import type { Plan, PlanRoute } from '../config/plan.js';
import { parseWeights, trafficView } from '../traffic/admin-view.js';
import {
  CIRCUIT,
  CIRCUIT_NAMES,
  CIRCUIT_OPENINGS,
  RETRIES_REFUSED,
  RETRIES_TOTAL,
  ClusterState,
  EJECTED_UNTIL,
  EJECTIONS_TOTAL,
  HEALTH,
  HEALTH_DOWN,
  HEALTH_UP,
  LAST_FAILURE,
  LAST_FAILURE_NAMES,
  PIPELINING,
  PIPE_STATE_NAMES,
  PIPE_WHY_NAMES,
  LATENCY_US,
  NONE,
  PANIC,
  TRIALS,
  after,
  clock32,
} from '../upstream/cluster-state.js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual, createHash } from 'node:crypto';
import { ApplyFailedError, UnknownTargetError, type Actor, type ApplyOptions, type ApplyResult, type DryRunResult, type Gateway } from './gateway.js';
import { readConfigSources, type ConfigSource } from '../config/sources.js';
import { ConfigError } from '../config/errors.js';
import { ConfigSchema } from '../config/schema.js';
import { redactConfig } from '../config/secrets.js';
import { tokenFingerprint } from './audit.js';
import { clusterView as etcdClusterView } from './etcd-cluster-view.js';
import { registryTable } from '../identity/registry.js';
import { SplitState } from '../traffic/split-state.js';
import * as probes from './probes.js';
import type { NodeError } from './messages.js';
import { closeServer, listenOn } from '../shared/http-server.js';
import { NoRolloutError, RolloutStateError } from '../traffic/rollout-controller.js';
import { mirrorView } from '../traffic/mirror-metrics.js';

/**
 * The admin API, on its own port and served by the control plane (never by a worker), so operations traffic cannot
 * slow requests. /health and /ready answer without a token (for probes); everything else needs the bearer token
 * when one is configured (compileConfig refuses a non-loopback admin host without one). Every endpoint is listed in
 * docs/admin-api.md; errors are problem+json bodies with the codes of ADMIN_ERRORS.
 */

/** Errors of the admin API itself (the data plane's codes are in src/errors/codes.ts). docs/errors.md lists both. */
export const ADMIN_ERRORS = {
  NG_ERR_ADMIN_UNAUTHORIZED: { status: 401, title: 'A valid bearer token is required' },
  NG_ERR_ADMIN_NOT_FOUND: { status: 404, title: 'No such admin endpoint' },
  NG_ERR_ADMIN_METHOD_NOT_ALLOWED: { status: 405, title: 'The admin endpoint does not accept this method' },
  NG_ERR_ADMIN_BAD_REQUEST: { status: 400, title: 'The request body or a path parameter is invalid' },
  NG_ERR_ADMIN_BODY_TOO_LARGE: { status: 413, title: 'The request body is too large' },
  NG_ERR_ADMIN_UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'The body must be YAML or JSON' },
  NG_ERR_ADMIN_CONFIG_INVALID: { status: 422, title: 'The config was refused; the previous one keeps serving' },
  NG_ERR_ADMIN_UNKNOWN_ROUTE: { status: 404, title: 'No route has this name' },
  NG_ERR_ADMIN_NO_TRAFFIC: { status: 404, title: 'The route has no traffic split' },
  NG_ERR_ADMIN_UNKNOWN_UPSTREAM: { status: 404, title: 'No upstream has this name' },
  NG_ERR_ADMIN_UNKNOWN_NODE: { status: 404, title: 'The upstream has no node with this index' },
  NG_ERR_ADMIN_UNKNOWN_VERSION: { status: 404, title: 'This config version is not kept' },
  NG_ERR_ADMIN_NO_ROLLOUT: { status: 404, title: 'The route has no rollout' },
  NG_ERR_ADMIN_ROLLOUT_STATE: { status: 409, title: 'The rollout is not in a state that allows this' },
  NG_ERR_ADMIN_APPLY_FAILED: { status: 500, title: 'A worker could not take the config; nothing was applied' },
  NG_ERR_ADMIN_INTERNAL: { status: 500, title: 'The admin request failed' },
  NG_ERR_ADMIN_NO_ETCD: { status: 404, title: 'The gateway was not started with an etcd config source' },
  NG_ERR_ADMIN_ETCD_UNAVAILABLE: { status: 503, title: 'etcd could not be reached; nothing was written' },
  NG_ERR_ADMIN_CONSUMERS_INVALID: { status: 422, title: 'The consumer registry was refused; nothing was written' },
} as const;
export type AdminErrorCode = keyof typeof ADMIN_ERRORS;

/** a file name under the etcd config prefix */
const ETCD_NAME = /^[A-Za-z0-9._-]{1,100}$/;
/** A config of 10,000 routes is about 2 MB of YAML. */
const MAX_BODY_BYTES = 32 * 1024 * 1024;
/** A form upload wraps the file in boundaries; anything else is read as YAML (JSON is YAML), whatever its label,
 * because curl --data-binary labels it application/x-www-form-urlencoded. */
const NOT_A_CONFIG = /^multipart\//i;
const SOURCE_NAME = /^[\x21-\x7e][\x20-\x7e]{0,199}$/;
/** Several config files in one body, merged like `--config a --config b` (what `nanogate apply` sends for more than one). */
const FILES_TYPE = /^application\/vnd\.nanogate\.config-files\+json\b/i;
const MAX_FILES = 1000;
const INDEX = /^(0|[1-9][0-9]{0,5})$/;

class BadRequest extends Error {
  constructor(
    readonly code: AdminErrorCode,
    message: string,
  ) {
    super(message);
  }
}

type Handler = (req: IncomingMessage, res: ServerResponse, params: string[], url: URL) => Promise<void> | void;

/** One endpoint: method and path pattern (":" segments are parameters). */
interface Endpoint {
  method: string;
  parts: string[];
  handler: Handler;
}

export class AdminServer {
  readonly #gateway: Gateway;
  readonly #server: Server;
  #tokenDigest: Buffer | null = null;
  readonly #endpoints: Endpoint[] = [];
  port = 0;

  constructor(gateway: Gateway) {
    this.#gateway = gateway;
    this.setToken(gateway.config.admin.token);
    this.#define();
    this.#server = createServer((req, res) => {
      this.#route(req, res).catch((err) => {
        if (err instanceof BadRequest) return problem(res, err.code, err.message);
        gateway.log.error({ err: (err as Error).message, url: req.url }, 'admin request failed');
        if (!res.headersSent) problem(res, 'NG_ERR_ADMIN_INTERNAL');
        else res.destroy();
      });
    });
  }

  /** Called on every apply: a config may rotate the token. */
  setToken(token: string | undefined): void {
    this.#tokenDigest = token ? createHash('sha256').update(token).digest() : null;
  }

  async listen(host: string, port: number): Promise<void> {
    this.port = await listenOn(this.#server, host, port);
  }

  close(): Promise<void> {
    return closeServer(this.#server);
  }

  /** The caller, or null when the token is missing or wrong. */
  #actor(req: IncomingMessage): Actor | null {
    const from = req.socket.remoteAddress;
    if (this.#tokenDigest === null) return { who: 'anonymous', from };
    const given = bearer(req);
    // Compare digests: equal length always, so timingSafeEqual never throws and leaks nothing about the length.
    if (!timingSafeEqual(createHash('sha256').update(given).digest(), this.#tokenDigest)) return null;
    return { who: tokenFingerprint(given), from };
  }

  #define(): void {
    const g = this.#gateway;
    const on = (method: string, path: string, handler: Handler) => this.#endpoints.push({ method, parts: path.split('/').slice(1), handler });

    on('GET', '/status', (_q, res) => json(res, 200, g.status()));

    // Prometheus or OpenMetrics scrape, the same as on the status listener (src/control/probes.ts)
    on('GET', '/metrics', (req, res) => probes.metrics(g, req, res));

    on('GET', '/config', (_q, res, _p, url) => {
      const v = url.searchParams.get('version');
      if (v === null) return json(res, 200, this.#configBody(g.plan.version));
      if (!INDEX.test(v)) throw new BadRequest('NG_ERR_ADMIN_BAD_REQUEST', '"version" must be a whole number');
      const body = this.#configBody(Number(v));
      if (!body) return problem(res, 'NG_ERR_ADMIN_UNKNOWN_VERSION', `version ${v} is not kept (kept: ${g.keptVersions().join(', ')})`);
      json(res, 200, body);
    });

    on('PUT', '/config', async (req, res, _p, url) => {
      const type = req.headers['content-type'];
      if (type !== undefined && NOT_A_CONFIG.test(type)) {
        throw new BadRequest('NG_ERR_ADMIN_UNSUPPORTED_MEDIA_TYPE', `content-type "${type}": send the file itself (curl --data-binary @FILE), not a form`);
      }
      const source = url.searchParams.get('source') ?? 'PUT /config';
      if (!SOURCE_NAME.test(source)) throw new BadRequest('NG_ERR_ADMIN_BAD_REQUEST', '"source" must be 1 to 200 printable characters');
      const dryRun = flag(url, 'dryRun');
      const options = applyOptions(url);
      const text = await readBody(req);
      const sources = type !== undefined && FILES_TYPE.test(type) ? parseFiles(text) : [{ file: source, text }];
      if (dryRun) return this.#checked(res, g.checkSources(sources, source, this.#actorOf(req), options));
      await this.#applied(res, g.applySources(sources, source, this.#actorOf(req), options));
    });

    // Shared config in etcd (src/control/etcd-source.ts): validated here against this node's own files, then
    // written in one transaction; every node (this one too) applies it from its watch.
    on('PUT', '/etcd/config', async (req, res) => {
      const etcd = g.etcd;
      if (!etcd) return problem(res, 'NG_ERR_ADMIN_NO_ETCD', 'start the gateway with --etcd URL to keep its config in etcd');
      const type = req.headers['content-type'];
      if (type !== undefined && NOT_A_CONFIG.test(type)) {
        throw new BadRequest('NG_ERR_ADMIN_UNSUPPORTED_MEDIA_TYPE', `content-type "${type}": send the file itself (curl --data-binary @FILE), not a form`);
      }
      const text = await readBody(req);
      const sent = type !== undefined && FILES_TYPE.test(type) ? parseFiles(text) : [{ file: 'config.yaml', text }];
      const files = sent.map((f) => ({ name: f.file.slice(f.file.lastIndexOf('/') + 1), text: f.text }));
      if (files.some((f) => !ETCD_NAME.test(f.name)) || new Set(files.map((f) => f.name)).size !== files.length) {
        throw new BadRequest('NG_ERR_ADMIN_BAD_REQUEST', 'each file name must be distinct, 1 to 100 of A-Z a-z 0-9 . _ -');
      }
      const candidate = [...readConfigSources(g.configPaths), ...files.map((f) => ({ file: `etcd:${etcd.configPrefix}${f.name}`, text: f.text }))];
      let warnings: string[];
      try {
        ({ warnings } = await g.checkSources(candidate, 'PUT /etcd/config', this.#actorOf(req)));
      } catch (err) {
        if (err instanceof ConfigError) {
          return problem(res, 'NG_ERR_ADMIN_CONFIG_INVALID', `${err.issues.length} problem(s); nothing was written to etcd`, undefined, { errors: err.message.split('\n') });
        }
        throw err;
      }
      let revision: number;
      try {
        revision = await etcd.write(files);
      } catch (err) {
        return problem(res, 'NG_ERR_ADMIN_ETCD_UNAVAILABLE', (err as Error).message);
      }
      const applied = await etcd.waitApplied(revision, 10_000);
      json(res, 200, { revision, applied, version: g.plan.version, warnings });
    });

    // The consumer registry in etcd (src/control/etcd-consumers.ts): one document, validated here the way every node
    // will validate it, then written as <prefix>consumers/<name>; other keys under consumers/ are deleted in the same
    // transaction (the document sent is the whole registry). Every node reading it applies it from its watch.
    on('PUT', '/etcd/consumers', async (req, res, _p, url) => {
      const etcd = g.etcd;
      if (!etcd) return problem(res, 'NG_ERR_ADMIN_NO_ETCD', 'start the gateway with --etcd URL to keep its consumers in etcd');
      const type = req.headers['content-type'];
      if (type !== undefined && NOT_A_CONFIG.test(type)) {
        throw new BadRequest('NG_ERR_ADMIN_UNSUPPORTED_MEDIA_TYPE', `content-type "${type}": send the document itself (curl --data-binary @FILE), not a form`);
      }
      const name = url.searchParams.get('name') ?? 'registry';
      if (!ETCD_NAME.test(name)) throw new BadRequest('NG_ERR_ADMIN_BAD_REQUEST', 'name must be 1 to 100 of A-Z a-z 0-9 . _ -');
      const key = `${etcd.consumersPrefix}${name}`;
      const text = await readBody(req);
      const actor = this.#actorOf(req);
      let consumers: number;
      try {
        consumers = registryTable(text, `etcd:${key}`).specs.length;
      } catch (err) {
        const message = (err as Error).message;
        g.audit?.write({ ...actor, action: 'etcd.consumers', target: key, result: 'refused', error: message });
        return problem(res, 'NG_ERR_ADMIN_CONSUMERS_INVALID', 'nothing was written to etcd', undefined, { errors: [message] });
      }
      let revision: number;
      try {
        revision = await etcd.write([{ name, text }], etcd.consumersPrefix);
      } catch (err) {
        g.audit?.write({ ...actor, action: 'etcd.consumers', target: key, result: 'failed', error: (err as Error).message });
        return problem(res, 'NG_ERR_ADMIN_ETCD_UNAVAILABLE', (err as Error).message);
      }
      g.audit?.write({ ...actor, action: 'etcd.consumers', target: key, result: 'ok' });
      const registry = etcd.consumers;
      const warnings = registry ? [] : ['this node does not read consumers from etcd (its config has no consumerRegistry: { etcd: true })'];
      let applied = false;
      for (const deadline = Date.now() + 10_000; registry && Date.now() < deadline; await new Promise((r) => setTimeout(r, 10))) {
        const r = registry.report();
        if (r.revision >= revision || (r.refusedRevision ?? 0) >= revision) {
          applied = r.revision >= revision;
          break;
        }
      }
      json(res, 200, { revision, consumers, applied, warnings });
    });

    on('GET', '/etcd/nodes', async (_q, res) => {
      const etcd = g.etcd;
      if (!etcd) return problem(res, 'NG_ERR_ADMIN_NO_ETCD', 'start the gateway with --etcd URL to keep its config in etcd');
      let nodes, store;
      try {
        [nodes, store] = await Promise.all([etcd.nodes(), etcd.storeRevisions()]);
      } catch (err) {
        return problem(res, 'NG_ERR_ADMIN_ETCD_UNAVAILABLE', (err as Error).message);
      }
      json(res, 200, { prefix: etcd.prefix, ...etcdClusterView(store, nodes) });
    });

    on('GET', '/config/history', (_q, res) => json(res, 200, { version: g.plan.version, kept: g.keptVersions(), history: g.history }));

    on('POST', '/config/rollback', async (req, res, _p, url) => {
      const options = applyOptions(url);
      const body = parseJson(await readBody(req));
      const version = (body as { version?: unknown } | null)?.version;
      if (!Number.isInteger(version) || (version as number) < 1) throw new BadRequest('NG_ERR_ADMIN_BAD_REQUEST', 'the body must be {"version": <a kept version number>}');
      await this.#applied(res, g.rollback(version as number, this.#actorOf(req), options));
    });

    on('POST', '/reload', async (req, res, _p, url) => this.#applied(res, g.reload(this.#actorOf(req), applyOptions(url))));

    on('GET', '/routes', (_q, res) => json(res, 200, { version: g.plan.version, routes: this.#routes() }));
    on('GET', '/routes/:name', (_q, res, [name]) => {
      const route = this.#routes().find((r) => r.name === name);
      if (!route) return problem(res, 'NG_ERR_ADMIN_UNKNOWN_ROUTE', `no route named "${name}"`);
      json(res, 200, route);
    });
    on('GET', '/routes/:name/traffic', (_q, res, [name]) => {
      const route = this.#trafficRoute(name);
      json(res, 200, trafficView(g.plan, route));
    });
    on('PUT', '/routes/:name/traffic', async (req, res, [name]) => {
      const route = this.#trafficRoute(name);
      let weights: number[];
      try {
        weights = parseWeights(parseJson(await readBody(req)), route.traffic!.versions.map((v) => v.name));
      } catch (err) {
        if (err instanceof BadRequest) throw err;
        throw new BadRequest('NG_ERR_ADMIN_BAD_REQUEST', (err as Error).message);
      }
      g.setTrafficWeights(name, weights, this.#actorOf(req));
      json(res, 200, trafficView(g.plan, route));
    });
    for (const [verb, disabled] of [['disable', true], ['enable', false]] as const) {
      on('POST', `/routes/:name/${verb}`, (req, res, [name]) => {
        g.setRouteDisabled(name, disabled, this.#actorOf(req));
        json(res, 200, { route: name, disabled, version: g.plan.version });
      });
    }

    // canary rollouts (src/traffic/rollout-controller.ts): state, last evaluation, history; and the four commands
    on('GET', '/routes/:name/rollout', (_q, res, [name]) => {
      if (!g.plan.routes.some((r) => r.name === name)) return problem(res, 'NG_ERR_ADMIN_UNKNOWN_ROUTE', `no route named "${name}"`);
      const view = g.rollouts.view(name);
      if (!view) return problem(res, 'NG_ERR_ADMIN_NO_ROLLOUT', `route "${name}" has no traffic.rollout`);
      json(res, 200, view);
    });
    for (const cmd of ['pause', 'resume', 'promote', 'abort'] as const) {
      on('POST', `/routes/:name/rollout/${cmd}`, (req, res, [name]) => {
        try {
          const decision = g.rolloutCommand(name, cmd, this.#actorOf(req));
          json(res, 200, { decision, rollout: g.rollouts.view(name) });
        } catch (err) {
          if (err instanceof NoRolloutError) return problem(res, 'NG_ERR_ADMIN_NO_ROLLOUT', err.message);
          if (err instanceof RolloutStateError) return problem(res, 'NG_ERR_ADMIN_ROLLOUT_STATE', err.message);
          throw err;
        }
      });
    }

    on('GET', '/upstreams', async (_q, res) => json(res, 200, await this.#upstreams()));
    on('GET', '/upstreams/:name', async (_q, res, [name]) => {
      const all = await this.#upstreams();
      const u = all.upstreams.find((x) => x.name === name);
      if (!u) return problem(res, 'NG_ERR_ADMIN_UNKNOWN_UPSTREAM', `no upstream named "${name}"`);
      json(res, 200, { ...u, workersMissing: all.workersMissing });
    });
    for (const [verb, drained] of [['drain', true], ['undrain', false]] as const) {
      on('POST', `/upstreams/:name/nodes/:index/${verb}`, (req, res, [name, index]) => {
        if (!INDEX.test(index)) throw new BadRequest('NG_ERR_ADMIN_BAD_REQUEST', `node index "${index}" is not a whole number`);
        g.setNodeDrained(name, Number(index), drained, this.#actorOf(req));
        const node = g.plan.upstreams.find((u) => u.name === name)!.nodes[Number(index)];
        json(res, 200, { upstream: name, node: { index: Number(index), url: node.url, drained }, version: g.plan.version });
      });
    }

    // Response cache purge in every worker of this node (docs/caching.md#purge): one of key, prefix or tag.
    on('POST', '/cache/purge', async (req, res) => {
      const body = parseJson(await readBody(req)) as Record<string, unknown> | null;
      const kinds = body !== null && typeof body === 'object' ? (['key', 'prefix', 'tag'] as const).filter((k) => body[k] !== undefined) : [];
      if (kinds.length !== 1) throw new BadRequest('NG_ERR_ADMIN_BAD_REQUEST', 'the body must name exactly one of "key", "prefix" or "tag", e.g. {"tag":"product-42"}');
      const kind = kinds[0];
      const value = body![kind];
      if (typeof value !== 'string' || value.length === 0 || value.length > 8192) throw new BadRequest('NG_ERR_ADMIN_BAD_REQUEST', `"${kind}" must be a non-empty string of at most 8192 characters`);
      if (kind === 'prefix' && !/^[A-Z]+ \S/.test(value)) throw new BadRequest('NG_ERR_ADMIN_BAD_REQUEST', 'a prefix starts like a key: "GET host/path", e.g. "GET api.example.com/products/"');
      const r = await g.purgeCacheEverywhere(kind, value, 'admin', 2000, this.#actorOf(req));
      json(res, 200, { kind, value, removed: r.removed, workers: r.workers, workersMissing: r.missing, ...(r.cluster !== null ? { l2: r.cluster } : {}) });
    });

    on('POST', '/_fault/crash-worker', (_q, res, _p, url) => {
      const ok = g.crashWorker(Number(url.searchParams.get('index') ?? 0));
      json(res, ok ? 202 : 404, { crashed: ok });
    });
  }

  /** The current plan's route of this name, which must have a traffic split. */
  #trafficRoute(name: string): PlanRoute {
    const route = this.#gateway.plan.routes.find((r) => r.name === name);
    if (!route) throw new BadRequest('NG_ERR_ADMIN_UNKNOWN_ROUTE', `no route named "${name}"`);
    if (route.traffic === null) throw new BadRequest('NG_ERR_ADMIN_NO_TRAFFIC', `route "${name}" has no traffic split (routes[].traffic)`);
    return route;
  }

  /** The actor of a request that passed #route's token check. */
  #actorOf(req: IncomingMessage): Actor {
    return this.#actor(req) ?? { who: 'anonymous', from: req.socket.remoteAddress };
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const g = this.#gateway;
    if (url.pathname === '/health') return probes.health(res);
    if (url.pathname === '/ready') return probes.ready(g, res);
    if (this.#actor(req) === null) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        g.audit?.write({ who: bearer(req) ? tokenFingerprint(bearer(req)) : 'no-token', from: req.socket.remoteAddress, action: `${req.method} ${url.pathname}`, result: 'unauthorized' });
      }
      return problem(res, 'NG_ERR_ADMIN_UNAUTHORIZED', undefined, { 'www-authenticate': 'Bearer realm="nanogate-admin"' });
    }
    const parts = url.pathname.split('/').slice(1);
    let params: string[] = [];
    const allowed: string[] = [];
    let found: Endpoint | null = null;
    for (const e of this.#endpoints) {
      const p = matchParts(e.parts, parts);
      if (p === null) continue;
      if (e.method !== req.method) {
        allowed.push(e.method);
        continue;
      }
      found = e;
      params = p;
      break;
    }
    if (found === null) {
      if (allowed.length) return problem(res, 'NG_ERR_ADMIN_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${url.pathname}`, { allow: allowed.join(', ') });
      return problem(res, 'NG_ERR_ADMIN_NOT_FOUND', `no admin endpoint ${url.pathname}`);
    }
    try {
      await found.handler(req, res, params, url);
    } catch (err) {
      if (err instanceof UnknownTargetError) {
        const code = ({ route: 'NG_ERR_ADMIN_UNKNOWN_ROUTE', upstream: 'NG_ERR_ADMIN_UNKNOWN_UPSTREAM', node: 'NG_ERR_ADMIN_UNKNOWN_NODE', version: 'NG_ERR_ADMIN_UNKNOWN_VERSION' } as const)[err.kind];
        return problem(res, code, err.message);
      }
      throw err;
    }
  }

  /** Answers for an apply of any kind (PUT /config, rollback, reload). */
  async #applied(res: ServerResponse, result: Promise<ApplyResult>): Promise<void> {
    const previous = this.#gateway.plan.version;
    try {
      const r = await result;
      json(res, 200, { version: r.version, previous, warnings: r.warnings, timings: r.timings });
    } catch (err) {
      if (err instanceof ConfigError) {
        // The same "file: path: reason" lines `nanogate validate` prints, one per problem.
        return problem(res, 'NG_ERR_ADMIN_CONFIG_INVALID', `${err.issues.length} problem(s); version ${this.#gateway.plan.version} keeps serving`, undefined, { errors: err.message.split('\n') });
      }
      if (err instanceof ApplyFailedError) return problem(res, 'NG_ERR_ADMIN_APPLY_FAILED', err.message);
      throw err;
    }
  }

  /** Answers for PUT /config?dryRun=1: what would change; refusals exactly as an apply gives them. */
  async #checked(res: ServerResponse, result: Promise<DryRunResult>): Promise<void> {
    try {
      const r = await result;
      json(res, 200, { dryRun: true, version: r.version, changed: r.changes.length > 0, changes: r.changes, warnings: r.warnings });
    } catch (err) {
      if (err instanceof ConfigError) {
        return problem(res, 'NG_ERR_ADMIN_CONFIG_INVALID', `${err.issues.length} problem(s); version ${this.#gateway.plan.version} keeps serving`, undefined, { errors: err.message.split('\n') });
      }
      throw err;
    }
  }

  #configBody(version: number) {
    const g = this.#gateway;
    const config = version === g.plan.version ? g.config : g.keptConfig(version);
    if (!config) return null;
    const h = g.history.find((x) => x.version === version);
    return { version, current: g.plan.version, source: h?.source, appliedAt: h?.at, config: redactConfig(config, ConfigSchema) };
  }

  #routes() {
    const g = this.#gateway;
    const byName = new Map(g.config.routes.map((r) => [r.name, r]));
    return g.plan.routes.map((r, i) => {
      const rc = byName.get(r.name);
      return {
        name: r.name,
        id: r.id,
        where: r.where,
        match: rc?.match,
        upstream: g.plan.upstreams[r.upstream]?.name,
        priority: r.priority,
        policies: (r.policies ?? []).map((p) => p.name),
        disabled: g.routeDisabled(r.name),
        mirror: mirrorView(g.plan, i),
        // the split's versions and the weights the workers use now (details: GET /routes/:name/traffic)
        traffic: r.traffic === null ? null : r.traffic.versions.map((v, i) => ({ name: v.name, weight: new SplitState(r.traffic!.region, r.traffic!.versions.length).weight(i) / 10 })),
      };
    });
  }

  async #upstreams() {
    const g = this.#gateway;
    const plan = g.plan;
    const { load, resent, errors, missing } = await g.upstreamLoad();
    return {
      version: plan.version,
      workersMissing: missing,
      upstreams: plan.upstreams.map((u) => {
        const checks = g.health.lastResults(u.name);
        const health = clusterView(u);
        return {
          name: u.name,
          balancer: u.balancer,
          healthCheck: u.healthCheck ? u.healthCheck.type : null,
          discovery: u.discovery ? (g.discovery.status()[u.name] ?? null) : null,
          panic: health.panic,
          circuit: health.circuit,
          nodes: u.nodes.map((n, i) => ({
            index: i,
            url: n.url,
            weight: n.weight,
            drained: g.nodeDrained(u.name, n.url),
            inFlight: load.get(u.name)?.[i] ?? 0,
            ...health.nodes[i],
            pipelining: { ...health.nodes[i].pipelining, resent: resent.get(u.name)?.[i] ?? 0 },
            lastCheck: checks ? checks[i] : null,
            lastError: nodeError(errors.get(u.name)?.[i]),
          })),
        };
      }),
    };
  }
}

/** A node's newest failure for GET /upstreams: when, the code clients got, and the cause they did not see. */
function nodeError(e: NodeError | null | undefined) {
  return e ? { at: new Date(e.at).toISOString(), code: e.code, detail: e.detail } : null;
}

function matchParts(pattern: string[], parts: string[]): string[] | null {
  if (pattern.length !== parts.length) return null;
  const params: string[] = [];
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i].startsWith(':')) {
      if (parts[i] === '') return null;
      try {
        params.push(decodeURIComponent(parts[i]));
      } catch {
        throw new BadRequest('NG_ERR_ADMIN_BAD_REQUEST', `"${parts[i]}" is not a valid percent-encoded path segment`);
      }
    } else if (pattern[i] !== parts[i]) return null;
  }
  return params;
}

/**
 * `?allowInsecureAdmin=1` (or `true`): the change may remove admin.token from the running admin API. Said in the
 * request, never in the config, so that a config copied from a test setup cannot open a production gateway.
 */
function applyOptions(url: URL): ApplyOptions {
  const v = url.searchParams.get('allowInsecureAdmin');
  if (v === null) return {};
  if (v !== '1' && v !== 'true' && v !== '0' && v !== 'false') throw new BadRequest('NG_ERR_ADMIN_BAD_REQUEST', '"allowInsecureAdmin" must be 1 or true (0 or false: the default)');
  return { allowInsecureAdmin: v === '1' || v === 'true' };
}

/** A yes/no query parameter: 1 or true, 0 or false; absent is no. */
function flag(url: URL, name: string): boolean {
  const v = url.searchParams.get(name);
  if (v === null) return false;
  if (v !== '1' && v !== 'true' && v !== '0' && v !== 'false') throw new BadRequest('NG_ERR_ADMIN_BAD_REQUEST', `"${name}" must be 1 or true (0 or false: the default)`);
  return v === '1' || v === 'true';
}

/** The body of FILES_TYPE: {"files": [{"name": "a.yaml", "text": "..."}, ...]}. */
function parseFiles(text: string): ConfigSource[] {
  const body = parseJson(text) as { files?: unknown } | null;
  const files = body?.files;
  const bad = () => new BadRequest('NG_ERR_ADMIN_BAD_REQUEST', `the body must be {"files": [{"name": "a.yaml", "text": "..."}, ...]} with 1 to ${MAX_FILES} files, each name 1 to 200 printable characters`);
  if (!Array.isArray(files) || files.length === 0 || files.length > MAX_FILES) throw bad();
  return files.map((f: { name?: unknown; text?: unknown }) => {
    if (typeof f?.name !== 'string' || !SOURCE_NAME.test(f.name) || typeof f.text !== 'string') throw bad();
    return { file: f.name, text: f.text };
  });
}

function bearer(req: IncomingMessage): string {
  const header = req.headers.authorization ?? '';
  // The scheme is case-insensitive (RFC 9110 11.1).
  return header.length > 7 && header.slice(0, 7).toLowerCase() === 'bearer ' ? header.slice(7).trim() : '';
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) {
      req.resume();
      return reject(new BadRequest('NG_ERR_ADMIN_BODY_TOO_LARGE', `the body exceeds ${MAX_BODY_BYTES} bytes`));
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        req.pause();
        reject(new BadRequest('NG_ERR_ADMIN_BODY_TOO_LARGE', `the body exceeds ${MAX_BODY_BYTES} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new BadRequest('NG_ERR_ADMIN_BAD_REQUEST', 'the body is not valid JSON');
  }
}

/** What an upstream's shared region says about its nodes, for GET /upstreams. */
function clusterView(u: Plan['upstreams'][number]) {
  const s = new ClusterState(u.clusterState, u.nodes.length);
  const now = clock32();
  return {
    panic: Atomics.load(s.cells, PANIC) === 1,
    circuit: u.circuit
      ? { state: CIRCUIT_NAMES[Atomics.load(s.cells, CIRCUIT)], openings: Atomics.load(s.cells, CIRCUIT_OPENINGS), retries: Atomics.load(s.cells, RETRIES_TOTAL), retriesRefused: Atomics.load(s.cells, RETRIES_REFUSED) }
      : null,
    nodes: u.nodes.map((n, i) => {
      const until = s.get(i, EJECTED_UNTIL);
      const health = s.get(i, HEALTH);
      return {
        health: health === HEALTH_UP ? 'healthy' : health === HEALTH_DOWN ? 'unhealthy' : 'unknown',
        ejected: until !== NONE && after(until, now),
        ejectedForMs: until !== NONE && after(until, now) ? (until - now) | 0 : 0,
        ejections: s.get(i, EJECTIONS_TOTAL),
        onTrial: s.get(i, TRIALS) !== 0,
        activeRequests: s.inFlight(i),
        latencyEwmaMs: u.balancing.algorithm === 'peak-ewma' ? s.get(i, LATENCY_US) / 1000 : null,
        lastFailure: LAST_FAILURE_NAMES[s.get(i, LAST_FAILURE)],
        pipelining: pipeliningView(u, n.tls, s.get(i, PIPELINING)),
      };
    }),
  };
}

/** Per node: on, off or probing, and why (the workers' pools write the cell of `pipelining: auto` nodes). */
function pipeliningView(u: Plan['upstreams'][number], tls: boolean, cell: number): { state: string; reason: string } {
  if (tls) return { state: 'off', reason: 'https node: pipelining is for plain-HTTP nodes' };
  if (u.pipelining === 1) return { state: 'off', reason: 'pipelining: 1 in the config' };
  if (!u.pipeliningProbe) return { state: 'on', reason: `pipelining: ${u.pipelining} in the config (no probe)` };
  return { state: PIPE_STATE_NAMES[cell & 15] ?? 'probing', reason: PIPE_WHY_NAMES[cell >> 4] ?? 'unknown' };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** RFC 9457 body for admin errors, like the data plane's (src/errors/problem.ts) but with admin codes. */
export function problem(res: ServerResponse, code: AdminErrorCode, detail?: string, headers?: Record<string, string>, extra?: Record<string, unknown>): void {
  const { status, title } = ADMIN_ERRORS[code];
  const text = JSON.stringify({ type: `urn:nanogate:problem:${code}`, title, status, code, ...(detail !== undefined ? { detail } : {}), ...extra });
  res.writeHead(status, { ...headers, 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

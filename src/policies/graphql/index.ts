import { readFileSync } from 'node:fs';
import { buildSchema, type GraphQLSchema, type DocumentNode, type OperationDefinitionNode } from 'graphql';
import { CONTINUE, PENDING, PRIORITY, RESPOND, PolicyConfigError, type HookResult, type PolicyContext, type PolicyModule, type PolicyHooks, type ResponseBodyFilter } from '../../pipeline/policy.js';
import { GraphqlSchema, type GraphqlConfig } from './schema.js';
import { DocumentCache } from './documents.js';
import { analyzeOperation, costWith, pickOperation, type CostModel, type OperationFacts } from './analyze.js';
import { HASH, PERSISTED_NOT_FOUND, PersistedStore, readAllowlist, sha256Hex } from './persisted.js';
import { checkRules, missing, requirements } from './field-auth.js';
import { Refused, fromBody, fromQueryString, isRefused, type GraphqlRequest } from './request.js';
import { OperationLog } from './log.js';
import { removeFields, type Removal } from './remove.js';
import { openRemovedFields } from './errors-filter.js';
import { OperationCounters, metricsBytes, type OperationMetricsData } from './metrics.js';
import { APQ_REGION_BYTES, RemoteApq, type ApqRedisData } from './persisted-redis.js';
import type { RedisConfig } from '../../shared/redis-config.js';
import { asciiJson } from '../access-log/line.js';

/**
 * GraphQL analysis before the upstream is called: the document is parsed (token-limited) and validated once per
 * distinct text, each operation's depth, aliases, root fields, cost, introspection and fields are computed once and
 * cached with it; a request then costs a cache lookup and a few comparisons. GET queries are read from the query
 * string in the access phase; POST bodies (application/json, application/graphql) through the request-body hook,
 * after the rewrite phase. The operation's cost is left in ctx.requestCost for rate limits with `cost: graphql`.
 * See docs/graphql.md.
 */

interface Data {
  readonly maxTokens: number;
  readonly maxBodyBytes: number;
  readonly limits: GraphqlConfig['limits'];
  readonly cost: { object: number; scalar: number; fields: [string, number][]; listArguments: string[]; defaultListSize: number };
  readonly introspection: { allowed: boolean; plans: string[] };
  readonly mode: 'off' | 'apq' | 'allowlist';
  readonly allowlist: Record<string, string> | null;
  readonly apqEntries: number;
  /** the SDL text (each worker builds its own GraphQLSchema from it) */
  readonly sdl: string | null;
  readonly rules: [string, string][];
  /** fieldAuth.mode: remove (else refuse) */
  readonly removeFields: boolean;
  readonly cacheEntries: number;
  readonly cacheBytes: number;
  readonly logFields: number;
  /** operation metrics (operationMetrics > 0), read by the main thread too (GraphqlMetrics) */
  readonly metrics: OperationMetricsData | null;
  /** persisted.store: redis */
  readonly apqRedis: ApqRedisData | null;
}

/** An operation's facts plus what the field rules ask of it, cached per document and operation name. */
interface Operation {
  readonly facts: OperationFacts;
  readonly node: OperationDefinitionNode;
  readonly needs: { coord: string; scope: string }[];
  /** the fields named in the access log (bounded) */
  readonly logged: string;
  /** fieldAuth.mode remove: the pruned operation per set of denied fields (null: nothing left to run); bounded */
  removals: Map<string, Removal | null> | null;
  /** slot in the operation metrics, resolved once here (-1 without metrics) */
  readonly metricSlot: number;
}

/** pruned variants kept per cached operation (one per distinct set of missing scopes seen) */
const MAX_REMOVALS = 16;

const JSON_HEADERS = ['content-type', 'application/json'];

function loadSchema(path: string): { sdl: string; schema: GraphQLSchema } {
  let sdl: string;
  try {
    sdl = readFileSync(path, 'utf8');
  } catch (e) {
    throw new PolicyConfigError('schema', `cannot read the schema ${path}: ${(e as Error).message}`);
  }
  try {
    return { sdl, schema: buildSchema(sdl) };
  } catch (e) {
    throw new PolicyConfigError('schema', `${path} is not a valid GraphQL SDL: ${(e as Error).message}`);
  }
}

class GraphqlHook {
  readonly #slot: number;
  readonly #data: Data;
  readonly #docs: DocumentCache;
  readonly #schema: GraphQLSchema | null;
  readonly #model: CostModel;
  readonly #rules: ReadonlyMap<string, string>;
  readonly #store: PersistedStore | null;
  readonly #allowed: ReadonlySet<string> | null;
  readonly #introPlans: ReadonlySet<string> | null;
  readonly #counters: OperationCounters | null;
  /** the Redis side of the APQ store (persisted.store: redis), asked on a local miss only */
  readonly #remote: RemoteApq | null;

  constructor(data: Data, slot: number, workerIndex: number) {
    this.#slot = slot;
    this.#data = data;
    this.#schema = data.sdl === null ? null : buildSchema(data.sdl);
    this.#docs = new DocumentCache(data.cacheEntries, data.cacheBytes, data.maxTokens, this.#schema);
    this.#model = {
      object: data.cost.object,
      scalar: data.cost.scalar,
      fields: new Map(data.cost.fields),
      listArguments: new Set(data.cost.listArguments),
      defaultListSize: data.cost.defaultListSize,
    };
    this.#rules = new Map(data.rules);
    this.#store = data.mode === 'apq' ? new PersistedStore(data.apqEntries) : null;
    this.#allowed = data.allowlist === null ? null : new Set(Object.values(data.allowlist));
    this.#introPlans = data.introspection.plans.length > 0 ? new Set(data.introspection.plans) : null;
    this.#counters = data.metrics === null ? null : new OperationCounters(data.metrics.sab, data.metrics.names);
    this.#remote = data.apqRedis === null ? null : new RemoteApq(data.apqRedis, workerIndex);
  }

  /** A hash-only APQ request whose hash this worker does not hold, on a route sharing them through Redis. */
  #remoteLookup(req: GraphqlRequest): boolean {
    return this.#remote !== null && req.hash !== null && req.query === null && HASH.test(req.hash) && this.#store!.get(req.hash) === undefined;
  }

  /** Asks Redis, keeps what it knows in this worker's store; the request then runs as if it had been there. */
  #fetch(hash: string): Promise<void> {
    return this.#remote!.get(hash).then((text) => {
      if (text !== null) this.#store!.set(hash, text);
    });
  }

  readonly access = (ctx: PolicyContext): HookResult => {
    if (ctx.method === 'GET') {
      const req = fromQueryString(ctx);
      if (isRefused(req)) return refuse(ctx, req);
      if (this.#remoteLookup(req)) {
        void this.#fetch(req.hash!).then(() => {
          if (!ctx.aborted) ctx.resume(this.#get(ctx, req));
        });
        return PENDING;
      }
      return this.#get(ctx, req);
    }
    if (ctx.method === 'POST' && !ctx.bodyTransform) return refuse(ctx, new Refused('NG_ERR_GRAPHQL_BAD_REQUEST', 'the POST request has no body'));
    return CONTINUE;
  };

  #get(ctx: PolicyContext, req: GraphqlRequest): typeof CONTINUE | typeof RESPOND {
      const r = this.run(ctx, req, true);
      if (typeof r === 'number') return r as typeof CONTINUE | typeof RESPOND;
      // a persisted query the gateway filled in, or the query without removed fields: the upstream gets the text
      // (it need not know the hash, which would not match a pruned query)
      if (req.query !== null) ctx.removeUpstreamQueryParam('query');
      if (req.hash !== null) ctx.removeUpstreamQueryParam('extensions');
      ctx.addUpstreamQueryParam('query', r);
      return CONTINUE;
  }

  wants(ctx: PolicyContext): boolean {
    return ctx.method === 'POST';
  }

  transform(ctx: PolicyContext, body: Buffer): Buffer | null | Promise<Buffer | null> {
    const req = fromBody(ctx, body);
    if (isRefused(req)) {
      refuse(ctx, req);
      return null;
    }
    if (this.#remoteLookup(req)) return this.#fetch(req.hash!).then(() => this.#post(ctx, req, body));
    return this.#post(ctx, req, body);
  }

  #post(ctx: PolicyContext, req: GraphqlRequest, body: Buffer): Buffer | null {
    const r = this.run(ctx, req, false);
    if (r === RESPOND) return null;
    if (r === CONTINUE || r === PENDING) return body;
    // a persisted query the gateway filled in, or the query without removed fields: forward the body with its text
    const json = req.json;
    if (json === null) return Buffer.from(r);
    json.query = r;
    if (req.hash !== null) delete (json.extensions as { persistedQuery?: unknown }).persistedQuery;
    return Buffer.from(JSON.stringify(json));
  }

  /**
   * The checks of one request. CONTINUE: forward as it came; RESPOND: an answer is prepared; a string: forward with
   * this query text (a persisted query resolved here).
   */
  run(ctx: PolicyContext, req: GraphqlRequest, isGet: boolean): HookResult | string {
    let text = req.query;
    let filled = false;
    let forward: string | null = null;
    const mode = this.#data.mode;
    if (req.hash !== null) {
      if (mode === 'off') return refuse(ctx, new Refused('NG_ERR_GRAPHQL_BAD_REQUEST', 'persisted queries are not answered on this route: send the query'));
      if (!HASH.test(req.hash)) return refuse(ctx, new Refused('NG_ERR_GRAPHQL_PERSISTED_HASH', 'sha256Hash must be 64 hexadecimal digits'));
      if (text !== null && sha256Hex(text) !== req.hash) return refuse(ctx, new Refused('NG_ERR_GRAPHQL_PERSISTED_HASH', 'sha256Hash is not the SHA-256 of the query'));
      if (text === null) {
        const known = mode === 'apq' ? this.#store!.get(req.hash) : this.#data.allowlist![req.hash];
        if (known === undefined) {
          if (mode === 'allowlist') return refuse(ctx, new Refused('NG_ERR_GRAPHQL_NOT_ALLOWLISTED', 'the persisted query is not on the allowlist'));
          // Apollo's protocol: a 200 with this error makes the client send the query with its hash
          ctx.respond(200, JSON_HEADERS, PERSISTED_NOT_FOUND);
          return RESPOND;
        }
        text = known;
        filled = true;
      }
    }
    if (text === null) return refuse(ctx, new Refused('NG_ERR_GRAPHQL_BAD_REQUEST', 'the request has no "query"'));
    if (this.#allowed !== null && !this.#allowed.has(text)) return refuse(ctx, new Refused('NG_ERR_GRAPHQL_NOT_ALLOWLISTED', 'the operation is not on the allowlist'));

    const parsed = this.#docs.get(text);
    if (parsed.error !== null) return refuse(ctx, new Refused(parsed.error, parsed.message));
    const key = req.operationName ?? '';
    let op = parsed.ops.get(key) as Operation | undefined;
    if (op === undefined) {
      const node = pickOperation(parsed.doc, req.operationName);
      if (node === null) {
        return refuse(ctx, new Refused('NG_ERR_GRAPHQL_BAD_REQUEST', req.operationName === null ? 'the document has several operations: name one with operationName' : `the document has no operation named "${req.operationName}"`));
      }
      op = this.#operation(parsed.doc, node);
      parsed.ops.set(key, op);
    }
    const f = op.facts;
    // facts for the log phase and for rate limits counting by cost
    ctx.slots[this.#slot] = new OperationLog(f, op.logged, op.metricSlot);
    if (isGet && f.type === 'mutation') return refuse(ctx, new Refused('NG_ERR_GRAPHQL_MUTATION_GET', 'a mutation must be sent with POST'));
    if (f.introspection && !this.#mayIntrospect(ctx)) return refuse(ctx, new Refused('NG_ERR_GRAPHQL_INTROSPECTION', 'introspection is not allowed for this caller'));
    if (op.needs.length > 0) {
      const denied = missing(op.needs, ctx.scopes);
      if (denied.length > 0) {
        const cut = this.#data.removeFields ? this.#removal(parsed.doc, op, denied) : null;
        if (cut !== null) {
          (ctx.slots[this.#slot] as OperationLog).removed = cut;
          forward = cut.text;
        } else {
          ctx.respondProblem('NG_ERR_GRAPHQL_FIELD_FORBIDDEN', `the caller may not read ${denied.join(', ')}`, undefined, { fields: denied.join(',') });
          return RESPOND;
        }
      }
    }
    const l = this.#data.limits;
    if (l.depth !== undefined && f.depth > l.depth) return limit(ctx, 'NG_ERR_GRAPHQL_DEPTH', 'depth', f.depth, l.depth);
    if (l.aliases !== undefined && f.aliases > l.aliases) return limit(ctx, 'NG_ERR_GRAPHQL_ALIASES', 'aliases', f.aliases, l.aliases);
    if (l.rootFields !== undefined && f.rootFields > l.rootFields) return limit(ctx, 'NG_ERR_GRAPHQL_ROOT_FIELDS', 'rootFields', f.rootFields, l.rootFields);
    const cost = f.costVaries ? costWith(parsed.doc, op.node, this.#model, this.#schema, req.variables) : f.cost;
    (ctx.slots[this.#slot] as OperationLog).cost = cost;
    if (l.cost !== undefined && cost > l.cost) return limit(ctx, 'NG_ERR_GRAPHQL_COST', 'cost', cost, l.cost);
    ctx.requestCost = cost;
    // an automatic persisted query is kept once its document passed every check
    if (this.#store !== null && req.hash !== null && !filled) {
      this.#store.set(req.hash, text);
      this.#remote?.set(req.hash, text);
    }
    return forward ?? (filled ? text : CONTINUE);
  }

  /** The operation without the denied fields, cached with it per set of denied fields. */
  #removal(doc: DocumentNode, op: Operation, denied: string[]): Removal | null {
    const key = denied.join(',');
    const m = (op.removals ??= new Map());
    let cut = m.get(key);
    if (cut === undefined) {
      cut = removeFields(doc, op.node, denied, this.#schema);
      if (m.size < MAX_REMOVALS) m.set(key, cut);
    }
    return cut;
  }

  /** operation metrics: one request of a known operation, refused or not (a log hook only where metrics are on) */
  readonly log = (ctx: PolicyContext): void => {
    const l = ctx.slots[this.#slot] as OperationLog | undefined;
    if (l === undefined || l === null) return;
    const code = ctx.errorCode;
    this.#counters!.record(l.metricSlot, code === null ? l.cost : 0, code, ctx.status);
  };

  /** fieldAuth.mode remove: the response of a request whose operation lost fields gets their errors */
  readonly responseBody = (ctx: PolicyContext): ResponseBodyFilter | null => {
    const log = ctx.slots[this.#slot] as OperationLog | undefined;
    if (log === undefined || log === null || log.removed === null) return null;
    return openRemovedFields(ctx, log.removed, this.#data.maxBodyBytes);
  };

  #operation(doc: DocumentNode, node: OperationDefinitionNode): Operation {
    const facts = analyzeOperation(doc, node, this.#model, this.#schema);
    const n = this.#data.logFields;
    const names = facts.coordinates.length > n ? [...facts.coordinates.slice(0, n), `+${facts.coordinates.length - n}`] : facts.coordinates;
    return { facts, node, needs: requirements(facts.coordinates, this.#rules), logged: asciiJson(JSON.stringify(names)), removals: null, metricSlot: this.#counters === null ? -1 : this.#counters.slotOf(facts.name) };
  }

  #mayIntrospect(ctx: PolicyContext): boolean {
    if (!this.#data.introspection.allowed) return false;
    return this.#introPlans === null || (ctx.consumerPlan !== null && this.#introPlans.has(ctx.consumerPlan));
  }
}

function refuse(ctx: PolicyContext, r: Refused): typeof RESPOND {
  ctx.respondProblem(r.code, r.detail);
  return RESPOND;
}

function limit(ctx: PolicyContext, code: 'NG_ERR_GRAPHQL_DEPTH' | 'NG_ERR_GRAPHQL_ALIASES' | 'NG_ERR_GRAPHQL_ROOT_FIELDS' | 'NG_ERR_GRAPHQL_COST', name: string, value: number, max: number): typeof RESPOND {
  ctx.respondProblem(code, `the operation's ${name} is ${value}, over the limit of ${max}`, undefined, { limit: name, value, max });
  return RESPOND;
}

export const graphqlPolicy: PolicyModule<GraphqlConfig, Data> = {
  name: 'graphql',
  priority: PRIORITY.graphql,
  schema: GraphqlSchema,
  description: 'GraphQL operation limits (depth, aliases, root fields, cost), persisted queries, field authorization, operation logs',
  compile(config, cc) {
    const loaded = config.schema === undefined ? null : loadSchema(config.schema);
    const rules = checkRules(config.fieldAuth.rules, loaded?.schema ?? null);
    if (config.persisted.mode === 'allowlist' && config.persisted.allowlist === undefined) {
      throw new PolicyConfigError('persisted.allowlist', 'mode: allowlist needs the allowlist file', 'persisted: { mode: allowlist, allowlist: operations.json }');
    }
    if (config.persisted.mode !== 'allowlist' && config.persisted.allowlist !== undefined) throw new PolicyConfigError('persisted.allowlist', 'an allowlist applies to mode: allowlist only');
    const redis = (cc.config as { redis?: RedisConfig } | null)?.redis;
    if (config.persisted.store === 'redis') {
      if (config.persisted.mode !== 'apq') throw new PolicyConfigError('persisted.store', 'store: redis shares automatic persisted queries: it needs mode: apq', 'persisted: { mode: apq, store: redis }');
      if (redis === undefined) throw new PolicyConfigError('persisted.store', 'store: redis, but the config has no top-level redis: section', 'add redis: { url: redis://127.0.0.1:6379 } or use store: memory');
    }
    if (config.introspection.plans.length > 0 && !config.introspection.allowed) throw new PolicyConfigError('introspection.plans', 'plans narrow an allowed introspection: set allowed: true');
    const allowlist = config.persisted.allowlist === undefined ? null : readAllowlist(config.persisted.allowlist, 'persisted.allowlist');
    for (const coord of Object.keys(config.cost.fields)) {
      const [type, field] = coord.split('.');
      if (type === '*' || loaded === null) continue;
      const t = loaded.schema.getType(type) as { getFields?: () => Record<string, unknown> } | undefined;
      if (t?.getFields === undefined || !(field in t.getFields())) throw new PolicyConfigError(`cost.fields["${coord}"]`, `the schema has no field ${coord}`);
    }
    return {
      maxTokens: config.maxTokens,
      maxBodyBytes: config.maxBodyBytes,
      limits: config.limits,
      cost: { ...config.cost, fields: Object.entries(config.cost.fields) },
      introspection: config.introspection,
      mode: config.persisted.mode,
      allowlist,
      apqEntries: config.persisted.maxEntries,
      sdl: loaded?.sdl ?? null,
      rules: [...rules],
      removeFields: config.fieldAuth.mode === 'remove',
      cacheEntries: config.cacheEntries,
      cacheBytes: config.cacheBytes,
      logFields: config.logFields,
      apqRedis:
        config.persisted.store === 'redis' ? { redis: redis!, ttlMs: config.persisted.ttlSeconds * 1000, region: cc.shared(`apq-redis:${cc.routeName ?? ''}`, APQ_REGION_BYTES) } : null,
      metrics: config.operationMetrics === 0 ? null : { sab: cc.shared(`ops:${cc.routeName ?? ''}#${config.operationMetrics}`, metricsBytes(config.operationMetrics)), names: config.operationMetrics },
    };
  },
  create(data, env): PolicyHooks {
    const hook = new GraphqlHook(data, env.slot, env.workerIndex);
    return {
      access: hook.access,
      requestBody: { maxBytes: data.maxBodyBytes, wants: (ctx) => hook.wants(ctx), transform: (ctx, body) => hook.transform(ctx, body) },
      // only routes that remove fields have a response body filter (the others keep a null chain)
      responseBody: data.removeFields ? hook.responseBody : undefined,
      log: data.metrics === null ? undefined : hook.log,
    };
  },
};

import { Type, type Static } from '@sinclair/typebox';
import { CONTINUE, PENDING, PRIORITY, RESPOND, PolicyConfigError, type CompileContext, type HookResult, type PolicyContext, type PolicyModule } from '../../pipeline/policy.js';
import type { ErrorCode } from '../../errors/codes.js';
import { CL_STRIDE, LEASE_MASK, Q_STRIDE, SW_COUNT_MASK, SW_STRIDE, SW_SUBS, TB_STRIDE, initRegion, regionBytes } from './layout.js';
import { ADMIT, REFUSE, UNAVAILABLE, WAIT, createLimiter, type Limiter } from './limiter.js';
import { nowUs } from './store-shared.js';
import { RATE_LIMIT_SERVICE, type RateLimitServiceData } from './service-data.js';
import { flat } from '../../shared/flat-string.js';

/**
 * Rate limits and quotas. A route may carry several limits (e.g. 10 per second and 1,000 per hour), each counted
 * per route, consumer, plan, client IP, header value or globally, with a token bucket or a sliding window, on this
 * node (shared memory, exact across workers) or across a cluster (Redis, with local leases). A quota counts a
 * consumer's requests per UTC day or month. Refused requests get 429 (NG_ERR_RATE_LIMITED,
 * NG_ERR_RATE_QUOTA_EXCEEDED) with Retry-After; every response carries RateLimit-* headers. See
 * docs/rate-limiting.md.
 */

const KEY_PATTERN = "^(consumer|plan|ip|route|global|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+)$";
const Key = Type.String({
  pattern: KEY_PATTERN,
  secret: false,
  description: 'what is counted separately: consumer, plan, ip, route, global, or header:<name>',
});
const Scope = Type.Union([Type.Literal('local'), Type.Literal('cluster')], {
  default: 'local',
  description: 'local: this node (shared memory); cluster: every node sharing the top-level redis',
});
const Lease = Type.Integer({ minimum: 1, maximum: 100000, description: 'cluster: tokens a node takes from Redis at a time (default: automatic)' });
const Name = (description: string) => Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', description });

const Limit = Type.Object(
  {
    key: Key,
    algorithm: Type.Union([Type.Literal('tokenBucket'), Type.Literal('slidingWindow')], {
      default: 'tokenBucket',
      description: 'tokenBucket: `rate` tokens per `per`, bursts up to `burst`; slidingWindow: at most `rate` requests in any window of length `per`',
    }),
    rate: Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'requests per `per` (tokens added, or the window limit)' }),
    per: Type.Union([Type.Literal('second'), Type.Literal('minute'), Type.Literal('hour'), Type.Literal('day')], { default: 'second', description: 'the time unit of `rate`' }),
    burst: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'tokenBucket: bucket size (default: rate)' })),
    scope: Scope,
    lease: Type.Optional(Lease),
    name: Type.Optional(Name('limits with the same name are one bucket wherever they appear; also names the limit in 429 answers (default: its place, e.g. limits[1])')),
  },
  { additionalProperties: false, description: 'one limit; a request must be admitted by every limit of the list' },
);

const Quota = Type.Object(
  {
    per: Type.Union([Type.Literal('day'), Type.Literal('month')], { description: 'UTC calendar day or month' }),
    limit: Type.Integer({ minimum: 1, maximum: 1_000_000_000, description: 'requests allowed per key in each day or month' }),
    key: Type.String({ pattern: KEY_PATTERN, default: 'consumer', secret: false, description: 'what is counted separately: consumer, plan, ip, route, global, or header:<name>' }),
    scope: Scope,
    lease: Type.Optional(Lease),
  },
  { additionalProperties: false, description: 'a request quota per calendar period (UTC), counted per key; refusals are 429 until the period ends' },
);

const Schema = Type.Object(
  {
    limits: Type.Array(Limit, { default: [], maxItems: 16, description: 'every limit must admit a request' }),
    quota: Type.Optional(Quota),
    plans: Type.Optional(
      Type.Record(
        Name('a plan name, as in consumers[].plan'),
        Type.Object(
          {
            limits: Type.Array(Limit, { default: [], maxItems: 16, description: "this plan's limits, in place of the policy's top-level limits" }),
            quota: Type.Optional({ ...Quota, description: "this plan's quota, in place of the policy's top-level quota" }),
          },
          { additionalProperties: false },
        ),
        { description: "consumers on a plan named here get that plan's limits and quota instead of the ones above" },
      ),
    ),
    headers: Type.Object(
      {
        draft: Type.Boolean({ default: true, description: 'RateLimit-Limit / -Remaining / -Reset (IETF draft)' }),
        legacy: Type.Boolean({ default: true, description: 'X-RateLimit-Limit / -Remaining / -Reset' }),
      },
      { additionalProperties: false, default: {}, secret: false, description: 'which rate-limit headers responses carry' },
    ),
    warnAt: Type.Array(Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1 }), {
      default: [0.8, 0.9],
      maxItems: 8,
      description: 'quota fractions from which responses carry X-Quota-Warning',
    }),
    onRedisDown: Type.Union([Type.Literal('failOpen'), Type.Literal('failClosed')], {
      default: 'failOpen',
      description: 'cluster limits while Redis is unreachable: failOpen = each node enforces the limit locally; failClosed = 503',
    }),
    tableSize: Type.Integer({ minimum: 16, maximum: 4_194_304, default: 16384, description: 'entries per table of run-time keys (ip, header, consumer, plan)' }),
    cost: Type.Union([Type.Literal('request'), Type.Literal('graphql')], {
      default: 'request',
      description: 'request: a request takes one token; graphql: it takes the cost the graphql policy computed for its operation (token buckets, scope local)',
    }),
  },
  { additionalProperties: false, description: 'rate limits and quotas (local or cluster-wide)' },
);
type Config = Static<typeof Schema>;
type LimitConfig = Static<typeof Limit>;
type QuotaConfig = Static<typeof Quota>;

const PER_US = { second: 1e6, minute: 60e6, hour: 3600e6, day: 86400e6 } as const;

/** One compiled limit or quota: plain data plus its shared region. */
export interface CheckData {
  readonly type: 'tokenBucket' | 'slidingWindow' | 'quota';
  readonly key: 'consumer' | 'plan' | 'ip' | 'route' | 'global' | 'header';
  readonly header: string | null;
  readonly scope: 'local' | 'cluster';
  /** tokenBucket: burst; slidingWindow: rate; quota: limit (what RateLimit-Limit says) */
  readonly limit: number;
  /** tokenBucket: µs per token (rounded up, so never faster than configured) */
  readonly intervalUs: number;
  /** slidingWindow: µs per sub-window */
  readonly subUs: number;
  readonly per: 'second' | 'minute' | 'hour' | 'day' | 'month';
  readonly lease: number;
  readonly region: SharedArrayBuffer;
  /** stable name of the region: shared-memory key, and the Redis key base for cluster scope */
  readonly regionId: string;
  readonly seed: number;
  /** for problem details, e.g. "10 per second per ip" */
  readonly label: string;
  /** which limit this is, as a refusal names it: its `name`, else its place in the policy ("limits[1]", "quota") */
  readonly id: string;
  /** RateLimit-Policy item of a refusal, e.g. `"limits[1]";q=3;w=3600` (w only for a fixed window length) */
  readonly policy: string;
}

export interface CheckSet {
  readonly limits: readonly CheckData[];
  readonly quota: CheckData | null;
}

export interface RateLimitData {
  readonly base: CheckSet;
  readonly plans: Record<string, CheckSet> | null;
  readonly draft: boolean;
  readonly legacy: boolean;
  readonly warnAt: readonly number[];
  readonly failOpen: boolean;
  readonly hasCluster: boolean;
  /** requests take ctx.requestCost tokens (the graphql policy's cost) instead of one */
  readonly byCost: boolean;
}

/** ctx.slots value of a request whose cost is known only once its body has been analysed (see RateLimitHook.requestBody). */
const DEFERRED = 'deferred';

function seedOf(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h;
}

function splitKey(key: string): { key: CheckData['key']; header: string | null } {
  if (key.startsWith('header:')) return { key: 'header', header: key.slice(7).toLowerCase() };
  return { key: key as CheckData['key'], header: null };
}

function tableCapacity(n: number): number {
  let c = 16;
  while (c < n) c *= 2;
  return c;
}

function compileCheck(
  type: CheckData['type'],
  keySpec: string,
  scope: 'local' | 'cluster',
  limit: number,
  intervalUs: number,
  subUs: number,
  per: CheckData['per'],
  lease: number,
  regionId: string,
  tableSize: number,
  cc: CompileContext,
  label: string,
  id: string,
): CheckData {
  const { key, header } = splitKey(keySpec);
  const fixed = key === 'route' || key === 'global';
  const stride = scope === 'cluster' ? CL_STRIDE : type === 'tokenBucket' ? TB_STRIDE : type === 'slidingWindow' ? SW_STRIDE : Q_STRIDE;
  const capacity = fixed ? 1 : tableCapacity(tableSize);
  const region = cc.shared(`${regionId}#${stride}`, regionBytes(capacity, stride, !fixed));
  initRegion(region, capacity, stride);
  const window = per === 'month' ? '' : `;w=${PER_US[per] / 1e6}`;
  const policy = `"${id}";q=${limit}${window}`;
  return { type, key, header, scope, limit, intervalUs, subUs, per, lease, region, regionId, seed: seedOf(regionId), label, id, policy };
}

function compileSet(limits: readonly LimitConfig[], quota: QuotaConfig | undefined, prefix: string, path: string, config: Config, cc: CompileContext): CheckSet {
  const hasRedis = (cc.config as { redis?: unknown }).redis !== undefined;
  const owner = cc.where.startsWith('policies.') ? 'global' : `route:${cc.routeName}`;
  const checks = limits.map((l, i) => {
    const where = `${path}limits[${i}]`;
    if (l.scope === 'cluster' && !hasRedis) {
      throw new PolicyConfigError(`${where}.scope`, 'scope: cluster keeps counts in Redis, but the config has no top-level redis: section', 'add redis: { url: redis://127.0.0.1:6379 } or use scope: local');
    }
    if (l.lease !== undefined && l.scope !== 'cluster') throw new PolicyConfigError(`${where}.lease`, 'lease applies to scope: cluster only');
    const perUs = PER_US[l.per];
    const perSecond = l.rate / (perUs / 1e6);
    let limit: number;
    let intervalUs = 0;
    let subUs = 0;
    if (l.algorithm === 'tokenBucket') {
      limit = l.burst ?? l.rate;
      intervalUs = Math.ceil(perUs / l.rate);
    } else {
      if (l.burst !== undefined) throw new PolicyConfigError(`${where}.burst`, 'a sliding window has no burst: it admits `rate` requests in any window of length `per`');
      if (l.rate > SW_COUNT_MASK - 4096) throw new PolicyConfigError(`${where}.rate`, `a sliding window counts at most ${SW_COUNT_MASK - 4096} requests`);
      limit = l.rate;
      subUs = perUs / SW_SUBS;
    }
    const lease = Math.min(LEASE_MASK, l.lease ?? Math.max(1, Math.min(Math.floor(limit / 10), Math.ceil(perSecond / 20))));
    // A named limit is one bucket wherever it appears; a key of "route" is always one bucket per route.
    const base = l.name !== undefined ? `named:${l.name}` : `${owner}:${prefix}limits[${i}]`;
    const regionId = `${base}${l.key === 'route' ? `:${cc.routeName}` : ''}:${l.algorithm}:${l.scope}:${l.key}`;
    const label = `${l.rate} per ${l.per} per ${l.key}`;
    return compileCheck(l.algorithm, l.key, l.scope, limit, intervalUs, subUs, l.per, lease, regionId, config.tableSize, cc, label, l.name ?? `${prefix}limits[${i}]`);
  });
  let q: CheckData | null = null;
  if (quota) {
    const where = `${path}quota`;
    if (quota.scope === 'cluster' && !hasRedis) {
      throw new PolicyConfigError(`${where}.scope`, 'scope: cluster keeps counts in Redis, but the config has no top-level redis: section', 'add redis: { url: redis://127.0.0.1:6379 } or use scope: local');
    }
    if (quota.key === 'route') throw new PolicyConfigError(`${where}.key`, 'a quota per route is a global quota of that route: use key: global on the route');
    const lease = Math.min(LEASE_MASK, quota.lease ?? Math.max(1, Math.min(100, Math.floor(quota.limit / 100))));
    const regionId = `${owner}:${prefix}quota:${quota.per}:${quota.scope}:${quota.key}`;
    q = compileCheck('quota', quota.key, quota.scope, quota.limit, 0, 0, quota.per, lease, regionId, config.tableSize, cc, `${quota.limit} per ${quota.per} per ${quota.key}`, `${prefix}quota`);
  }
  return { limits: checks, quota: q };
}

// ------------------------------------------------------------------------------------------------------ per request

/**
 * A request's rate-limit outcome, in ctx.slots[env.slot] from the access phase on: the response hook writes the
 * headers from it, and log/metrics hooks may read `limited`, `limit` and `remaining` (of the limit nearest to
 * refusing). It also carries the state of a check that waits for a cluster lease.
 */
export class RateOutcome {
  limited = false;
  /** the error code when refused */
  code: ErrorCode | null = null;
  limit = -1;
  remaining = -1;
  /** seconds until the most restrictive limit is full again */
  reset = 0;
  /** the id of the limit that refused (CheckData.id, e.g. "quota"); null when admitted */
  refusedBy: string | null = null;
  /** RateLimit-Policy value naming the limit that refused */
  policy: string | null = null;
  quotaLimit = -1;
  quotaRemaining = -1;
  /** "80%" once a warnAt threshold of the quota is reached */
  quotaWarning: string | null = null;
  /** entries taken so far (for refunds when a later check refuses) */
  readonly entries: number[];
  /** the check to go on with after a wait, and the wait's deadline (µs) */
  next = 0;
  deadline = 0;
  constructor(checks: number) {
    // a plain array: cheaper to make per request than an Int32Array, and as small for one or two checks
    this.entries = checks === 1 ? [0] : new Array<number>(checks).fill(0);
  }
}

/** How long a request may wait for a lease from Redis before the policy's onRedisDown applies to it. */
const LEASE_WAIT_US = 200_000;

interface LimiterSet {
  readonly limiters: readonly Limiter[];
  /** limits and then the quota, in checking order */
  readonly checks: readonly Limiter[];
  readonly quotaIndex: number;
}

class RateLimitHook {
  readonly base: LimiterSet;
  readonly plans: Map<string, LimiterSet> | null;
  readonly slot: number;
  readonly draft: boolean;
  readonly legacy: boolean;
  readonly warnAt: readonly number[];
  readonly warnLabels: readonly string[];

  constructor(data: RateLimitData, slot: number, services: Record<string, unknown>) {
    const service = (services[RATE_LIMIT_SERVICE] as RateLimitServiceData | undefined) ?? null;
    const build = (set: CheckSet): LimiterSet => {
      const limiters = set.limits.map((c) => createLimiter(c, service, data.failOpen));
      const checks = set.quota ? [...limiters, createLimiter(set.quota, service, data.failOpen)] : limiters;
      return { limiters, checks, quotaIndex: set.quota ? limiters.length : -1 };
    };
    this.base = build(data.base);
    this.plans = data.plans ? new Map(Object.entries(data.plans).map(([name, set]) => [name, build(set)])) : null;
    this.slot = slot;
    this.draft = data.draft;
    this.legacy = data.legacy;
    const warn = [...data.warnAt].sort((a, b) => b - a);
    this.warnAt = warn;
    this.warnLabels = warn.map((w) => `${Math.round(w * 100)}%`);
  }

  readonly access = (ctx: PolicyContext): HookResult => {
    const plan = ctx.consumerPlan;
    const set = plan !== null && this.plans !== null ? (this.plans.get(plan) ?? this.base) : this.base;
    const out = new RateOutcome(set.checks.length);
    ctx.slots[this.slot] = out;
    return this.run(ctx, out, set);
  };

  /**
   * `cost: graphql`: the cost of a GET query is known in the access phase (the graphql policy ran before); a POST
   * body is analysed after the rewrite phase, so the check waits for it (costAfterBody) and runs then.
   */
  readonly accessByCost = (ctx: PolicyContext): HookResult => {
    if (ctx.requestCost < 0 && ctx.bodyTransform) {
      ctx.slots[this.slot] = DEFERRED;
      return CONTINUE;
    }
    this.#weigh(ctx);
    return this.access(ctx);
  };

  /** The deferred check of a POST, after the graphql policy's body hook set ctx.requestCost; null when refused. */
  costAfterBody(ctx: PolicyContext, body: Buffer): Buffer | null {
    if (ctx.slots[this.slot] !== DEFERRED) return body;
    this.#weigh(ctx);
    // local token buckets only (checked at compile), so the checks never wait: no PENDING here
    return this.access(ctx) === CONTINUE ? body : null;
  }

  #weigh(ctx: PolicyContext): void {
    const plan = ctx.consumerPlan;
    const set = plan !== null && this.plans !== null ? (this.plans.get(plan) ?? this.base) : this.base;
    const w = ctx.requestCost > 1 ? ctx.requestCost : 1;
    for (let i = 0; i < set.limiters.length; i++) set.limiters[i].weight = w;
  }

  /** Runs the checks from out.next; returns PENDING when one waits for a lease (and resumes the pipeline later). */
  run(ctx: PolicyContext, out: RateOutcome, set: LimiterSet): HookResult {
    const checks = set.checks;
    let best = 2;
    // One clock read per request (a read costs about as much as a check); a wait below takes a fresh one.
    let now = nowUs();
    for (let i = out.next; i < checks.length; i++) {
      const lim = checks[i];
      const r = lim.check(ctx, now);
      if (r === ADMIT) {
        out.entries[i] = lim.entry;
        if (i === set.quotaIndex) this.#quota(out, lim);
        else {
          // Report the limit nearest to refusing (smallest share left), as the RateLimit draft asks.
          const share = lim.out.remaining / lim.data.limit;
          if (share < best || out.limit < 0) {
            best = share;
            out.limit = lim.data.limit;
            out.remaining = lim.out.remaining;
            out.reset = Math.ceil(lim.out.resetUs / 1e6);
          }
        }
        continue;
      }
      if (r === WAIT) {
        if (out.deadline === 0) out.deadline = now + LEASE_WAIT_US;
        if (now < out.deadline) {
          const w = waitAsync(lim.region.i32, 0, lim.gen, (out.deadline - now) / 1000);
          if (w.async) {
            out.next = i;
            w.value.then(() => {
              if (ctx.aborted) return;
              const res = this.run(ctx, out, set);
              if (res !== PENDING) ctx.resume(res);
            });
            return PENDING;
          }
          i--; // the generation moved on already: check again
          now = nowUs();
          continue;
        }
        lim.timedOut();
        const after = lim.fallback(ctx, nowUs());
        if (after === ADMIT) {
          out.entries[i] = lim.entry;
          continue;
        }
        return this.#refuse(ctx, out, set, i, after);
      }
      return this.#refuse(ctx, out, set, i, r);
    }
    return CONTINUE;
  }

  #quota(out: RateOutcome, lim: Limiter): void {
    const limit = lim.data.limit;
    const remaining = lim.out.remaining;
    out.quotaLimit = limit;
    out.quotaRemaining = remaining;
    const used = (limit - remaining) / limit;
    for (let k = 0; k < this.warnAt.length; k++) {
      if (used >= this.warnAt[k]) {
        out.quotaWarning = this.warnLabels[k];
        break;
      }
    }
  }

  #refuse(ctx: PolicyContext, out: RateOutcome, set: LimiterSet, i: number, r: number): HookResult {
    for (let j = 0; j < i; j++) set.checks[j].refund(out.entries[j]);
    const lim = set.checks[i];
    out.limited = true;
    if (r === UNAVAILABLE) {
      out.code = 'NG_ERR_RATE_UNAVAILABLE';
      ctx.respondProblem('NG_ERR_RATE_UNAVAILABLE', 'the cluster rate-limit store cannot be reached', ['retry-after', '1']);
      return RESPOND;
    }
    const retry = String(Math.max(1, Math.ceil(lim.out.retryUs / 1e6)));
    const d = lim.data;
    // The headers of a refusal describe the limit that refused, not the one that was nearest to refusing among
    // those that admitted (a quota refusal once said "RateLimit-Remaining: 99" from the rate limit before it).
    out.limit = d.limit;
    out.remaining = 0;
    out.reset = Math.ceil(lim.out.resetUs / 1e6);
    out.refusedBy = d.id;
    out.policy = d.policy;
    const members = { limit: d.id };
    if (i === set.quotaIndex) {
      out.code = 'NG_ERR_RATE_QUOTA_EXCEEDED';
      out.quotaLimit = d.limit;
      out.quotaRemaining = 0;
      ctx.respondProblem('NG_ERR_RATE_QUOTA_EXCEEDED', `quota of ${d.label} used up`, ['retry-after', retry], members);
    } else {
      out.code = 'NG_ERR_RATE_LIMITED';
      ctx.respondProblem('NG_ERR_RATE_LIMITED', `limit of ${d.label} reached`, ['retry-after', retry], members);
    }
    return RESPOND;
  }

  // The fields' text around the two numbers that change from one response to the next (remaining, reset), for the
  // last limit and policy reported: a route's responses mostly report the same ones.
  #piecesFor = -1;
  #piecesPolicy: string | null = null;
  #pieces: readonly string[] = [];
  // The last field text made, and the two numbers in it. A limit far from refusing reports the same numbers
  // response after response (a bucket that refills faster than it is drawn stays one token short of full), and
  // then the head takes one flat string where it would copy and walk nine pieces.
  #lastRemaining = -1;
  #lastReset = -1;
  #lastLines = '';

  readonly response = (ctx: PolicyContext): void => {
    const out = ctx.slots[this.slot] as RateOutcome | typeof DEFERRED | undefined;
    if (out === undefined || out === DEFERRED) return;
    if (out.limit >= 0 && (this.draft || this.legacy)) {
      if (out.limit !== this.#piecesFor || out.policy !== this.#piecesPolicy) {
        this.#pieces = fieldPieces(this.draft, this.legacy, out.limit, out.policy);
        this.#piecesFor = out.limit;
        this.#piecesPolicy = out.policy;
        this.#lastRemaining = -1;
      }
      if (out.remaining !== this.#lastRemaining || out.reset !== this.#lastReset) {
        const p = this.#pieces;
        const remaining = String(out.remaining);
        const reset = String(out.reset);
        let lines = p[0] + remaining + p[1] + reset + p[2];
        if (p.length > 3) lines += remaining + p[3] + reset + p[4];
        this.#lastLines = flat(lines);
        this.#lastRemaining = out.remaining;
        this.#lastReset = out.reset;
      }
      ctx.addResponseFields(this.#lastLines);
    }
    if (out.quotaWarning !== null) ctx.addResponseHeader('x-quota-warning', out.quotaWarning);
  };
}

/**
 * The rate-limit fields of one limit and policy as the text between the numbers: pieces[0] remaining pieces[1]
 * reset pieces[2], and with both header sets on, remaining pieces[3] reset pieces[4] after that. ASCII, as
 * addResponseFields wants: the names are fixed, the numbers digits, a limit's id matches Name's pattern.
 */
function fieldPieces(draft: boolean, legacy: boolean, limit: number, policy: string | null): string[] {
  const set = (prefix: string): [string, string, string] => [
    `${prefix}ratelimit-limit: ${limit}\r\n${prefix}ratelimit-remaining: `,
    `\r\n${prefix}ratelimit-reset: `,
    policy === null ? '' : `\r\n${prefix}ratelimit-policy: ${policy}`,
  ];
  // flat: each response's field text holds these pieces, and copies them rather than their own pieces
  if (draft && legacy) {
    const [a, b, c] = set('');
    const [d, e, f] = set('x-');
    return [a, b, c + '\r\n' + d, e, f].map(flat);
  }
  return set(draft ? '' : 'x-').map(flat);
}

type WaitResult = { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
/** Atomics.waitAsync (Node 16+; not in the ES2022 lib typings): waits without blocking the thread. */
const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number, ms: number): WaitResult }).waitAsync;

export const rateLimitPolicy: PolicyModule<Config, RateLimitData> = {
  name: 'rateLimit',
  priority: PRIORITY.rateLimit,
  schema: Schema,
  description: 'rate limits (token bucket, sliding window) and quotas, per node or cluster-wide',
  compile(config, cc) {
    if (config.limits.length === 0 && !config.quota && !config.plans) {
      throw new PolicyConfigError('', 'needs at least one of limits, quota or plans');
    }
    const base = compileSet(config.limits, config.quota, '', '', config, cc);
    let plans: Record<string, CheckSet> | null = null;
    if (config.plans) {
      plans = {};
      for (const [name, p] of Object.entries(config.plans)) plans[name] = compileSet(p.limits, p.quota, `plans.${name}.`, `plans.${name}.`, config, cc);
    }
    const all = [base, ...Object.values(plans ?? {})].flatMap((s) => (s.quota ? [...s.limits, s.quota] : s.limits));
    const byCost = config.cost === 'graphql';
    if (byCost) {
      const sets: [string, readonly LimitConfig[]][] = [['', config.limits], ...Object.entries(config.plans ?? {}).map(([n, p]): [string, readonly LimitConfig[]] => [`plans.${n}.`, p.limits])];
      for (const [prefix, limits] of sets) {
        limits.forEach((l, i) => {
          if (l.algorithm !== 'tokenBucket') throw new PolicyConfigError(`${prefix}limits[${i}].algorithm`, 'cost: graphql takes a number of tokens per request: use algorithm: tokenBucket');
          if (l.scope !== 'local') throw new PolicyConfigError(`${prefix}limits[${i}].scope`, 'cost: graphql counts on this node only: use scope: local');
        });
      }
    }
    return {
      base,
      plans,
      draft: config.headers.draft,
      legacy: config.headers.legacy,
      warnAt: config.warnAt,
      failOpen: config.onRedisDown === 'failOpen',
      hasCluster: all.some((c) => c.scope === 'cluster'),
      byCost,
    };
  },
  create(data, env) {
    const hook = new RateLimitHook(data, env.slot, env.services);
    const response = data.draft || data.legacy || data.warnAt.length > 0 ? hook.response : undefined;
    if (!data.byCost) return { access: hook.access, response };
    // the body hook holds nothing itself: it runs after the graphql policy's (higher priority), on the same body
    return {
      access: hook.accessByCost,
      response,
      requestBody: { maxBytes: Number.MAX_SAFE_INTEGER, wants: () => false, transform: (ctx, body) => hook.costAfterBody(ctx, body) },
    };
  },
};

/** Every cluster-scope check of a compiled plan's rateLimit policies (the control plane serves their leases). */
export function clusterChecks(policies: readonly { name: string; data: unknown }[] | null): CheckData[] {
  const out: CheckData[] = [];
  for (const p of policies ?? []) {
    if (p.name !== 'rateLimit') continue;
    const d = p.data as RateLimitData;
    if (!d.hasCluster) continue;
    for (const set of [d.base, ...Object.values(d.plans ?? {})]) {
      for (const c of set.limits) if (c.scope === 'cluster') out.push(c);
      if (set.quota?.scope === 'cluster') out.push(set.quota);
    }
  }
  return out;
}

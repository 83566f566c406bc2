import { Type, type Static } from '@sinclair/typebox';
import type { Logger } from 'pino';
import { PRIORITY, PolicyConfigError, type PolicyContext, type PolicyModule } from '../../pipeline/policy.js';
import type { ObservabilityConfig, AccessLogDestinationConfig } from '../../observe/schema.js';
import { accessLogger, countWritten } from '../../observe/access-log-sink.js';
import { Redactor, type QueryMode } from '../../observe/redact.js';
import { forEachPhase, ms3 } from '../../observe/phases.js';
import { countStat } from '../../observe/thread-stats.js';
import { W_LOGS_SAMPLED_OUT } from '../../observe/metrics-layout.js';

/**
 * One JSON line per request (pino), written after the response has gone out, to the destination of
 * `observability.accessLog`. Successful requests may be sampled; errors (status >= 400 or a gateway error code) are
 * always logged. Credentials never reach the log: the query is redacted by parameter name, only the request headers
 * listed are logged and those holding credentials are replaced, and PII patterns are masked everywhere.
 */
const HeaderName = Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", maxLength: 256 });
const Schema = Type.Object(
  {
    sampleRate: Type.Number({ minimum: 0, maximum: 1, default: 1, description: 'share of successful requests logged (errors always are)' }),
    query: Type.Union([Type.Literal('redact'), Type.Literal('keep'), Type.Literal('drop')], {
      default: 'redact',
      description: 'redact: the values of redactQuery parameters are replaced; drop: no query; keep: as received',
    }),
    redactQuery: Type.Array(Type.String({ minLength: 1 }), {
      default: ['api_key', 'apikey', 'api-key', 'key', 'token', 'access_token', 'id_token', 'refresh_token', 'password', 'secret', 'signature', 'sig', 'code'],
      description: 'query parameters whose value is replaced (case-insensitive)',
    }),
    headers: Type.Array(HeaderName, { default: [], secret: false, description: 'request headers to include in the line' }),
    redactHeaders: Type.Array(HeaderName, {
      secret: false,
      default: ['authorization', 'proxy-authorization', 'cookie', 'x-api-key', 'api-key', 'x-auth-token'],
      description: 'included headers whose value is replaced',
    }),
    pii: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'regular expressions masked in path, query and header values' }),
    phases: Type.Boolean({ default: true, description: 'add the time per phase (route, each policy, connect, upstream, transfer)' }),
  },
  { additionalProperties: false, description: 'JSON access log line per request, with sampling and redaction' },
);
type Config = Static<typeof Schema>;

interface Data {
  destination: AccessLogDestinationConfig;
  sampleRate: number;
  query: QueryMode;
  redactQuery: string[];
  headers: string[];
  redactHeaders: string[];
  pii: string[];
  phases: boolean;
}

const DEFAULT_DESTINATION = { type: 'stdout', batchSize: 512, flushMs: 1000, queueLimit: 8192, timeoutMs: 5000 } as AccessLogDestinationConfig;

class AccessLogHook {
  readonly #log: Logger;
  readonly #data: Data;
  readonly #redact: Redactor;
  readonly #headers: readonly string[];
  readonly timesHooks: boolean;

  constructor(data: Data, routeName: string) {
    this.#data = data;
    this.#log = accessLogger(data.destination).child({ route: routeName });
    this.#redact = new Redactor(data.query, data.redactQuery, data.redactHeaders, data.pii);
    this.#headers = data.headers.map((h) => h.toLowerCase());
    this.timesHooks = data.phases;
  }

  readonly log = (ctx: PolicyContext): void => {
    const status = ctx.status || 499;
    const failed = status >= 400 || ctx.errorCode !== null;
    const rate = this.#data.sampleRate;
    if (!failed && rate < 1 && (rate === 0 || Math.random() >= rate)) {
      countStat(W_LOGS_SAMPLED_OUT, 1);
      return;
    }
    const t = ctx.timing;
    const end = t.end > 0 ? t.end : performance.now();
    const total = end - t.start;
    const upstream = t.upstreamStart > 0 ? end - t.upstreamStart : 0;
    const line: Record<string, unknown> = {
      reqId: ctx.requestId,
      method: ctx.method,
      path: this.#redact.pii(ctx.path),
      status,
      consumer: ctx.consumerId,
      bytesIn: ctx.bytesIn,
      bytesOut: ctx.bytesOut,
      latency: { total: ms3(total), gateway: ms3(total - upstream), upstream: ms3(upstream) },
      upstream: ctx.upstreamNode,
      client: ctx.clientIp,
    };
    const query = this.#redact.query(ctx.query);
    if (query !== '') line.query = query;
    if (ctx.consumerPlan !== null) line.plan = ctx.consumerPlan;
    if (ctx.errorCode !== null) line.error = ctx.errorCode;
    // The cause the client's problem body leaves out (src/errors/problem.ts), beside the node it concerns.
    if (ctx.upstreamError !== null) line.upstreamError = ctx.upstreamError;
    if (this.#data.phases) {
      const phases: Record<string, number> = {};
      forEachPhase(t, end, (name, ms) => {
        phases[name] = ms3((phases[name] ?? 0) + ms);
      });
      line.phases = phases;
    }
    // Outcomes other policies leave in their slots, when present: rate limit {limited, limit, remaining},
    // cache {cacheStatus}, trace {traceId}.
    const slots = ctx.slots;
    for (let i = 0; i < slots.length; i++) {
      const s = slots[i] as Record<string, unknown> | undefined;
      if (s === undefined || s === null || typeof s !== 'object') continue;
      if ('limited' in s && 'remaining' in s) line.rateLimit = { limited: s.limited, limit: s.limit, remaining: s.remaining };
      else if (typeof s.cacheStatus === 'string') line.cache = s.cacheStatus;
      else if (typeof s.traceId === 'string') line.traceId = s.traceId;
    }
    if (this.#headers.length > 0) {
      const headers: Record<string, string> = {};
      for (const name of this.#headers) {
        const v = ctx.header(name);
        if (v !== undefined) headers[name] = this.#redact.header(name, v);
      }
      line.headers = headers;
    }
    // 4xx at info (the client's doing), 5xx at error
    if (status >= 500) this.#log.error(line);
    else this.#log.info(line);
    countWritten(this.#data.destination);
  };
}

export const accessLogPolicy: PolicyModule<Config, Data> = {
  name: 'accessLog',
  priority: PRIORITY.observe,
  schema: Schema,
  description: 'JSON access log line per request, with sampling and redaction',
  compile(config, cc) {
    config.pii.forEach((p, i) => {
      try {
        new RegExp(p, 'g');
      } catch (err) {
        throw new PolicyConfigError(`pii[${i}]`, `invalid regular expression: ${(err as Error).message}`);
      }
    });
    const observability = (cc.config as { observability?: ObservabilityConfig }).observability;
    return {
      destination: observability?.accessLog?.destination ?? DEFAULT_DESTINATION,
      sampleRate: config.sampleRate,
      query: config.query,
      redactQuery: config.redactQuery,
      headers: config.headers,
      redactHeaders: config.redactHeaders,
      pii: config.pii,
      phases: config.phases,
    };
  },
  create(data, env) {
    return new AccessLogHook(data, env.routeName);
  },
};

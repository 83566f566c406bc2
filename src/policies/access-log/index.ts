import { compilePattern } from '../../shared/pii.js';
import { Type, type Static } from '@sinclair/typebox';
import { PRIORITY, PolicyConfigError, type PolicyContext, type PolicyModule } from '../../pipeline/policy.js';
import type { ObservabilityConfig, AccessLogDestinationConfig } from '../../observe/schema.js';
import { accessLogSink, type AccessLogSink } from '../../observe/access-log-sink.js';
import { Redactor, type QueryMode } from '../../observe/redact.js';
import { buildLine, lineCache, routePart, type LineOptions } from './line.js';
import { buildOtelLine, otelHeaderKeys, otelRoutePart, type OtelLineOptions } from './line-otel.js';
import { countStat } from '../../observe/thread-stats.js';
import { W_LOGS_SAMPLED_OUT } from '../../observe/metrics-layout.js';

/**
 * One JSON line per request (line.ts), written after the response has gone out, to the destination of
 * `observability.accessLog`. Successful requests may be sampled; errors (status >= 400 or a gateway error code) are
 * always logged. Credentials never reach the log: the query is redacted by parameter name, only the request headers
 * listed are logged and those holding credentials are replaced, and PII patterns are masked everywhere.
 *
 * Field names follow the OpenTelemetry HTTP semantic conventions (`http.request.method`, `url.path`…,
 * line-otel.ts); `format: legacy` keeps the names of earlier releases (line.ts).
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
    phases: Type.Union([Type.Boolean(), Type.Literal('slow')], {
      default: 'slow',
      description:
        'add the time per phase (route, each policy, connect, upstream, transfer): true on every line, slow on lines that took phasesSlowMs or longer and on 5xx and gateway-error lines, false never',
    }),
    phasesSlowMs: Type.Number({ minimum: 0, default: 100, description: 'with phases: slow, the duration from which a line has its phases' }),
    format: Type.Union([Type.Literal('otel'), Type.Literal('legacy')], {
      default: 'otel',
      description: 'otel: OpenTelemetry semantic-convention field names (http.request.method, url.path…); legacy: the names before (method, path…)',
    }),
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
  phases: boolean | 'slow';
  phasesSlowMs: number;
  format: 'otel' | 'legacy';
  /** the route's http.route (otel format), null when it has none */
  route: string | null;
}

const DEFAULT_DESTINATION = { type: 'stdout', batchSize: 512, queueLimit: 8192, timeoutMs: 5000 } as AccessLogDestinationConfig;

class AccessLogHook {
  readonly #sink: AccessLogSink;
  readonly #data: Data;
  readonly #route: string;
  readonly #line: OtelLineOptions;
  readonly #build: (ctx: PolicyContext, status: number, route: string, o: OtelLineOptions) => string;
  readonly timesHooks: boolean;
  readonly readsTiming = true;

  constructor(data: Data, routeName: string) {
    this.#data = data;
    this.#sink = accessLogSink(data.destination);
    const otel = data.format === 'otel';
    this.#route = otel ? otelRoutePart(routeName, data.route) : routePart(routeName);
    const headers = data.headers.map((h) => h.toLowerCase());
    this.#line = {
      redact: new Redactor(data.query, data.redactQuery, data.redactHeaders, data.pii),
      headers,
      phases: data.phases !== false,
      phasesOverMs: data.phases === 'slow' ? data.phasesSlowMs : 0,
      headerKeys: otel ? otelHeaderKeys(headers) : [],
      last: lineCache(),
    };
    this.#build = otel ? buildOtelLine : (buildLine as (ctx: PolicyContext, status: number, route: string, o: LineOptions) => string);
    // 'slow' takes the per-hook timestamps of every request (a line knows it is slow only at its end; the phase
    // histograms of the metrics come from them too) but writes them out only on the lines that need them
    this.timesHooks = data.phases !== false;
  }

  readonly log = (ctx: PolicyContext): void => {
    const status = ctx.status || 499;
    const failed = status >= 400 || ctx.errorCode !== null;
    const rate = this.#data.sampleRate;
    if (!failed && rate < 1 && (rate === 0 || Math.random() >= rate)) {
      countStat(W_LOGS_SAMPLED_OUT, 1);
      return;
    }
    // 4xx at info (the client's doing), 5xx at error
    this.#sink.write(this.#build(ctx, status, this.#route, this.#line));
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
        compilePattern(p);
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
      phasesSlowMs: config.phasesSlowMs,
      format: config.format,
      route: cc.routeTemplate ?? null,
    };
  },
  create(data, env) {
    return new AccessLogHook(data, env.routeName);
  },
};

import { performance } from 'node:perf_hooks';
import { Type, type Static } from '@sinclair/typebox';
import { CONTINUE, PolicyConfigError, type PolicyContext, type PolicyEnv, type PolicyModule } from '../../pipeline/policy.js';
import type { ObservabilityConfig } from '../../observe/schema.js';
import { REC_CLIENT, REC_SERVER, REC_TRACE, REC_VALUE_END, TraceParent, formatTraceparent, parseTraceparent, takeTraceRecord, traceRecords } from '../../observe/trace-context.js';
import { SPAN_KIND_CLIENT, SPAN_KIND_SERVER, SpanRecord, spanExporter, type SpanAttributes, type SpanExporter } from '../../observe/span-exporter.js';
import { OtlpEnvError, resolveTracing, type ResolvedTracing } from '../../observe/otlp-env.js';
import { hostOnly, hostPort } from '../../observe/semconv.js';

/**
 * W3C trace context for a route: an incoming `traceparent` is continued (same trace id, its span as our parent, its
 * sampled flag obeyed), otherwise a trace starts here (sampled at `sampleRate`). The upstream gets a rewritten
 * `traceparent` naming the gateway's CLIENT span as parent; `tracestate` passes through untouched (dropped with an
 * invalid traceparent, as the spec asks). A sampled request gives a SERVER span (`GET /users/:id`) and, when it was
 * sent upstream, a CLIENT span for the upstream hop as its child, both with the OpenTelemetry HTTP semantic-convention
 * attributes; they go to the OTLP exporter of `observability.tracing` after the response; without one, the policy
 * only propagates.
 *
 * It runs first in the access phase (priority above every other policy), so a request refused by authentication
 * still gets its span.
 */
const Schema = Type.Object(
  {
    sampleRate: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'overrides observability.tracing.sampleRate for new traces' })),
  },
  { additionalProperties: false, description: 'W3C traceparent propagation and a span per request (OTLP export)' },
);
type Config = Static<typeof Schema>;

interface Data {
  exporter: ResolvedTracing | null;
  sampleRate: number;
  /** the route's http.route, null when it has none */
  route: string | null;
}

/**
 * Per-request trace state, in the policy's slot (the access log reads traceId and spanId from it). The ids this
 * request made are read out of its record of the id pool (trace-context.ts) when asked for: a request that nobody
 * asks (no access log, not sampled) slices nothing.
 */
class TraceRun {
  /** the id pool's text and this request's record in it */
  readonly #records: string;
  readonly #at: number;
  /** the trace id of an incoming traceparent; '' when the trace starts here */
  readonly #continued: string;
  parentSpanId = '';
  sampled = false;

  constructor(records: string, at: number, continued: string) {
    this.#records = records;
    this.#at = at;
    this.#continued = continued;
  }

  get traceId(): string {
    return this.#continued !== '' ? this.#continued : this.#records.slice(this.#at + REC_TRACE, this.#at + REC_TRACE + 32);
  }
  /** the SERVER span */
  get spanId(): string {
    return this.#records.slice(this.#at + REC_SERVER, this.#at + REC_SERVER + 16);
  }
  /** the CLIENT span of the upstream hop: the upstream's traceparent names it as parent */
  get clientSpanId(): string {
    return this.#records.slice(this.#at + REC_CLIENT, this.#at + REC_CLIENT + 16);
  }

  /** the upstream's traceparent value */
  upstreamValue(): string {
    // a new unsampled trace: the record holds the value as it is
    if (this.#continued === '' && !this.sampled) return this.#records.slice(this.#at, this.#at + REC_VALUE_END);
    return formatTraceparent(this.traceId, this.clientSpanId, this.sampled);
  }
}

const scratch = new TraceParent();

class TracingHook {
  readonly #slot: number;
  readonly #rate: number;
  readonly #exporter: SpanExporter | null;
  readonly #route: string | null;

  constructor(data: Data, env: PolicyEnv) {
    this.#slot = env.slot;
    this.#rate = data.sampleRate;
    this.#exporter = data.exporter === null ? null : spanExporter(data.exporter);
    this.#route = data.route;
  }

  readonly access = (ctx: PolicyContext): typeof CONTINUE => {
    const incoming = ctx.header('traceparent');
    const at = takeTraceRecord();
    const records = traceRecords();
    let run: TraceRun;
    if (incoming !== undefined && parseTraceparent(incoming, scratch)) {
      run = new TraceRun(records, at, scratch.traceId);
      run.parentSpanId = scratch.parentId;
      run.sampled = (scratch.flags & 1) === 1;
    } else {
      run = new TraceRun(records, at, '');
      run.sampled = this.#rate >= 1 || (this.#rate > 0 && Math.random() < this.#rate);
      if (incoming !== undefined) ctx.removeUpstreamHeader('tracestate');
    }
    if (incoming !== undefined) ctx.removeUpstreamHeader('traceparent');
    ctx.setUpstreamHeader('traceparent', run.upstreamValue());
    ctx.slots[this.#slot] = run;
    // Spans are made of the request's timestamps, taken for sampled requests only (not readsTiming, which times every
    // request of the route). Tracing runs first among the access hooks, so the span still covers every policy.
    if (run.sampled && this.#exporter !== null) ctx.startTiming();
    return CONTINUE;
  };

  readonly log = (ctx: PolicyContext): void => {
    const run = ctx.slots[this.#slot] as TraceRun | undefined;
    const exporter = this.#exporter;
    if (run === undefined || !run.sampled || exporter === null) return;
    const t = ctx.timing;
    const end = t.end > 0 ? t.end : performance.now();
    const status = ctx.status || 499;
    const method = ctx.method;
    const route = this.#route;
    // https://opentelemetry.io/docs/specs/semconv/http/http-spans/#http-server
    const attributes: SpanAttributes = {
      'http.request.method': method,
      'url.path': ctx.path,
      'url.scheme': 'http',
      'http.response.status_code': status,
      'network.protocol.version': '1.1',
      'client.address': ctx.clientIp,
      'nanogate.route': ctx.routeName,
      'nanogate.request_id': ctx.requestId,
    };
    if (route !== null) attributes['http.route'] = route;
    const host = ctx.hostHeader;
    if (host !== '') {
      attributes['server.address'] = hostOnly(host);
      const port = hostPort(host);
      if (port !== 0) attributes['server.port'] = port;
    }
    const ua = ctx.header('user-agent');
    if (ua !== undefined) attributes['user_agent.original'] = ua;
    if (ctx.consumerId !== null) attributes['nanogate.consumer'] = ctx.consumerId;
    if (ctx.errorCode !== null) attributes['error.type'] = ctx.errorCode;
    else if (status >= 500) attributes['error.type'] = String(status);
    const source = exporter.source;
    exporter.push(
      new SpanRecord(
        source,
        run.traceId,
        run.spanId,
        run.parentSpanId,
        true,
        route === null ? method : `${method} ${route}`,
        SPAN_KIND_SERVER,
        t.start,
        end,
        attributes,
        // a server span is an error for 5xx only (semantic conventions: 4xx is the client's doing)
        status >= 500 ? (ctx.errorCode ?? `HTTP ${status}`) : null,
      ),
    );

    const node = ctx.upstreamNode;
    if (t.upstreamStart <= 0 || node === null) return;
    // https://opentelemetry.io/docs/specs/semconv/http/http-spans/#http-client: the hop to the node that answered
    // (or failed last); retries on other nodes are inside it
    const answered = t.upstreamHeaders > 0;
    const client: SpanAttributes = {
      'http.request.method': method,
      'server.address': hostOnly(node),
      'network.protocol.version': '1.1',
      'nanogate.upstream.node': node,
    };
    const nodePort = hostPort(node);
    if (nodePort !== 0) client['server.port'] = nodePort;
    if (answered) client['http.response.status_code'] = status;
    let error: string | null = null;
    if (!answered) {
      error = ctx.errorCode ?? 'upstream failed';
      client['error.type'] = ctx.errorCode ?? '_OTHER';
    } else if (status >= 400) {
      // a client span is an error for 4xx too
      error = `HTTP ${status}`;
      client['error.type'] = String(status);
    }
    exporter.push(new SpanRecord(source, run.traceId, run.clientSpanId, run.spanId, false, method, SPAN_KIND_CLIENT, t.upstreamStart, end, client, error));
  };
}

export const tracingPolicy: PolicyModule<Config, Data> = {
  name: 'tracing',
  // before IP restriction, CORS and authentication, so that refused requests are traced too
  priority: 10000,
  schema: Schema,
  description: 'W3C traceparent propagation and a span per request (OTLP export)',
  compile(config, cc) {
    const tracing = (cc.config as { observability?: ObservabilityConfig }).observability?.tracing ?? null;
    let exporter: ResolvedTracing | null = null;
    if (tracing !== null) {
      try {
        exporter = resolveTracing(tracing);
      } catch (err) {
        if (err instanceof OtlpEnvError) throw new PolicyConfigError('', `observability.tracing: environment variable ${err.path} ${err.message}`);
        throw err;
      }
    }
    return { exporter, sampleRate: config.sampleRate ?? tracing?.sampleRate ?? 1, route: cc.routeTemplate ?? null };
  },
  create(data, env) {
    return new TracingHook(data, env);
  },
};

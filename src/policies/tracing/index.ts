import { Type, type Static } from '@sinclair/typebox';
import { CONTINUE, type PolicyContext, type PolicyEnv, type PolicyModule } from '../../pipeline/policy.js';
import type { ObservabilityConfig, TracingConfig } from '../../observe/schema.js';
import { TraceParent, formatTraceparent, parseTraceparent, randomHex, unixNanos } from '../../observe/trace-context.js';
import { spanExporter, type SpanExporter, type SpanRecord } from '../../observe/span-exporter.js';

/**
 * W3C trace context for a route: an incoming `traceparent` is continued (same trace id, its span as our parent, its
 * sampled flag obeyed), otherwise a trace starts here (sampled at `sampleRate`). The upstream gets a rewritten
 * `traceparent` naming the gateway's span as parent; `tracestate` passes through untouched (dropped with an invalid
 * traceparent, as the spec asks). A sampled request's server span goes to the OTLP exporter of
 * `observability.tracing` after the response; without one, the policy only propagates.
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
  exporter: TracingConfig | null;
  sampleRate: number;
}

/** Per-request trace state, in the policy's slot (the access log reads traceId from it). */
class TraceRun {
  traceId = '';
  spanId = '';
  parentSpanId = '';
  sampled = false;
}

const scratch = new TraceParent();

class TracingHook {
  readonly #slot: number;
  readonly #rate: number;
  readonly #exporter: SpanExporter | null;
  /** span start and end come from the request's timestamps (nothing to time without an exporter) */
  readonly readsTiming: boolean;

  constructor(data: Data, env: PolicyEnv) {
    this.#slot = env.slot;
    this.#rate = data.sampleRate;
    this.#exporter = data.exporter === null ? null : spanExporter(data.exporter);
    this.readsTiming = this.#exporter !== null;
  }

  readonly access = (ctx: PolicyContext): typeof CONTINUE => {
    const run = new TraceRun();
    const incoming = ctx.header('traceparent');
    if (incoming !== undefined && parseTraceparent(incoming, scratch)) {
      run.traceId = scratch.traceId;
      run.parentSpanId = scratch.parentId;
      run.sampled = (scratch.flags & 1) === 1;
    } else {
      run.traceId = randomHex(16);
      run.sampled = this.#rate >= 1 || (this.#rate > 0 && Math.random() < this.#rate);
      if (incoming !== undefined) ctx.removeUpstreamHeader('tracestate');
    }
    run.spanId = randomHex(8);
    if (incoming !== undefined) ctx.removeUpstreamHeader('traceparent');
    ctx.setUpstreamHeader('traceparent', formatTraceparent(run.traceId, run.spanId, run.sampled));
    ctx.slots[this.#slot] = run;
    return CONTINUE;
  };

  readonly log = (ctx: PolicyContext): void => {
    const run = ctx.slots[this.#slot] as TraceRun | undefined;
    const exporter = this.#exporter;
    if (run === undefined || !run.sampled || exporter === null) return;
    const t = ctx.timing;
    const status = ctx.status || 499;
    const attributes: SpanRecord['attributes'] = [
      { key: 'http.request.method', value: { stringValue: ctx.method } },
      { key: 'url.path', value: { stringValue: ctx.path } },
      { key: 'http.response.status_code', value: { intValue: status } },
      { key: 'nanogate.route', value: { stringValue: ctx.routeName } },
      { key: 'nanogate.request_id', value: { stringValue: ctx.requestId } },
    ];
    const node = ctx.upstreamNode;
    if (node !== null) attributes.push({ key: 'nanogate.upstream.node', value: { stringValue: node } });
    if (ctx.consumerId !== null) attributes.push({ key: 'nanogate.consumer', value: { stringValue: ctx.consumerId } });
    if (ctx.errorCode !== null) attributes.push({ key: 'error.type', value: { stringValue: ctx.errorCode } });
    exporter.push({
      traceId: run.traceId,
      spanId: run.spanId,
      parentSpanId: run.parentSpanId,
      name: `${ctx.method} ${ctx.routeName}`,
      startNanos: unixNanos(t.start),
      endNanos: unixNanos(t.end > 0 ? t.end : performance.now()),
      attributes,
      // a server span is an error for 5xx only (OpenTelemetry HTTP semantic conventions)
      error: status >= 500 ? (ctx.errorCode ?? `HTTP ${status}`) : null,
    });
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
    return { exporter: tracing, sampleRate: config.sampleRate ?? tracing?.sampleRate ?? 1 };
  },
  create(data, env) {
    return new TracingHook(data, env);
  },
};

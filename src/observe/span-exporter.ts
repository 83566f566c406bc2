import { performance } from 'node:perf_hooks';
import { createRequire } from 'node:module';
import type { ResolvedTracing } from './otlp-env.js';
import { BatchPoster } from './batch-poster.js';
import { countStat } from './thread-stats.js';
import { W_SPANS_DROPPED, W_SPANS_EXPORTED } from './metrics-layout.js';

/** OpenTelemetry API span kinds (the OTLP wire value is one more: the serializer adds it). */
export const SPAN_KIND_SERVER = 1;
export const SPAN_KIND_CLIENT = 2;

export type SpanAttributes = Record<string, string | number | boolean>;

/** The resource and scope every span of one exporter shares (the serializers group spans by their identity). */
export interface SpanSource {
  readonly resource: { readonly attributes: SpanAttributes };
  readonly instrumentationScope: { readonly name: string; readonly version: string };
}

interface SpanContext {
  readonly traceId: string;
  readonly spanId: string;
  readonly traceFlags: number;
  readonly isRemote?: boolean;
}

const NONE: readonly never[] = Object.freeze([]);
const UNSET = Object.freeze({ code: 0 });

/** A performance.now() timestamp as OpenTelemetry's HrTime, [unix seconds, nanoseconds]. */
export function hrTime(perfMs: number): [number, number] {
  const ms = performance.timeOrigin + perfMs;
  const seconds = Math.floor(ms / 1000);
  return [seconds, Math.min(999_999_999, Math.round((ms - seconds * 1000) * 1e6))];
}

/**
 * One finished span, in the shape of the OpenTelemetry SDK's ReadableSpan: the fields the OTLP serializers of
 * @opentelemetry/otlp-transformer read, and nothing else (no SDK tracer, no context manager, no per-span closures).
 */
export class SpanRecord {
  readonly name: string;
  readonly kind: number;
  readonly startTime: [number, number];
  readonly endTime: [number, number];
  readonly attributes: SpanAttributes;
  readonly status: { readonly code: number; readonly message?: string };
  readonly parentSpanContext: SpanContext | undefined;
  readonly resource: SpanSource['resource'];
  readonly instrumentationScope: SpanSource['instrumentationScope'];
  readonly events = NONE;
  readonly links = NONE;
  readonly droppedAttributesCount = 0;
  readonly droppedEventsCount = 0;
  readonly droppedLinksCount = 0;
  readonly #context: SpanContext;

  /**
   * `parentRemote`: the parent came in a traceparent header (another process); `error`: the status message of a
   * failed span (status ERROR), null for status UNSET.
   */
  constructor(
    source: SpanSource,
    traceId: string,
    spanId: string,
    parentSpanId: string,
    parentRemote: boolean,
    name: string,
    kind: number,
    startPerfMs: number,
    endPerfMs: number,
    attributes: SpanAttributes,
    error: string | null,
  ) {
    this.#context = { traceId, spanId, traceFlags: 1 };
    this.parentSpanContext = parentSpanId === '' ? undefined : { traceId, spanId: parentSpanId, traceFlags: 1, isRemote: parentRemote };
    this.name = name;
    this.kind = kind;
    this.startTime = hrTime(startPerfMs);
    this.endTime = hrTime(endPerfMs);
    this.attributes = attributes;
    this.status = error === null ? UNSET : { code: 2, message: error };
    this.resource = source.resource;
    this.instrumentationScope = source.instrumentationScope;
  }

  spanContext(): SpanContext {
    return this.#context;
  }
}

function jsonValue(v: string | number | boolean): string {
  if (typeof v === 'string') return `{"stringValue":${JSON.stringify(v)}}`;
  if (typeof v === 'boolean') return `{"boolValue":${v}}`;
  return Number.isInteger(v) ? `{"intValue":${v}}` : `{"doubleValue":${v}}`;
}

function jsonAttributes(attributes: SpanAttributes): string {
  let out = '[';
  for (const key in attributes) {
    if (out.length > 1) out += ',';
    out += `{"key":${JSON.stringify(key)},"value":${jsonValue(attributes[key])}}`;
  }
  return out + ']';
}

function jsonNanos(t: [number, number]): string {
  return `"${t[0]}${String(t[1]).padStart(9, '0')}"`;
}

/**
 * ExportTraceServiceRequest in the OTLP/JSON mapping (ids as hex, times as decimal strings, kind as the wire enum),
 * for `protocol: http/json`. Hand-written because it measured faster than otlp-transformer's JSON serializer, which
 * builds the whole request as objects before stringifying it; spans of one batch share the exporter's resource.
 */
export function encodeOtlpJson(spans: readonly SpanRecord[]): string {
  if (spans.length === 0) return '{"resourceSpans":[]}';
  const first = spans[0];
  const scope = first.instrumentationScope;
  let body = `{"resourceSpans":[{"resource":{"attributes":${jsonAttributes(first.resource.attributes)}},"scopeSpans":[{"scope":{"name":${JSON.stringify(scope.name)},"version":${JSON.stringify(scope.version)}},"spans":[`;
  for (let i = 0; i < spans.length; i++) {
    const s = spans[i];
    const c = s.spanContext();
    if (i > 0) body += ',';
    body += `{"traceId":"${c.traceId}","spanId":"${c.spanId}",`;
    if (s.parentSpanContext !== undefined) body += `"parentSpanId":"${s.parentSpanContext.spanId}",`;
    body += `"name":${JSON.stringify(s.name)},"kind":${s.kind + 1},"startTimeUnixNano":${jsonNanos(s.startTime)},"endTimeUnixNano":${jsonNanos(s.endTime)},`;
    body += `"attributes":${jsonAttributes(s.attributes)},"status":`;
    body += s.status.code === 0 ? '{"code":0}}' : `{"code":${s.status.code},"message":${JSON.stringify(s.status.message ?? '')}}}`;
  }
  return body + ']}]}]}';
}

interface TraceSerializer {
  serializeRequest(spans: SpanRecord[]): Uint8Array | undefined;
}

let protobuf: TraceSerializer | null = null;

/** OpenTelemetry's protobuf serializer, loaded when the first exporter needs it: a gateway without tracing never does. */
function protobufSerializer(): TraceSerializer {
  return (protobuf ??= (createRequire(import.meta.url)('@opentelemetry/otlp-transformer') as { ProtobufTraceSerializer: TraceSerializer }).ProtobufTraceSerializer);
}

/**
 * OTLP/HTTP export (protobuf or JSON, gzip by default) from the worker that recorded the spans: one exporter per
 * thread and collector. A request only pays building its SpanRecords and an array push; encoding happens when a
 * batch leaves, on a timer or when a batch is full. Protobuf (the default) is OpenTelemetry's own serializer
 * (@opentelemetry/otlp-transformer), JSON the hand-written encodeOtlpJson: each was the faster of the two for its
 * format in scripts/measure-otlp-encoding.mjs (docs/observability.md has the numbers). Why not hand spans to the main thread:
 * a postMessage is a structured clone per batch, about the cost of the encoding done here, and the main thread would
 * become a shared bottleneck for every worker; a worker-side queue keeps each worker's export independent and bounded.
 */
export class SpanExporter {
  readonly #poster: BatchPoster<SpanRecord>;
  readonly source: SpanSource;

  constructor(config: ResolvedTracing) {
    this.source = {
      resource: { attributes: { ...config.resource } },
      instrumentationScope: { name: 'nanogate', version: config.resource['service.version'] ?? '' },
    };
    const json = config.protocol === 'http/json';
    const serializer = json ? null : protobufSerializer();
    this.#poster = new BatchPoster<SpanRecord>(
      {
        url: config.endpoint,
        batchSize: config.batchSize,
        flushMs: config.flushMs,
        queueLimit: config.queueLimit,
        timeoutMs: config.timeoutMs,
        headers: config.headers,
        gzip: config.compression === 'gzip',
      },
      json ? 'application/json' : 'application/x-protobuf',
      serializer === null ? encodeOtlpJson : (spans) => serializer.serializeRequest(spans) ?? new Uint8Array(0),
      (n) => countStat(W_SPANS_EXPORTED, n),
      (n) => countStat(W_SPANS_DROPPED, n),
    );
  }

  push(span: SpanRecord): void {
    this.#poster.push(span);
  }

  flush(): Promise<void> {
    return this.#poster.flush();
  }

  close(): Promise<void> {
    return this.#poster.close();
  }
}

const exporters = new Map<string, SpanExporter>();

/** This thread's exporter for a collector config (shared by every route and kept across reloads). */
export function spanExporter(config: ResolvedTracing): SpanExporter {
  const key = JSON.stringify(config);
  let e = exporters.get(key);
  if (e === undefined) {
    e = new SpanExporter(config);
    exporters.set(key, e);
  }
  return e;
}

/** Before the thread exits: one last attempt to deliver queued spans. */
export async function closeSpanExporters(): Promise<void> {
  await Promise.all([...exporters.values()].map((e) => e.close().catch(() => {})));
  exporters.clear();
}

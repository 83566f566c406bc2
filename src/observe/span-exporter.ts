import type { TracingConfig } from './schema.js';
import { BatchPoster } from './batch-poster.js';
import { countStat } from './thread-stats.js';
import { W_SPANS_DROPPED, W_SPANS_EXPORTED } from './metrics-layout.js';

/** One finished server span, as the tracing policy's log hook records it. */
export interface SpanRecord {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  startNanos: string;
  endNanos: string;
  /** OTLP key/value attributes, already in wire shape */
  attributes: { key: string; value: { stringValue: string } | { intValue: number } }[];
  error: string | null;
}

/**
 * OTLP/HTTP JSON export from the worker that recorded the spans (one exporter per thread and collector). Spans are
 * queued as small objects and serialised when a batch leaves, on a timer or when a batch is full, so a request only
 * pays an array push. Why not hand spans to the main thread: a postMessage is a structured clone per batch, about
 * the cost of the JSON encoding done here, and the main thread would become a shared bottleneck for every worker;
 * a worker-side queue keeps each worker's export independent and bounded.
 */
export class SpanExporter {
  readonly #poster: BatchPoster<SpanRecord>;
  readonly #resource: string;

  constructor(config: TracingConfig) {
    this.#resource = JSON.stringify({ attributes: [{ key: 'service.name', value: { stringValue: config.serviceName } }] });
    this.#poster = new BatchPoster<SpanRecord>(
      { url: config.endpoint, batchSize: config.batchSize, flushMs: config.flushMs, queueLimit: config.queueLimit, timeoutMs: config.timeoutMs, headers: config.headers },
      'application/json',
      (spans) => this.encode(spans),
      (n) => countStat(W_SPANS_EXPORTED, n),
      (n) => countStat(W_SPANS_DROPPED, n),
    );
  }

  push(span: SpanRecord): void {
    this.#poster.push(span);
  }

  /** ExportTraceServiceRequest in the OTLP/JSON mapping (ids as hex, times as decimal strings). */
  encode(spans: SpanRecord[]): string {
    let body = `{"resourceSpans":[{"resource":${this.#resource},"scopeSpans":[{"scope":{"name":"nanogate"},"spans":[`;
    for (let i = 0; i < spans.length; i++) {
      const s = spans[i];
      if (i > 0) body += ',';
      body += JSON.stringify({
        traceId: s.traceId,
        spanId: s.spanId,
        parentSpanId: s.parentSpanId || undefined,
        name: s.name,
        kind: 2, // SPAN_KIND_SERVER
        startTimeUnixNano: s.startNanos,
        endTimeUnixNano: s.endNanos,
        attributes: s.attributes,
        status: s.error === null ? { code: 0 } : { code: 2, message: s.error }, // UNSET / ERROR
      });
    }
    return body + ']}]}]}';
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
export function spanExporter(config: TracingConfig): SpanExporter {
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

import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import protobuf from 'protobufjs';

/**
 * The official OTLP .proto definitions, as shipped inside @opentelemetry/otlp-grpc-exporter-base 0.38 (a dev
 * dependency kept for them: later releases stopped shipping the files). Decoding with them, not with the
 * serializer the gateway uses, is what makes a protobuf export test able to fail.
 */
const PROTO_ROOT = join(dirname(createRequire(import.meta.url).resolve('@opentelemetry/otlp-grpc-exporter-base/package.json')), 'build', 'protos');
let exportRequest: protobuf.Type | null = null;

function exportTraceServiceRequest(): protobuf.Type {
  if (exportRequest === null) {
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) => join(PROTO_ROOT, target);
    root.loadSync('opentelemetry/proto/collector/trace/v1/trace_service.proto', { keepCase: false });
    exportRequest = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');
  }
  return exportRequest;
}

export interface OtlpResourceSpans {
  resource: { attributes: OtlpSpan['attributes'] };
  scopeSpans: { scope?: { name: string; version?: string }; spans: OtlpSpan[] }[];
}

/** An OTLP/HTTP protobuf body as the OTLP/JSON mapping: hex ids, decimal-string times, enums as numbers. */
export function decodeOtlpProtobuf(body: Buffer): { resourceSpans: OtlpResourceSpans[] } {
  const type = exportTraceServiceRequest();
  const obj = type.toObject(type.decode(body), { longs: String, enums: Number, bytes: String, defaults: false, arrays: true }) as {
    resourceSpans: (OtlpResourceSpans & { scopeSpans: { spans: (OtlpSpan & { parentSpanId?: string })[] }[] })[];
  };
  const hex = (b64: string | undefined) => (b64 === undefined || b64 === '' ? undefined : Buffer.from(b64, 'base64').toString('hex'));
  for (const r of obj.resourceSpans) {
    for (const ss of r.scopeSpans) {
      for (const span of ss.spans) {
        span.traceId = hex(span.traceId)!;
        span.spanId = hex(span.spanId)!;
        const parent = hex(span.parentSpanId);
        if (parent === undefined) delete span.parentSpanId;
        else span.parentSpanId = parent;
        span.status ??= { code: 0 };
        span.status.code ??= 0;
      }
    }
  }
  return obj;
}

export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: { key: string; value: { stringValue?: string; intValue?: number | string } }[];
  status: { code: number; message?: string };
}

export interface Collector {
  url: string;
  port: number;
  /** every POST received: path, content-type, content-encoding and body (text; `raw` decompressed bytes) */
  posts: { path: string; contentType: string; contentEncoding: string; headers: IncomingHttpHeaders; body: string; raw: Buffer }[];
  /** every OTLP request to /v1/traces (protobuf or JSON), as the OTLP/JSON mapping */
  requests(): { resourceSpans: OtlpResourceSpans[] }[];
  /** spans of every OTLP request to /v1/traces (protobuf or JSON) */
  spans(): OtlpSpan[];
  /** NDJSON lines of every other POST */
  lines(): Record<string, unknown>[];
  /** resolves when `test` holds for the received data, or rejects after `ms` */
  waitFor(test: () => boolean, ms?: number): Promise<void>;
  /** Records POSTs but holds their answers until the returned function is called (a slow collector). */
  hold(): () => void;
  close(): Promise<void>;
}

/** The value of a span (or resource) attribute (string or int). */
export function attr(span: { attributes: OtlpSpan['attributes'] }, key: string): string | number | undefined {
  const a = span.attributes.find((x) => x.key === key);
  if (!a) return undefined;
  return a.value.stringValue ?? (a.value.intValue !== undefined ? Number(a.value.intValue) : undefined);
}

/**
 * A loopback receiver for the gateway's exports: OTLP/HTTP protobuf or JSON (gzip or not) on POST /v1/traces,
 * NDJSON log batches on any other path. It answers 200 with {} (what an OTLP collector answers to a full success).
 */
export async function startCollector(): Promise<Collector> {
  const posts: Collector['posts'] = [];
  let held: (() => void)[] | null = null;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const contentEncoding = req.headers['content-encoding'] ?? '';
      let raw = Buffer.concat(chunks);
      if (contentEncoding === 'gzip') raw = gunzipSync(raw);
      posts.push({ path: req.url ?? '', contentType: req.headers['content-type'] ?? '', contentEncoding, headers: req.headers, body: raw.toString('utf8'), raw });
      const answer = () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      };
      if (held !== null) held.push(answer);
      else answer();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const requests = () =>
    posts
      .filter((p) => p.path === '/v1/traces')
      .map((p) => (p.contentType === 'application/x-protobuf' ? decodeOtlpProtobuf(p.raw) : (JSON.parse(p.body) as { resourceSpans: OtlpResourceSpans[] })));
  const spans = () => requests().flatMap((r) => r.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((s) => s.spans)));
  const lines = () =>
    posts
      .filter((p) => p.path !== '/v1/traces')
      .flatMap((p) => p.body.split('\n').filter((l) => l.trim() !== ''))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    posts,
    requests,
    spans,
    lines,
    async waitFor(test, ms = 5000) {
      const until = Date.now() + ms;
      while (!test()) {
        if (Date.now() > until) throw new Error('timed out waiting for the collector');
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    hold() {
      const mine: (() => void)[] = (held ??= []);
      return () => {
        if (held === mine) held = null;
        for (const answer of mine.splice(0)) answer();
      };
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** Polls `test` until it holds (or throws after `ms`). */
export async function eventually(test: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await test())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

// Span encoding on the export path: the hand-written OTLP/JSON encoder nanogate had before and the one it has now
// (encodeOtlpJson), against @opentelemetry/otlp-transformer's protobuf and JSON serializers, with and without gzip.
// Batches of 512 spans like the ones the tracing policy records (a SERVER span with 13 attributes, a CLIENT span
// with 6). Prints spans encoded per second and CPU microseconds per span (process.cpuUsage: user + system, so
// the gzip threads are counted too). Usage: npm run build && node scripts/measure-otlp-encoding.mjs [seconds per case]
import { gzipSync } from 'node:zlib';
import { SpanRecord, SPAN_KIND_CLIENT, SPAN_KIND_SERVER, encodeOtlpJson } from '../dist/src/observe/span-exporter.js';
import { randomHex, unixNanos } from '../dist/src/observe/trace-context.js';
import { createRequire } from 'node:module';

const { ProtobufTraceSerializer, JsonTraceSerializer } = createRequire(import.meta.url)('@opentelemetry/otlp-transformer');
const SECONDS = Number(process.argv[2] ?? 3);
const BATCH = 512;

const source = {
  resource: { attributes: { 'service.name': 'nanogate', 'service.version': '0.1.0', 'service.instance.id': '4f7d2c1e-0b8a-4c55-9a57-3c0f7d1e2b6a' } },
  instrumentationScope: { name: 'nanogate', version: '0.1.0' },
};

function records() {
  const out = [];
  for (let i = 0; i < BATCH / 2; i++) {
    const trace = randomHex(16);
    const server = randomHex(8);
    const t0 = performance.now();
    out.push(
      new SpanRecord(source, trace, server, randomHex(8), true, 'GET /users/:id', SPAN_KIND_SERVER, t0, t0 + 2.5, {
        'http.request.method': 'GET',
        'url.path': `/users/${i}`,
        'url.scheme': 'http',
        'http.route': '/users/:id',
        'http.response.status_code': 200,
        'network.protocol.version': '1.1',
        'server.address': 'api.example.com',
        'client.address': '127.0.0.1',
        'user_agent.original': 'curl/8.5.0',
        'nanogate.route': 'user-by-id',
        'nanogate.request_id': `ef0acc4c0-${i}`,
        'nanogate.consumer': 'alice',
        'server.port': 8080,
      }, null),
      new SpanRecord(source, trace, randomHex(8), server, false, 'GET', SPAN_KIND_CLIENT, t0 + 0.3, t0 + 2.4, {
        'http.request.method': 'GET',
        'server.address': '127.0.0.1',
        'server.port': 9000,
        'network.protocol.version': '1.1',
        'nanogate.upstream.node': '127.0.0.1:9000',
        'http.response.status_code': 200,
      }, null),
    );
  }
  return out;
}

// The encoder of src/observe/span-exporter.ts before this comparison: spans queued in OTLP/JSON wire shape.
function legacyRecords(spans) {
  return spans.map((s) => ({
    traceId: s.spanContext().traceId,
    spanId: s.spanContext().spanId,
    parentSpanId: s.parentSpanContext?.spanId ?? '',
    name: s.name,
    startNanos: unixNanos(performance.now()),
    endNanos: unixNanos(performance.now() + 2.5),
    attributes: Object.entries(s.attributes).map(([key, v]) => ({ key, value: typeof v === 'number' ? { intValue: v } : { stringValue: String(v) } })),
    error: null,
  }));
}
const legacyResource = JSON.stringify({ attributes: Object.entries(source.resource.attributes).map(([key, v]) => ({ key, value: { stringValue: v } })) });
function legacyEncode(spans) {
  let body = `{"resourceSpans":[{"resource":${legacyResource},"scopeSpans":[{"scope":{"name":"nanogate"},"spans":[`;
  for (let i = 0; i < spans.length; i++) {
    const s = spans[i];
    if (i > 0) body += ',';
    body += JSON.stringify({
      traceId: s.traceId,
      spanId: s.spanId,
      parentSpanId: s.parentSpanId || undefined,
      name: s.name,
      kind: 2,
      startTimeUnixNano: s.startNanos,
      endTimeUnixNano: s.endNanos,
      attributes: s.attributes,
      status: s.error === null ? { code: 0 } : { code: 2, message: s.error },
    });
  }
  return body + ']}]}]}';
}

const batch = records();
const legacy = legacyRecords(batch);
const cases = [
  ['hand-written JSON (before)', () => legacyEncode(legacy)],
  ['encodeOtlpJson (now, http/json)', () => encodeOtlpJson(batch)],
  ['otlp-transformer protobuf', () => ProtobufTraceSerializer.serializeRequest(batch)],
  ['otlp-transformer JSON', () => JsonTraceSerializer.serializeRequest(batch)],
  ['hand-written JSON + gzip', () => gzipSync(legacyEncode(legacy))],
  ['encodeOtlpJson + gzip', () => gzipSync(encodeOtlpJson(batch))],
  ['otlp-transformer protobuf + gzip', () => gzipSync(ProtobufTraceSerializer.serializeRequest(batch))],
  ['otlp-transformer JSON + gzip', () => gzipSync(JsonTraceSerializer.serializeRequest(batch))],
];

console.log(`${BATCH} spans per batch, ${SECONDS} s per case, node ${process.version}`);
console.log('| encoding | spans/s | CPU µs/span | bytes/span |');
console.log('|---|---:|---:|---:|');
for (const [name, fn] of cases) {
  for (let i = 0; i < 50; i++) fn(); // warm-up
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  let bytes = 0;
  while (performance.now() - t0 < SECONDS * 1000) {
    const out = fn();
    bytes = typeof out === 'string' ? Buffer.byteLength(out) : out.length;
    n++;
  }
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const spans = n * BATCH;
  console.log(`| ${name} | ${Math.round(spans / wall).toLocaleString('en')} | ${((cpu.user + cpu.system) / spans).toFixed(2)} | ${Math.round(bytes / BATCH)} |`);
}

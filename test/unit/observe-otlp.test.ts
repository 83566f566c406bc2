import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { SpanRecord, SPAN_KIND_CLIENT, SPAN_KIND_SERVER, encodeOtlpJson, hrTime, type SpanSource } from '../../src/observe/span-exporter.js';
import { OtlpEnvError, parseKeyValueList, resolveTracing } from '../../src/observe/otlp-env.js';
import { hostOnly, hostPort, routeTemplate } from '../../src/observe/semconv.js';
import { decodeOtlpProtobuf } from '../helpers/collector.js';

const { ProtobufTraceSerializer } = createRequire(import.meta.url)('@opentelemetry/otlp-transformer') as {
  ProtobufTraceSerializer: { serializeRequest(spans: SpanRecord[]): Uint8Array };
};

const BASE = { sampleRate: 1, batchSize: 512, flushMs: 1000, queueLimit: 8192, timeoutMs: 5000 };
const source: SpanSource = {
  resource: { attributes: { 'service.name': 'nanogate', 'service.version': '1.2.3', 'service.instance.id': 'i-1' } },
  instrumentationScope: { name: 'nanogate', version: '1.2.3' },
};

function spans(): SpanRecord[] {
  const t = performance.now();
  return [
    new SpanRecord(source, '0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331', '00f067aa0ba902b7', true, 'GET /users/:id', SPAN_KIND_SERVER, t, t + 2.5, {
      'http.request.method': 'GET',
      'http.response.status_code': 503,
      'url.path': '/users/"42"',
      ratio: 0.5,
      cached: false,
    }, 'NG_ERR_UPSTREAM_CONNECT'),
    new SpanRecord(source, '0af7651916cd43dd8448eb211c80319c', '1111111111111111', 'b7ad6b7169203331', false, 'GET', SPAN_KIND_CLIENT, t + 0.5, t + 2, { 'server.port': 9000 }, null),
  ];
}

test('the protobuf export (otlp-transformer) and the JSON one (encodeOtlpJson) say the same, read with the official .proto files', () => {
  const batch = spans();
  const fromProto = decodeOtlpProtobuf(Buffer.from(ProtobufTraceSerializer.serializeRequest(batch)));
  const fromJson = JSON.parse(encodeOtlpJson(batch));
  for (const decoded of [fromProto, fromJson]) {
    const rs = decoded.resourceSpans;
    assert.equal(rs.length, 1);
    assert.deepEqual(
      rs[0].resource.attributes.map((a: { key: string; value: { stringValue: string } }) => [a.key, a.value.stringValue]),
      [['service.name', 'nanogate'], ['service.version', '1.2.3'], ['service.instance.id', 'i-1']],
    );
    assert.equal(rs[0].scopeSpans[0].scope.name, 'nanogate');
    const [server, client] = rs[0].scopeSpans[0].spans;
    assert.equal(server.traceId, '0af7651916cd43dd8448eb211c80319c');
    assert.equal(server.spanId, 'b7ad6b7169203331');
    assert.equal(server.parentSpanId, '00f067aa0ba902b7');
    assert.equal(server.kind, 2, 'SPAN_KIND_SERVER on the wire');
    assert.equal(server.name, 'GET /users/:id');
    assert.deepEqual(server.status, { code: 2, message: 'NG_ERR_UPSTREAM_CONNECT' });
    const a = Object.fromEntries(server.attributes.map((x: { key: string; value: Record<string, unknown> }) => [x.key, x.value]));
    assert.equal(a['http.request.method'].stringValue, 'GET');
    assert.equal(Number(a['http.response.status_code'].intValue), 503);
    assert.equal(a['url.path'].stringValue, '/users/"42"');
    assert.equal(a.ratio.doubleValue, 0.5);
    assert.equal(a.cached.boolValue ?? false, false);
    assert.equal(client.kind, 3, 'SPAN_KIND_CLIENT on the wire');
    assert.equal(client.parentSpanId, server.spanId);
    assert.equal(client.status.code ?? 0, 0);
    assert.equal(BigInt(server.endTimeUnixNano) - BigInt(server.startTimeUnixNano), 2_500_000n);
  }
  assert.equal(fromProto.resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano, fromJson.resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano);
});

test('hrTime is wall-clock [seconds, nanoseconds]', () => {
  const [s, ns] = hrTime(performance.now());
  assert.ok(Math.abs(s * 1000 - Date.now()) < 60_000);
  assert.ok(Number.isInteger(ns) && ns >= 0 && ns < 1e9);
});

test('tracing endpoint, protocol, compression, headers and service name: config first, then the OTEL_ variables, then defaults', () => {
  const d = resolveTracing({ ...BASE }, {});
  assert.equal(d.endpoint, 'http://localhost:4318/v1/traces');
  assert.equal(d.protocol, 'http/protobuf');
  assert.equal(d.compression, 'gzip');
  assert.equal(d.resource['service.name'], 'nanogate');
  assert.match(d.resource['service.instance.id'], /^[0-9a-f-]{36}$/);
  assert.equal(resolveTracing({ ...BASE }, {}).resource['service.instance.id'], d.resource['service.instance.id'], 'one instance id per process');

  const env = {
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318/',
    OTEL_EXPORTER_OTLP_HEADERS: 'Authorization=Bearer%20a, x-a=1',
    OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x-a=2',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: 'none',
    OTEL_SERVICE_NAME: 'edge',
    OTEL_RESOURCE_ATTRIBUTES: 'service.name=ignored,k8s.pod.name=gw-0',
  };
  const e = resolveTracing({ ...BASE }, env);
  assert.equal(e.endpoint, 'http://127.0.0.1:4318/v1/traces', 'the generic endpoint gets /v1/traces');
  assert.equal(resolveTracing({ ...BASE }, { ...env, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:1/custom' }).endpoint, 'http://127.0.0.1:1/custom', 'the traces endpoint is used as is');
  assert.deepEqual(e.headers, { authorization: 'Bearer a', 'x-a': '2' });
  assert.equal(e.protocol, 'http/json');
  assert.equal(e.compression, 'none');
  assert.equal(e.resource['service.name'], 'edge', 'OTEL_SERVICE_NAME wins over OTEL_RESOURCE_ATTRIBUTES');
  assert.equal(e.resource['k8s.pod.name'], 'gw-0');

  const c = resolveTracing({ ...BASE, endpoint: 'http://127.0.0.1:9/v1/traces', protocol: 'http/protobuf', compression: 'gzip', serviceName: 'cfg', headers: { 'X-A': '3' } }, env);
  assert.equal(c.endpoint, 'http://127.0.0.1:9/v1/traces');
  assert.equal(c.protocol, 'http/protobuf');
  assert.equal(c.compression, 'gzip');
  assert.equal(c.resource['service.name'], 'cfg');
  assert.equal(c.headers['x-a'], '3');
});

test('malformed OTEL_ variables are refused by name, without echoing values', () => {
  const refused = (env: Record<string, string>, name: string, pattern: RegExp) =>
    assert.throws(
      () => resolveTracing({ ...BASE }, env),
      (err: unknown) => err instanceof OtlpEnvError && err.path === name && pattern.test(err.message) && !err.message.includes('s3cret'),
    );
  refused({ OTEL_EXPORTER_OTLP_ENDPOINT: 'user:s3cret@collector' }, 'OTEL_EXPORTER_OTLP_ENDPOINT', /not an http\(s\)/);
  refused({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, 'OTEL_EXPORTER_OTLP_PROTOCOL', /gRPC is not supported/);
  refused({ OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: 'br' }, 'OTEL_EXPORTER_OTLP_TRACES_COMPRESSION', /not a supported compression/);
  refused({ OTEL_EXPORTER_OTLP_HEADERS: 'a=1,s3cret' }, 'OTEL_EXPORTER_OTLP_HEADERS', /entry 2 is not key=value/);
  refused({ OTEL_EXPORTER_OTLP_HEADERS: 'x=%E0%A4%A' }, 'OTEL_EXPORTER_OTLP_HEADERS', /percent-encoding/);
  refused({ OTEL_EXPORTER_OTLP_HEADERS: 'bad name=1' }, 'OTEL_EXPORTER_OTLP_HEADERS', /entry 1/);
  assert.deepEqual(parseKeyValueList('X', ' a = 1 ,, b=x%2Cy ', null), { a: '1', b: 'x,y' });
});

test('semantic-convention helpers: http.route from the match, server.address and server.port from Host', () => {
  assert.equal(routeTemplate({ path: '/users/:id' }), '/users/:id');
  assert.equal(routeTemplate({ prefix: '/api/' }), '/api/*');
  assert.equal(routeTemplate({ prefix: '/' }), '/*');
  assert.equal(routeTemplate({}), null);
  assert.equal(hostOnly('api.example.com:8080'), 'api.example.com');
  assert.equal(hostOnly('[::1]:8080'), '::1');
  assert.equal(hostOnly('example.com'), 'example.com');
  assert.equal(hostPort('api.example.com:8080'), 8080);
  assert.equal(hostPort('[::1]'), 0);
  assert.equal(hostPort('[::1]:443'), 443);
  assert.equal(hostPort('example.com'), 0);
});

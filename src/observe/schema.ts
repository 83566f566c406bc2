import { Type, type Static } from '@sinclair/typebox';

/**
 * The top-level `observability:` section: where access logs and spans go. What is logged or traced, and on which
 * routes, is said by the `accessLog`, `serverTiming` and `tracing` policies (global or per route).
 */
const Url = Type.String({ pattern: '^https?://[^/?#]+(/[^?#]*)?$', secret: 'url', description: 'http: the endpoint lines are POSTed to, http(s)://host:port/path' });
const Headers = Type.Record(Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" }), Type.String({ pattern: '^[^\\r\\n\\x00]*$' }), {
  secret: true,
  description: 'extra request headers (e.g. authorization for a hosted collector)',
});

const Delivery = {
  batchSize: Type.Integer({ minimum: 1, maximum: 10000, default: 512, description: 'items per request; a full batch is sent at once' }),
  flushMs: Type.Integer({ minimum: 10, maximum: 60000, default: 1000, description: 'ms after which a partly filled batch is sent' }),
  queueLimit: Type.Integer({ minimum: 1, maximum: 1000000, default: 8192, description: 'items held per worker; beyond it new ones are dropped and counted' }),
  timeoutMs: Type.Integer({ minimum: 100, maximum: 60000, default: 5000, description: 'ms allowed to connect and answer per request; after a failure the next try waits (flushMs, doubling up to 30 s)' }),
};

const AccessLogDestination = Type.Object(
  {
    type: Type.Union([Type.Literal('stdout'), Type.Literal('file'), Type.Literal('http')], {
      default: 'stdout',
      description: 'stdout: the process output; file: appended to `path`; http: POSTed to `url`',
    }),
    path: Type.Optional(Type.String({ minLength: 1, description: 'file: the log file (appended; reopened on SIGUSR2 for rotation)' })),
    url: Type.Optional(Url),
    headers: Type.Optional(Headers),
    ...Delivery,
    flushMs: Type.Optional(
      Type.Integer({
        minimum: 10,
        maximum: 60000,
        description: 'a line leaves at most this long after it was logged: 100 for stdout and file (or when 64 KiB are held), 1000 for http (or when batchSize lines are held)',
      }),
    ),
  },
  {
    additionalProperties: false,
    default: {},
    description: 'stdout, a file, or an HTTP endpoint (POSTed as NDJSON in batches)',
    allOf: [
      { if: { properties: { type: { const: 'file' } }, required: ['type'] }, then: { required: ['path'] } },
      { if: { properties: { type: { const: 'http' } }, required: ['type'] }, then: { required: ['url'] } },
    ],
  },
);

const Tracing = Type.Object(
  {
    endpoint: Type.Optional(
      Type.String({
        pattern: '^https?://[^/?#]+(/[^?#]*)?$',
        secret: 'url',
        description: 'OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces (default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces, http://localhost:4318/v1/traces)',
      }),
    ),
    protocol: Type.Optional(
      Type.Union([Type.Literal('http/protobuf'), Type.Literal('http/json')], { description: 'OTLP encoding (default: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL, http/protobuf)' }),
    ),
    compression: Type.Optional(Type.Union([Type.Literal('gzip'), Type.Literal('none')], { description: 'request body compression (default: OTEL_EXPORTER_OTLP_TRACES_COMPRESSION, OTEL_EXPORTER_OTLP_COMPRESSION, gzip)' })),
    sampleRate: Type.Number({ minimum: 0, maximum: 1, default: 1, description: 'share of new traces recorded (incoming traceparent decides for continued ones)' }),
    serviceName: Type.Optional(Type.String({ minLength: 1, description: 'resource attribute service.name (default: OTEL_SERVICE_NAME, then nanogate)' })),
    headers: Type.Optional(Headers),
    ...Delivery,
  },
  {
    additionalProperties: false,
    description: 'span export over OTLP/HTTP (protobuf or JSON); the OTEL_EXPORTER_OTLP_* variables fill in what is left out; enable per route with the tracing policy',
  },
);

export const ObservabilitySchema = Type.Object(
  {
    accessLog: Type.Object(
      { destination: AccessLogDestination },
      { additionalProperties: false, default: {}, description: 'where the lines of the accessLog policy go (which requests are logged is set by the policy)' },
    ),
    tracing: Type.Optional(Tracing),
  },
  { additionalProperties: false, default: {}, description: 'destinations of access logs and traces' },
);

export type ObservabilityConfig = Static<typeof ObservabilitySchema>;
export type AccessLogDestinationConfig = Static<typeof AccessLogDestination>;
export type TracingConfig = Static<typeof Tracing>;

import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TracingConfig } from './schema.js';

/**
 * `observability.tracing` with what it leaves out taken from the standard OpenTelemetry SDK environment variables
 * (https://opentelemetry.io/docs/specs/otel/protocol/exporter/ and .../configuration/sdk-environment-variables/).
 * Resolved once on the control plane when the config is compiled, so every worker gets the same values and a bad
 * variable is refused like a bad config value.
 *
 * Precedence per setting: the config file, then the traces-specific variable, then the generic one, then the
 * default. Headers merge the other way round: generic, traces-specific, then the config's, later ones winning.
 */
export interface ResolvedTracing {
  readonly endpoint: string;
  readonly protocol: 'http/protobuf' | 'http/json';
  readonly compression: 'gzip' | 'none';
  readonly headers: Record<string, string>;
  readonly sampleRate: number;
  readonly batchSize: number;
  readonly flushMs: number;
  readonly queueLimit: number;
  readonly timeoutMs: number;
  /** resource attributes: service.name, service.version, service.instance.id and OTEL_RESOURCE_ATTRIBUTES */
  readonly resource: Record<string, string>;
}

export class OtlpEnvError extends Error {
  readonly path: string;
  constructor(path: string, message: string) {
    super(message);
    this.path = path;
  }
}

const DEFAULT_ENDPOINT = 'http://localhost:4318/v1/traces';
const URL_PATTERN = /^https?:\/\/[^/?#]+(\/[^?#]*)?$/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

// One id per gateway process: every worker and every reload reports the same instance (semantic conventions:
// service.instance.id is unique per instance of the service, a UUID is recommended).
let instanceId: string | null = null;
let packageVersion: string | null = null;

function version(): string {
  if (packageVersion === null) {
    try {
      packageVersion = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      packageVersion = 'unknown';
    }
  }
  return packageVersion;
}

/** The first non-empty of the named variables, with its name. */
function pick(env: NodeJS.ProcessEnv, ...names: string[]): [string, string] | null {
  for (const n of names) {
    const v = env[n]?.trim();
    if (v) return [n, v];
  }
  return null;
}

/**
 * `key1=value1,key2=value2` with percent-encoded values, the format of OTEL_EXPORTER_OTLP_HEADERS and
 * OTEL_RESOURCE_ATTRIBUTES. A malformed entry is refused by its position only: the values may be credentials.
 */
export function parseKeyValueList(name: string, text: string, keyPattern: RegExp | null): Record<string, string> {
  const out: Record<string, string> = {};
  const items = text.split(',');
  for (let i = 0; i < items.length; i++) {
    const item = items[i].trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    const key = eq > 0 ? item.slice(0, eq).trim() : '';
    if (key === '' || (keyPattern !== null && !keyPattern.test(key))) throw new OtlpEnvError(name, `entry ${i + 1} is not key=value with a valid key`);
    let value: string;
    try {
      value = decodeURIComponent(item.slice(eq + 1).trim());
    } catch {
      throw new OtlpEnvError(name, `entry ${i + 1} ("${key}") has a malformed percent-encoding`);
    }
    if (/[\r\n\0]/.test(value)) throw new OtlpEnvError(name, `entry ${i + 1} ("${key}") holds a line break or NUL`);
    out[keyPattern === TOKEN ? key.toLowerCase() : key] = value;
  }
  return out;
}

/** The generic endpoint is a base URL: the traces path is appended to it (the spec's rule). */
function tracesUrl(base: string): string {
  return base.endsWith('/') ? `${base}v1/traces` : `${base}/v1/traces`;
}

function protocolOf(name: string, v: string): ResolvedTracing['protocol'] {
  if (v === 'http/protobuf' || v === 'http/json') return v;
  if (v === 'grpc') throw new OtlpEnvError(name, 'OTLP over gRPC is not supported: use http/protobuf (port 4318 on a collector)');
  throw new OtlpEnvError(name, `"${v}" is not an OTLP protocol (http/protobuf or http/json)`);
}

function compressionOf(name: string, v: string): ResolvedTracing['compression'] {
  if (v === 'gzip' || v === 'none') return v;
  throw new OtlpEnvError(name, `"${v}" is not a supported compression (gzip or none)`);
}

export function resolveTracing(config: TracingConfig, env: NodeJS.ProcessEnv = process.env): ResolvedTracing {
  let endpoint = config.endpoint;
  if (endpoint === undefined) {
    const specific = pick(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
    const generic = specific === null ? pick(env, 'OTEL_EXPORTER_OTLP_ENDPOINT') : null;
    const [name, url] = specific ?? (generic !== null ? [generic[0], tracesUrl(generic[1])] : ['', DEFAULT_ENDPOINT]);
    // the value is not echoed: an endpoint may carry credentials in its user-info
    if (!URL_PATTERN.test(url)) throw new OtlpEnvError(name, 'is not an http(s)://host[:port][/path] URL');
    endpoint = url;
  }

  const p = pick(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_PROTOCOL');
  const protocol = config.protocol ?? (p === null ? 'http/protobuf' : protocolOf(p[0], p[1]));
  const c = pick(env, 'OTEL_EXPORTER_OTLP_TRACES_COMPRESSION', 'OTEL_EXPORTER_OTLP_COMPRESSION');
  const compression = config.compression ?? (c === null ? 'gzip' : compressionOf(c[0], c[1]));

  const headers: Record<string, string> = {};
  for (const name of ['OTEL_EXPORTER_OTLP_HEADERS', 'OTEL_EXPORTER_OTLP_TRACES_HEADERS']) {
    const v = env[name]?.trim();
    if (v) Object.assign(headers, parseKeyValueList(name, v, TOKEN));
  }
  for (const [k, v] of Object.entries(config.headers ?? {})) headers[k.toLowerCase()] = v;

  const fromEnv = env.OTEL_RESOURCE_ATTRIBUTES?.trim() ? parseKeyValueList('OTEL_RESOURCE_ATTRIBUTES', env.OTEL_RESOURCE_ATTRIBUTES, null) : {};
  const resource: Record<string, string> = {
    ...fromEnv,
    'service.name': config.serviceName ?? (env.OTEL_SERVICE_NAME?.trim() || fromEnv['service.name'] || 'nanogate'),
    'service.version': fromEnv['service.version'] ?? version(),
    'service.instance.id': fromEnv['service.instance.id'] ?? (instanceId ??= randomUUID()),
  };

  return {
    endpoint,
    protocol,
    compression,
    headers,
    sampleRate: config.sampleRate,
    batchSize: config.batchSize,
    flushMs: config.flushMs,
    queueLimit: config.queueLimit,
    timeoutMs: config.timeoutMs,
    resource,
  };
}

/**
 * The names access-log lines and spans give to the facts of a request. `otel` follows the OpenTelemetry HTTP
 * semantic conventions (https://opentelemetry.io/docs/specs/semconv/http/http-spans/) where they name the fact, and
 * the `nanogate.` namespace where they do not, so one key means the same in a log line and in a span attribute;
 * `legacy` keeps the names lines had before, for log pipelines that parse them.
 */
export interface LogFieldNames {
  readonly route: string;
  readonly requestId: string;
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly status: string;
  readonly consumer: string;
  readonly plan: string;
  readonly bytesIn: string;
  readonly bytesOut: string;
  readonly upstream: string;
  readonly client: string;
  readonly error: string;
  readonly upstreamError: string;
  readonly phases: string;
  readonly rateLimit: string;
  readonly cache: string;
  readonly traceId: string;
}

export const OTEL_FIELDS: LogFieldNames = Object.freeze({
  route: 'nanogate.route',
  requestId: 'nanogate.request_id',
  method: 'http.request.method',
  path: 'url.path',
  query: 'url.query',
  status: 'http.response.status_code',
  consumer: 'nanogate.consumer',
  plan: 'nanogate.plan',
  bytesIn: 'http.request.body.size',
  bytesOut: 'http.response.body.size',
  upstream: 'nanogate.upstream.node',
  client: 'client.address',
  error: 'error.type',
  upstreamError: 'nanogate.upstream.error',
  phases: 'nanogate.phases_ms',
  rateLimit: 'nanogate.rate_limit',
  cache: 'nanogate.cache.status',
  traceId: 'trace_id',
});

export const LEGACY_FIELDS: LogFieldNames = Object.freeze({
  route: 'route',
  requestId: 'reqId',
  method: 'method',
  path: 'path',
  query: 'query',
  status: 'status',
  consumer: 'consumer',
  plan: 'plan',
  bytesIn: 'bytesIn',
  bytesOut: 'bytesOut',
  upstream: 'upstream',
  client: 'client',
  error: 'error',
  upstreamError: 'upstreamError',
  phases: 'phases',
  rateLimit: 'rateLimit',
  cache: 'cache',
  traceId: 'traceId',
});

/**
 * The `http.route` of a route: its path template as written (`/users/:id`, `/static/*`), a prefix as `<prefix>/*`,
 * `null` for a route that matches on other things than the path. Low-cardinality by construction: it comes from the
 * config, never from a request.
 */
export function routeTemplate(match: { path?: string; prefix?: string }): string | null {
  if (match.path !== undefined) return match.path;
  if (match.prefix !== undefined) return match.prefix === '/' ? '/*' : `${match.prefix.replace(/\/+$/, '')}/*`;
  return null;
}

/** `server.address` from a Host header: the host without its port (`[::1]:8080` gives `::1`); '' when absent. */
export function hostOnly(host: string): string {
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf(']');
    return close > 0 ? host.slice(1, close) : host;
  }
  const colon = host.indexOf(':');
  return colon < 0 ? host : host.slice(0, colon);
}

/** `server.port` from a Host header, or 0 when it names none. */
export function hostPort(host: string): number {
  const colon = host.lastIndexOf(':');
  if (colon < 0 || host.indexOf(']', colon) > 0) return 0;
  const port = Number(host.slice(colon + 1));
  return Number.isInteger(port) && port > 0 && port < 65536 ? port : 0;
}

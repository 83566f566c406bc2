/**
 * Every error the gateway itself answers with has a stable code here. Codes are never reused or renamed:
 * clients and dashboards match on them. docs/errors.md lists the same table, and a unit test keeps the two in step.
 */
export interface ErrorSpec {
  readonly status: number;
  readonly title: string;
}

export const ERRORS = {
  NG_ERR_ROUTE_NOT_FOUND: { status: 404, title: 'No route matches the request' },
  NG_ERR_ROUTE_METHOD_NOT_ALLOWED: { status: 405, title: 'The route does not accept this method' },
  NG_ERR_ROUTE_DISABLED: { status: 503, title: 'The route is disabled by an operator' },
  NG_ERR_REQUEST_BAD_FRAMING: { status: 400, title: 'Ambiguous or invalid message framing' },
  NG_ERR_REQUEST_BAD_HEADER: { status: 400, title: 'Invalid header' },
  NG_ERR_REQUEST_BAD_PATH: { status: 400, title: 'Invalid request target' },
  NG_ERR_REQUEST_URL_TOO_LONG: { status: 414, title: 'Request target too long' },
  NG_ERR_REQUEST_HEADERS_TOO_LARGE: { status: 431, title: 'Request header fields too large' },
  NG_ERR_REQUEST_BODY_TOO_LARGE: { status: 413, title: 'Request body too large' },
  NG_ERR_REQUEST_TRANSFER_CODING: { status: 501, title: 'Unsupported transfer coding' },
  NG_ERR_UPSTREAM_CONNECT: { status: 502, title: 'Upstream refused or failed the connection' },
  NG_ERR_UPSTREAM_RESET: { status: 502, title: 'Upstream closed the connection before responding' },
  NG_ERR_UPSTREAM_BAD_RESPONSE: { status: 502, title: 'Upstream sent an invalid response' },
  NG_ERR_UPSTREAM_TIMEOUT: { status: 504, title: 'Upstream did not respond in time' },
  NG_ERR_UPSTREAM_UNAVAILABLE: { status: 503, title: 'No upstream node is available' },
  NG_ERR_UPSTREAM_CIRCUIT_OPEN: { status: 503, title: 'The upstream is failing; its circuit breaker is open' },
  NG_ERR_UPSTREAM_OVERLOADED: { status: 503, title: 'The upstream is at its concurrency limit and its queue is full' },
  NG_ERR_UPSTREAM_QUEUE_TIMEOUT: { status: 503, title: 'The request waited too long for a free upstream slot' },
  NG_ERR_ROUTE_OVERLOADED: { status: 503, title: 'The route is at its concurrency limit' },
  NG_ERR_REQUEST_DEADLINE: { status: 504, title: 'The request deadline passed before an upstream answered' },
  NG_ERR_REQUEST_BODY_TIMEOUT: { status: 408, title: 'The request body arrived too slowly' },
  NG_ERR_GATEWAY_DRAINING: { status: 503, title: 'The gateway is shutting down' },
  NG_ERR_GATEWAY_INTERNAL: { status: 500, title: 'Internal gateway error' },
  NG_ERR_GATEWAY_BODY_FILTER: { status: 500, title: 'A response body filter failed mid-response' },
  NG_ERR_RATE_LIMITED: { status: 429, title: 'Too many requests; retry after the time given in Retry-After' },
  NG_ERR_RATE_QUOTA_EXCEEDED: { status: 429, title: 'The quota for this period is used up' },
  NG_ERR_RATE_UNAVAILABLE: { status: 503, title: 'The cluster rate-limit store is unreachable' },
  NG_ERR_ACCESS_IP_DENIED: { status: 403, title: 'The client address may not call this route' },
  NG_ERR_ACCESS_CORS_REJECTED: { status: 403, title: 'The cross-origin request is not allowed' },
  NG_ERR_AUTH_MISSING: { status: 401, title: 'No credentials were presented' },
  NG_ERR_AUTH_MALFORMED: { status: 401, title: 'The credentials are malformed' },
  NG_ERR_AUTH_EXPIRED: { status: 401, title: 'The credentials have expired or are not yet valid' },
  NG_ERR_AUTH_BAD_SIGNATURE: { status: 401, title: 'The token signature does not verify' },
  NG_ERR_AUTH_UNKNOWN_KEY: { status: 401, title: 'The credentials name an unknown key' },
  NG_ERR_AUTH_UNKNOWN_CONSUMER: { status: 401, title: 'The credentials belong to no known consumer' },
  NG_ERR_AUTH_INVALID: { status: 401, title: 'The credentials were rejected' },
  NG_ERR_AUTH_UNAVAILABLE: { status: 503, title: 'The identity provider could not be reached' },
  NG_ERR_AUTHZ_FORBIDDEN: { status: 403, title: 'The consumer may not call this route' },
  NG_ERR_AGGREGATE_FAILED: { status: 502, title: 'The parts of an aggregate answer could not be fetched' },
  NG_ERR_AGGREGATE_PART_STATUS: { status: 502, title: 'A part of an aggregate answered with an error status' },
  NG_ERR_AGGREGATE_PART_TIMEOUT: { status: 504, title: 'A part of an aggregate did not answer in time' },
  NG_ERR_AGGREGATE_PART_INVALID_JSON: { status: 502, title: 'A part of an aggregate did not answer with JSON' },
  NG_ERR_AGGREGATE_PART_TOO_LARGE: { status: 502, title: 'A part of an aggregate answered with a body over its limit' },
  NG_ERR_TRANSFORM_BODY_TOO_LARGE: { status: 413, title: 'The request body is larger than this route transforms' },
  NG_ERR_TRANSFORM_BAD_JSON: { status: 400, title: 'The request body is not valid JSON' },
  NG_ERR_TRANSFORM_BAD_ENCODING: { status: 415, title: 'The request body has a content coding this route cannot decode' },
  NG_ERR_TRANSFORM_UPSTREAM_TOO_LARGE: { status: 502, title: 'The upstream response body is larger than this route transforms' },
  NG_ERR_TRANSFORM_UPSTREAM_BAD_JSON: { status: 502, title: 'The upstream response body is not valid JSON' },
  NG_ERR_TRANSFORM_UPSTREAM_ENCODING: { status: 502, title: 'The upstream response body has a content coding this route cannot transform' },
  NG_ERR_TRANSFORM_FAILED: { status: 500, title: 'The body could not be transformed' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

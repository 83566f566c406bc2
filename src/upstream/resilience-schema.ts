import { Type, type Static } from '@sinclair/typebox';

/**
 * Config of an upstream's health: active checks run by the control plane (`healthCheck`, off unless set) and
 * passive outlier detection from real traffic (`outlierDetection`, on by default for refused, reset and timed-out
 * attempts, as nginx's max_fails=1 fail_timeout=10s is). docs/resilience.md explains every knob and the Envoy and
 * APISIX names for it.
 */

const Status = Type.Union([Type.Integer({ minimum: 100, maximum: 599 }), Type.String({ pattern: '^[1-5][0-9]{2}-[1-5][0-9]{2}$' })], {
  description: 'a status (200) or an inclusive range ("200-399")',
});

export const HealthCheckSchema = Type.Object(
  {
    type: Type.Union([Type.Literal('http'), Type.Literal('tcp')], { default: 'http', description: 'http: a request that must answer an expected status; tcp: a connect' }),
    method: Type.Union([Type.Literal('GET'), Type.Literal('HEAD'), Type.Literal('OPTIONS')], { default: 'GET', description: 'request method of an http check' }),
    path: Type.String({ pattern: '^/', default: '/', description: 'request target of an http check' }),
    host: Type.Optional(Type.String({ minLength: 1, description: 'Host header of an http check (default: the node host:port)' })),
    expectedStatuses: Type.Array(Status, { minItems: 1, default: ['200-399'], description: 'answers that count as healthy' }),
    bodyContains: Type.Optional(Type.String({ minLength: 1, description: 'an http check passes only when the body (first 64 KiB) contains this' })),
    intervalMs: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 5000, description: 'ms between checks of one node' }),
    timeoutMs: Type.Integer({ minimum: 10, maximum: 60_000, default: 1000, description: 'a check not answered in this many ms fails' }),
    healthyThreshold: Type.Integer({ minimum: 1, maximum: 100, default: 2, description: 'passes in a row that make a down node healthy' }),
    unhealthyThreshold: Type.Integer({ minimum: 1, maximum: 100, default: 2, description: 'failures in a row that make a node down' }),
    jitterMs: Type.Integer({ minimum: 0, maximum: 60_000, default: 250, description: 'random extra delay per check, up to this many ms, so nodes are not all probed at once' }),
    concurrency: Type.Integer({ minimum: 1, maximum: 256, default: 8, description: 'checks of this upstream in flight at once' }),
  },
  { additionalProperties: false, description: 'active health checks, run by the control plane; a node is never probed twice at once' },
);

export const OutlierSchema = Type.Object(
  {
    consecutiveGatewayFailures: Type.Integer({
      minimum: 0,
      maximum: 1000,
      default: 1,
      description: 'refused, reset or timed-out attempts in a row that eject a node (0: off); nginx ejects at the first (max_fails=1)',
    }),
    consecutive5xx: Type.Integer({ minimum: 0, maximum: 1000, default: 0, description: '5xx answers in a row that eject a node (0: off, the default: a 5xx may be the application\'s answer)' }),
    baseEjectionMs: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 10000, description: 'first ejection time; the n-th ejection in a row lasts n times this' }),
    maxEjectionMs: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 300000, description: 'cap of the growing ejection time' }),
    maxEjectionPercent: Type.Integer({ minimum: 0, maximum: 100, default: 50, description: 'most nodes ejected at once, in percent (one node may always be ejected)' }),
    jitterPercent: Type.Integer({ minimum: 0, maximum: 100, default: 10, description: 'random extra ejection time, in percent of it, so ejected nodes do not all return at once' }),
    successRate: Type.Optional(
      Type.Object(
        {
          intervalMs: Type.Integer({ minimum: 1000, maximum: 3_600_000, default: 10000, description: 'how often success rates are compared (and their counts restart)' }),
          minRequests: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 100, description: 'attempts a node needs in the interval to be judged' }),
          minNodes: Type.Integer({ minimum: 2, maximum: 10_000, default: 3, description: 'nodes with enough attempts needed before any is judged' }),
          stdevFactor: Type.Number({ minimum: 0.1, maximum: 10, default: 1.9, description: 'a node below mean − stdevFactor × stdev of the success rates is ejected' }),
        },
        { additionalProperties: false, description: 'success-rate outliers (Envoy success_rate_*): off unless set' },
      ),
    ),
    trialRequests: Type.Integer({
      minimum: 1,
      maximum: 100,
      default: 1,
      description: 'without active checks, an ejected node comes back after its ejection time taking this many requests at a time until one succeeds',
    }),
  },
  { additionalProperties: false, default: {}, description: 'passive health from real traffic, shared by all workers' },
);

export type HealthCheckConfig = Static<typeof HealthCheckSchema>;
export type OutlierConfig = Static<typeof OutlierSchema>;

/** `expectedStatuses` as a 600-entry lookup (plain array: structured-clone safe for the plan). */
export function statusTable(statuses: readonly (number | string)[]): boolean[] {
  const ok: boolean[] = new Array(600).fill(false);
  for (const s of statuses) {
    if (typeof s === 'number') ok[s] = true;
    else {
      const [a, b] = s.split('-').map(Number);
      for (let i = Math.min(a, b); i <= Math.max(a, b); i++) ok[i] = true;
    }
  }
  return ok;
}

const RetryOn = Type.Union(
  [
    Type.Literal('connect-failure'),
    Type.Literal('reset'),
    Type.Literal('timeout'),
    Type.Integer({ minimum: 500, maximum: 599 }),
  ],
  { description: 'connect-failure (refused or timed-out connect), reset (closed before any response byte), timeout (no response head in time), or a 5xx status' },
);

export const RetrySchema = Type.Object(
  {
    attempts: Type.Integer({ minimum: 0, maximum: 10, default: 2, description: 'retries after the first try (0: none); each on another node when there is one' }),
    on: Type.Array(RetryOn, { default: ['connect-failure', 'reset'], uniqueItems: true, description: 'which failures are retried' }),
    nonIdempotent: Type.Boolean({
      default: false,
      description: 'also retry POST/PATCH (and other non-idempotent methods) on failures other than connect-failure; a connect failure is always safe to retry, since nothing reached the node',
    }),
    backoffBaseMs: Type.Integer({ minimum: 0, maximum: 60_000, default: 25, description: 'first backoff; doubles per retry, with full jitter' }),
    backoffMaxMs: Type.Integer({ minimum: 0, maximum: 60_000, default: 250, description: 'backoff cap' }),
    perTryTimeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 3_600_000, description: 'response-head timeout of each try (default: the read timeout), always inside timeouts.requestMs' })),
    maxBodyBytes: Type.Integer({ minimum: 0, maximum: 67_108_864, default: 1_048_576, description: 'a request body is replayed on a retry only when it was held whole and is at most this large' }),
  },
  { additionalProperties: false, default: {}, description: 'retries of this route; never after the response started streaming to the client' },
);

export const RetryBudgetSchema = Type.Object(
  {
    percent: Type.Number({ minimum: 0, maximum: 100, default: 20, description: 'retries in flight or in backoff may be at most this share of the requests in flight, across all workers' }),
    minConcurrency: Type.Integer({ minimum: 0, maximum: 100_000, default: 3, description: 'retries always allowed at once, whatever the share' }),
  },
  { additionalProperties: false, default: {}, description: 'caps retries so that a failing upstream cannot multiply the load (Envoy retry_budget)' },
);

export const RequestBodySchema = Type.Object(
  {
    bufferBytes: Type.Integer({
      minimum: 0,
      maximum: 67_108_864,
      default: 1_048_576,
      description: 'a request body up to this size is read whole before an upstream connection is taken, so a slow client never holds one; larger bodies stream',
    }),
    minBytesPerSecond: Type.Integer({ minimum: 0, maximum: 1_073_741_824, default: 1024, description: 'a body arriving slower than this on average (after graceMs) gets 408 and its connection closed (0: no minimum)' }),
    graceMs: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 5000, description: 'time before the minimum rate applies' }),
  },
  { additionalProperties: false, default: {}, description: 'how request bodies are read from clients' },
);

export type RetryConfig = Static<typeof RetrySchema>;
export type RetryBudgetConfig = Static<typeof RetryBudgetSchema>;
export type RequestBodyConfig = Static<typeof RequestBodySchema>;

export const CircuitBreakerSchema = Type.Object(
  {
    errorPercent: Type.Integer({ minimum: 1, maximum: 100, default: 50, description: 'opens when failures (gateway errors and 5xx) reach this share of the calls in the window' }),
    slowPercent: Type.Integer({ minimum: 1, maximum: 100, default: 100, description: 'opens when slow calls reach this share (100 with slowCallMs unset: off)' }),
    slowCallMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 3_600_000, description: 'a call whose response head took longer than this is slow' })),
    windowMs: Type.Integer({ minimum: 1000, maximum: 3_600_000, default: 10000, description: 'rolling window the shares are taken over (10 buckets)' }),
    minRequests: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 20, description: 'calls in the window before the breaker may open' }),
    openMs: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 5000, description: 'time open (answering 503 at once) before probes are let through' }),
    halfOpenRequests: Type.Integer({ minimum: 1, maximum: 1000, default: 3, description: 'probe requests admitted across all workers while half-open; all must pass to close' }),
  },
  { additionalProperties: false, description: 'circuit breaker of the upstream, shared by all workers' },
);

export const QueueSchema = Type.Object(
  {
    size: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 0, description: 'requests that may wait for a free slot (per worker); beyond it 503 at once' }),
    maxWaitMs: Type.Integer({ minimum: 1, maximum: 3_600_000, default: 1000, description: 'longest wait in the queue in ms (never past the route deadline), then 503' }),
  },
  { additionalProperties: false, default: {}, description: 'where requests wait when maxConcurrent is reached (size 0, the default: no queue, 503 at once)' },
);

export const FallbackSchema = Type.Union(
  [
    Type.Object(
      {
        status: Type.Integer({ minimum: 200, maximum: 599, description: 'status of the fallback answer' }),
        // optional without a schema default: defaults are not filled inside a union, compile fills these in
        headers: Type.Optional(
          Type.Record(Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" }), Type.String(), {
            secret: false,
            description: 'headers of the fallback answer, by name (none when left out)',
          }),
        ),
        body: Type.Optional(Type.String({ description: 'body of the fallback answer, sent as written (empty when left out)' })),
      },
      { additionalProperties: false, description: 'a fixed answer' },
    ),
    Type.Object(
      { upstream: Type.String({ minLength: 1, description: 'another upstream that takes the request instead' }) },
      { additionalProperties: false, description: 'another upstream' },
    ),
  ],
  { description: 'answer used when the circuit is open, no node could take the request, or the deadline passed before a response started' },
);

export type CircuitBreakerConfig = Static<typeof CircuitBreakerSchema>;
export type QueueConfig = Static<typeof QueueSchema>;
export type FallbackConfig = Static<typeof FallbackSchema>;

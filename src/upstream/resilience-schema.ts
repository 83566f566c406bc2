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
    method: Type.Union([Type.Literal('GET'), Type.Literal('HEAD'), Type.Literal('OPTIONS')], { default: 'GET' }),
    path: Type.String({ pattern: '^/', default: '/', description: 'request target of an http check' }),
    host: Type.Optional(Type.String({ minLength: 1, description: 'Host header of an http check (default: the node host:port)' })),
    expectedStatuses: Type.Array(Status, { minItems: 1, default: ['200-399'], description: 'answers that count as healthy' }),
    bodyContains: Type.Optional(Type.String({ minLength: 1, description: 'an http check passes only when the body (first 64 KiB) contains this' })),
    intervalMs: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 5000, description: 'time between checks of one node' }),
    timeoutMs: Type.Integer({ minimum: 10, maximum: 60_000, default: 1000, description: 'a check not answered in this time fails' }),
    healthyThreshold: Type.Integer({ minimum: 1, maximum: 100, default: 2, description: 'passes in a row that make a down node healthy' }),
    unhealthyThreshold: Type.Integer({ minimum: 1, maximum: 100, default: 2, description: 'failures in a row that make a node down' }),
    jitterMs: Type.Integer({ minimum: 0, maximum: 60_000, default: 250, description: 'random extra delay per check, so nodes are not all probed at once' }),
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

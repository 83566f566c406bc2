import type { ConfigIssue } from '../config/errors.js';
import type { SharedRegistry } from '../shared/registry.js';
import { rateLimitPolicy, type CheckData, type RateLimitData } from '../policies/rate-limit/index.js';
import type { WebSocketRouteConfig } from './schema.js';
import { TABLE_BYTES } from './connection-table.js';
import { METRICS_BYTES } from './metrics.js';

/** A route's `websocket` section as the workers get it: limits resolved, shared regions attached. */
export interface PlanWebSocket {
  readonly maxMessageBytes: number;
  /** per-connection token bucket: tokens per second and bucket size (0: no limit) */
  readonly messagesPerSecond: number;
  readonly burst: number;
  /** per-consumer message limit as a rateLimit check (the policy's shared store), or null */
  readonly consumerMessages: CheckData | null;
  readonly maxConnectionsPerConsumer: number;
  /** the consumer connection table (connection-table.ts), or null without maxConnectionsPerConsumer */
  readonly connections: SharedArrayBuffer | null;
  readonly idleTimeoutMs: number;
  readonly maxLifetimeMs: number;
  readonly pingIntervalMs: number;
  readonly backpressureBytes: number;
  /** lower-case prefix of the bearer-token subprotocol, or null */
  readonly tokenSubprotocol: string | null;
  /** the route's counters (metrics.ts) */
  readonly metrics: SharedArrayBuffer;
}

/**
 * Compiles a route's `websocket` section. The per-consumer message limit is a rateLimit token bucket keyed by
 * consumer, compiled by that policy so that it counts in the same shared store (exact across the node's workers).
 */
export function compileWebSocket(
  ws: WebSocketRouteConfig | undefined,
  routeName: string,
  methods: readonly string[] | undefined,
  where: string,
  config: unknown,
  shared: SharedRegistry,
  issues: ConfigIssue[],
): PlanWebSocket | null {
  if (ws === undefined) return null;
  if (methods !== undefined && !methods.includes('GET')) {
    issues.push({ path: `${where}.websocket`, message: 'a WebSocket upgrade is a GET request, but match.methods does not list GET', hint: 'add GET to match.methods, or leave methods out' });
  }
  const burst = ws.burst ?? ws.messagesPerSecond;
  let consumerMessages: CheckData | null = null;
  if (ws.consumerMessagesPerSecond > 0) {
    const data = rateLimitPolicy.compile!(
      {
        limits: [{ key: 'consumer', algorithm: 'tokenBucket', rate: ws.consumerMessagesPerSecond, per: 'second', burst: ws.burst ?? ws.consumerMessagesPerSecond, scope: 'local' }],
        headers: { draft: false, legacy: false },
        warnAt: [],
        onRedisDown: 'failOpen',
        tableSize: 16384,
        cost: 'request',
      },
      { routeName, where: `${where}.websocket.consumerMessagesPerSecond`, config, shared: (key, bytes) => shared.get(`websocket-messages:${routeName}:${key}`, bytes) },
    ) as RateLimitData;
    consumerMessages = data.base.limits[0];
  }
  return {
    maxMessageBytes: ws.maxMessageBytes,
    messagesPerSecond: ws.messagesPerSecond,
    burst,
    consumerMessages,
    maxConnectionsPerConsumer: ws.maxConnectionsPerConsumer,
    connections: ws.maxConnectionsPerConsumer > 0 ? shared.get(`websocket-connections:${routeName}`, TABLE_BYTES) : null,
    idleTimeoutMs: ws.idleTimeoutMs,
    maxLifetimeMs: ws.maxLifetimeMs,
    pingIntervalMs: ws.pingIntervalMs,
    backpressureBytes: ws.backpressureBytes,
    tokenSubprotocol: ws.tokenSubprotocol?.toLowerCase() ?? null,
    metrics: shared.get(`websocket-metrics:${routeName}`, METRICS_BYTES),
  };
}

import { Type, type Static } from '@sinclair/typebox';

/**
 * The `websocket` section of a route: the route takes WebSocket upgrades and relays messages both ways to a
 * WebSocket upstream (ws:// for an http:// node, wss:// for an https:// one). Without the section an upgrade request
 * is forwarded as a plain GET, as before. See docs/websocket.md.
 */

/** uWS buffers a whole message before the gateway sees it, up to this many bytes; a route's limit is at most this. */
export const MESSAGE_CEILING = 16 * 1024 * 1024;

const Ms = (min: number, def: number, description: string) => Type.Integer({ minimum: min, maximum: 86_400_000, default: def, description });

export const WebSocketRouteSchema = Type.Object(
  {
    maxMessageBytes: Type.Integer({
      minimum: 1,
      maximum: MESSAGE_CEILING,
      default: 1_048_576,
      description: 'largest message (after reassembly of its fragments) either side may send; a larger one closes the connection with 1009',
    }),
    messagesPerSecond: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 0, description: 'messages per second a client may send on one connection (token bucket, bursts up to `burst`); beyond it the connection is closed with 1008. 0: no limit' }),
    burst: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'bucket size of messagesPerSecond and consumerMessagesPerSecond (default: the rate)' })),
    consumerMessagesPerSecond: Type.Integer({
      minimum: 0,
      maximum: 1_000_000,
      default: 0,
      description: "messages per second one consumer (anonymous clients: one client address) may send over all its connections on this route, counted across the node's workers with the rateLimit policy's shared store; beyond it the connection that sent the message is closed with 1008. 0: no limit",
    }),
    maxConnectionsPerConsumer: Type.Integer({
      minimum: 0,
      maximum: 1_000_000,
      default: 0,
      description: 'open connections one consumer (anonymous clients: one client address) may hold on this route on this node; one more is refused with 429 NG_ERR_WS_TOO_MANY_CONNECTIONS. 0: no limit',
    }),
    idleTimeoutMs: Ms(0, 300_000, 'a connection with no message either way for this long is closed with 1001 (pings do not count; 1 s resolution). 0: no idle timeout'),
    maxLifetimeMs: Ms(0, 0, 'a connection open this long is closed with 1001, whatever its traffic (1 s resolution). 0: no limit'),
    pingIntervalMs: Ms(0, 30_000, 'a ping goes to the client and to the upstream this often; a side that has not answered the previous ping by the next one is taken for dead and the connection is closed. 0: no heartbeat'),
    backpressureBytes: Type.Integer({
      minimum: 16_384,
      maximum: 64 * 1024 * 1024,
      default: 1_048_576,
      description:
        'bytes waiting for a slow side before the gateway acts: past it toward the client, the upstream is no longer read until the client drains; past it toward the upstream the client cannot be paused (uWS reads every message), so a client that keeps sending past twice this bound is closed with 1013',
    }),
    tokenSubprotocol: Type.Optional(
      Type.String({
        pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$',
        maxLength: 64,
        // a prefix, not a credential: the tokens come from clients
        secret: false,
        description:
          'prefix of a Sec-WebSocket-Protocol entry that carries a bearer token (browsers cannot set Authorization on a WebSocket), e.g. "bearer." for "bearer.<token>": the access phase sees it as Authorization: Bearer <token>, and the entry is not sent to the upstream',
      }),
    ),
  },
  {
    additionalProperties: false,
    description: 'take WebSocket upgrades on this route and relay messages both ways (docs/websocket.md); without it an upgrade is forwarded as a plain GET',
  },
);

export type WebSocketRouteConfig = Static<typeof WebSocketRouteSchema>;

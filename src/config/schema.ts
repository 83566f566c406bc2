import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Predicate } from './predicate-schema.js';
import { POLICIES } from '../policies/index.js';
import { WebSocketRouteSchema } from '../websocket/schema.js';
import { RedisSchema } from '../shared/redis-config.js';
import { ConsumerRegistrySchema, ConsumersSchema } from '../identity/schema.js';
import { ObservabilitySchema } from '../observe/schema.js';
import { DiscoveryConfigSchema } from '../discovery/schema.js';
import { BalancerSchema, BalancingSchema } from '../upstream/balancers/schema.js';
import { TrafficSchema } from '../traffic/schema.js';
import { AggregateSchema } from '../aggregate/schema.js';
import { MirrorSchema } from '../traffic/mirror-schema.js';
import { ListenerTlsSchema, UpstreamTlsSchema } from '../tls/schema.js';
import { Http2ListenSchema } from '../node-listener/schema.js';
import { CircuitBreakerSchema, FallbackSchema, HealthCheckSchema, OutlierSchema, QueueSchema, RequestBodySchema, RetryBudgetSchema, RetrySchema } from '../upstream/resilience-schema.js';

/**
 * The one schema of a nanogate config file. It is the source of the TypeScript types (Static<>), of validation
 * (Ajv, with defaults filled in and unknown keys refused), of config/schema.json for editor completion
 * (`nanogate schema`, src/config/editor-schema.ts) and of docs/config-reference.md (`nanogate schema --markdown`).
 * Defaults live here and nowhere else. Every property has a description (what it does, its unit, what happens
 * when it is left out): editors show it on hover and the reference prints it; a unit test refuses one without.
 */

const Millis = (def: number, description: string) => Type.Integer({ minimum: 1, maximum: 3_600_000, default: def, description });
const Name = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', description: 'letters, digits, dot, dash, underscore' });
const HeaderName = (description: string) => Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", maxLength: 256, description });
const Cidr = Type.String({ minLength: 2, maxLength: 64, description: 'an IPv4 or IPv6 address or CIDR block' });

const Listen = Type.Object(
  {
    host: Type.String({ default: '0.0.0.0', minLength: 1, description: 'address the workers listen on: 0.0.0.0 for every IPv4 interface, 127.0.0.1 for this machine only' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080, description: 'TCP port of the gateway; 0 picks a free one' }),
    tls: Type.Optional(ListenerTlsSchema),
    http2: Type.Optional(Http2ListenSchema),
    reusePort: Type.Boolean({
      default: false,
      description:
        'share host:port with another process that already listens there with SO_REUSEPORT (another nanogate): the kernel then splits new connections between them. Off: start refuses a port that is already in use. The workers of one gateway always share its port.',
    }),
  },
  { additionalProperties: false, default: {}, description: 'where the gateway takes client traffic' },
);

const Admin = Type.Object(
  {
    host: Type.String({ default: '127.0.0.1', minLength: 1, description: 'address of the admin API; any address but loopback requires a token' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 9901, description: 'TCP port of the admin API (status, /metrics, config, drain)' }),
    token: Type.Optional(Type.String({ minLength: 16, secret: true, description: 'bearer token; required when host is not loopback' })),
    auditLog: Type.String({
      default: 'stderr',
      minLength: 1,
      description: 'where admin changes are recorded as JSON lines: a file path, or "stderr" (through the gateway log)',
    }),
    history: Type.Integer({ minimum: 1, maximum: 100, default: 10, description: 'applied configs kept for rollback' }),
  },
  { additionalProperties: false, default: {}, description: 'the admin API on its own port: status, metrics, config apply and rollback, route and node switches (docs/admin-api.md)' },
);

const Status = Type.Object(
  {
    host: Type.String({ default: '127.0.0.1', minLength: 1, description: 'address the status listener binds (0.0.0.0 or a pod IP to reach it from outside the host)' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, description: 'a port of its own (not admin.port or listen.port); 0: any free port' }),
  },
  {
    additionalProperties: false,
    description:
      'a read-only listener for probes and scrapers: GET /health, /ready and /metrics without the admin token, nothing else (the admin API stays on admin.port). It has no authentication: bind it where only your probes and Prometheus reach it.',
  },
);

const Reload = Type.Object(
  {
    watch: Type.Boolean({ default: true, description: 'reload when the config file changes (also after an atomic rename)' }),
    debounceMs: Type.Integer({ minimum: 10, maximum: 60000, default: 250, description: 'quiet time after the last change before reloading' }),
  },
  { additionalProperties: false, default: {}, description: 'hot reload of the config file (SIGHUP always reloads)' },
);

const Limits = Type.Object(
  {
    maxUrlLength: Type.Integer({ secret: false, minimum: 64, maximum: 65536, default: 8192, description: 'longest request target (path and query) in bytes; longer ones get 414' }),
    maxHeaderBytes: Type.Integer({ minimum: 1024, maximum: 1048576, default: 32768, description: 'largest request header section in bytes; larger ones get 431' }),
    maxHeaderCount: Type.Integer({ minimum: 8, maximum: 48, default: 48, description: 'more header fields (Host included) get 431; the front end cannot take more than 48: such a request gets no answer and its connection is closed by the idle timeout (~10 s)' }),
    maxBodyBytes: Type.Integer({ minimum: 0, default: 10485760, description: 'default request body limit in bytes (larger bodies get 413); a route may override' }),
  },
  { additionalProperties: false, default: {}, description: 'size limits on client requests, checked before routing' },
);

const Proxy = Type.Object(
  {
    trustedProxies: Type.Array(Cidr, { default: [], description: 'peers whose X-Forwarded-* headers are trusted and extended' }),
    via: Type.String({ default: 'nanogate', pattern: '^[!-~]+$', description: 'pseudonym this gateway adds to the Via header, both ways' }),
    drainTimeoutMs: Millis(10000, 'ms in-flight requests may take to finish on shutdown before their connections are closed'),
    requestIdHeader: Type.Optional(HeaderName('header that carries the request id: passed through when the client sent one, generated otherwise, and returned in the response (default: x-request-id)')),
  },
  { additionalProperties: false, default: {}, description: 'how requests are forwarded: trusted proxies, Via, request ids, shutdown drain' },
);

const UpstreamNode = Type.Object(
  {
    url: Type.String({ pattern: '^https?://', secret: 'url', description: 'http://host:port or https://host:port (no path)' }),
    weight: Type.Integer({ minimum: 0, maximum: 1000, default: 1, description: '0 takes the node out of rotation' }),
  },
  { additionalProperties: false },
);

const Upstream = Type.Object(
  {
    nodes: Type.Array(UpstreamNode, { default: [], description: 'static nodes; with discovery, the set used until the first answer' }),
    discovery: Type.Optional(DiscoveryConfigSchema),
    balancer: BalancerSchema,
    balancing: BalancingSchema,
    connections: Type.Integer({ minimum: 1, maximum: 4096, default: 128, description: 'keep-alive connections at most per node and per worker; a request finding none free waits for one, up to the connect timeout' }),
    pipelining: Type.Union([Type.Literal('auto'), Type.Integer({ minimum: 1, maximum: 64 })], {
      default: 'auto',
      description:
        'GET/HEAD requests without a body that arrive together may share one connection and one write: auto (each node is probed first and gets batches of up to 32 only if it answers two pipelined requests correctly), 1 (off), or N (up to N, no probe: you vouch for the nodes); plain-HTTP nodes only; see docs/performance.md',
    }),
    pipeliningBounds: Type.Object(
      {
        maxWaitMs: Type.Integer({ minimum: 0, maximum: 60000, default: 20, description: 'a request pipelined behind others waits at most this long for their answers, then it is sent again on a connection of its own (0: no bound)' }),
        slowNodeMs: Type.Integer({ minimum: 0, maximum: 60000, default: 5, description: 'no batches to a node whose latency average (time to the response head) is above this (0: no limit); keep it well below maxWaitMs, or most batches to such a node are sent twice' }),
      },
      { additionalProperties: false, default: {}, description: 'head-of-line limits of pipelining (auto or N)' },
    ),
    keepAliveMs: Millis(4000, 'idle upstream connections are closed after this many ms'),
    protocol: Type.Union([Type.Literal('http1'), Type.Literal('h2'), Type.Literal('h2c')], {
      default: 'http1',
      description:
        'how requests reach the nodes: http1 (HTTP/1.1), h2 (HTTP/2 over TLS, offered by ALPN: https:// nodes only), h2c (HTTP/2 in cleartext with prior knowledge: http:// nodes only); with h2/h2c `connections` is the most sessions per node and per worker, and trailers (gRPC) are relayed; see docs/upstream-http2.md',
    }),
    http2: Type.Object(
      {
        maxConcurrentStreams: Type.Integer({ minimum: 1, maximum: 10000, default: 100, description: 'streams at most in flight on one session (a lower SETTINGS_MAX_CONCURRENT_STREAMS of the node wins); a request finding every session full opens another, up to `connections`, then waits, up to the connect timeout' }),
      },
      { additionalProperties: false, default: {}, description: 'HTTP/2 session limits (protocol h2 or h2c)' },
    ),
    connectTimeoutMs: Millis(2000, 'connect timeout in ms (then 502, or the next node)'),
    readTimeoutMs: Millis(30000, 'ms allowed for the response head, and between body reads (then 504)'),
    tls: Type.Optional(UpstreamTlsSchema),
    healthCheck: Type.Optional(HealthCheckSchema),
    outlierDetection: OutlierSchema,
    circuitBreaker: Type.Optional(CircuitBreakerSchema),
    retryBudget: RetryBudgetSchema,
    maxConcurrent: Type.Integer({ minimum: 0, maximum: 10_000_000, default: 0, description: 'requests in flight to this upstream across all workers (0: no limit); beyond it the queue, then 503' }),
    queue: QueueSchema,
  },
  { additionalProperties: false },
);


const Method = Type.String({ pattern: '^[A-Z]{1,16}$', description: 'an HTTP method in capitals, e.g. GET' });

/** `policies:` on a route or at the top level: one optional key per policy module, with that module's schema. */
const Policies = Type.Object(Object.fromEntries(POLICIES.map((p) => [p.name, Type.Optional(p.schema)])), {
  additionalProperties: false,
  description: 'policies by name; a route-level entry replaces the global one of the same name',
});

const Match = Type.Object(
  {
    path: Type.Optional(
      Type.String({
        pattern: '^/',
        description: 'exact path; segments may be :params, a trailing /* is a wildcard (e.g. /users/:id, /static/*)',
      }),
    ),
    prefix: Type.Optional(Type.String({ pattern: '^/', description: 'matches this path and everything below it' })),
    hosts: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Host header values the route takes: exact (api.example.com) or a wildcard (*.example.com); omitted: any host' })),
    methods: Type.Optional(
      Type.Array(Method, { minItems: 1, description: 'only these methods; omitted: every method. Another method on a matching path gets 405 with Allow' }),
    ),
    headers: Type.Optional(
      Type.Record(HeaderName('a request header name (case does not matter)'), Predicate, {
        secret: false,
        description: 'request headers that must match, by name (all of them): a string for an exact value, or one test',
      }),
    ),
    query: Type.Optional(
      Type.Record(Type.String({ minLength: 1 }), Predicate, {
        description: 'query parameters that must match, by name (all of them): a string for an exact value, or one test',
      }),
    ),
  },
  { additionalProperties: false, description: 'which requests the route takes: a path or a prefix, and optionally hosts, methods, headers and query' },
);

const Route = Type.Object(
  {
    name: Type.String({ ...Name, description: 'the route name, in logs, metrics and the admin API (disable a route by it): letters, digits, dot, dash, underscore' }),
    match: Match,
    upstream: Type.Optional(Type.String({ minLength: 1, description: 'name of the upstream (a key of upstreams) the route forwards to; required unless the route has aggregate' })),
    aggregate: Type.Optional(AggregateSchema),
    priority: Type.Integer({ default: 0, description: 'breaks ties between otherwise equal routes (higher wins)' }),
    stripPrefix: Type.Boolean({ default: false, description: 'remove the matched prefix (or wildcard base) before forwarding' }),
    rewrite: Type.Optional(Type.String({ pattern: '^/', description: 'new upstream path; :params of the match are substituted' })),
    hostHeader: Type.String({
      default: 'upstream',
      minLength: 1,
      description: '"upstream" (node host:port), "preserve" (client Host) or a literal host',
    }),
    timeouts: Type.Optional(
      Type.Object(
        {
          connectMs: Type.Optional(
            Millis(2000, "connect timeout in ms on this route. Without a timeouts section the upstream's connectTimeoutMs applies; in one, leaving this key out gives 2000"),
          ),
          readMs: Type.Optional(
            Millis(30000, "read timeout in ms on this route. Without a timeouts section the upstream's readTimeoutMs applies; in one, leaving this key out gives 30000"),
          ),
          requestMs: Type.Optional(
            Millis(60000, 'deadline in ms of the whole request: queueing, every try and backoff (then 504, or the fallback). Without a timeouts section there is none; in one, leaving this key out gives 60000'),
          ),
        },
        { additionalProperties: false, description: "this route's timeouts, in place of the upstream's" },
      ),
    ),
    maxBodyBytes: Type.Optional(Type.Integer({ minimum: 0, description: 'request body limit in bytes on this route (larger bodies get 413); default: limits.maxBodyBytes' })),
    retries: RetrySchema,
    requestBody: RequestBodySchema,
    maxConcurrent: Type.Integer({ minimum: 0, maximum: 10_000_000, default: 0, description: 'requests in flight on this route across all workers (0: no limit); beyond it 503 at once' }),
    fallback: Type.Optional(FallbackSchema),
    circuitBreaker: Type.Optional({
      ...CircuitBreakerSchema,
      description: "a circuit breaker of this route alone, besides its upstream's: it opens for this route while other routes to the upstream keep being served",
    }),
    traffic: Type.Optional(TrafficSchema),
    policies: Type.Optional(Policies),
    websocket: Type.Optional(WebSocketRouteSchema),
    mirror: Type.Optional(MirrorSchema),
  },
  { additionalProperties: false },
);

export const ConfigSchema = Type.Object(
  {
    $schema: Type.Optional(Type.String({ description: 'path or URL of config/schema.json, for editors; the gateway ignores it' })),
    listen: Listen,
    workers: Type.Union([Type.Literal('auto'), Type.Integer({ minimum: 1, maximum: 256 })], {
      default: 'auto',
      description: 'worker threads serving traffic, all on the listen port: "auto" is one per available core; nanogate start --workers overrides it',
    }),
    admin: Admin,
    status: Type.Optional(Status),
    reload: Reload,
    limits: Limits,
    proxy: Proxy,
    upstreams: Type.Record(Name, Upstream, { default: {}, description: 'the upstream clusters routes forward to, by name' }),
    routes: Type.Array(Route, {
      default: [],
      description: 'the routes; the most specific match wins (host, then path, then priority and conditions), not the order of the list',
    }),
    policies: Type.Optional(Policies),
    consumers: ConsumersSchema,
    consumerRegistry: Type.Optional(ConsumerRegistrySchema),
    redis: Type.Optional(RedisSchema),
    observability: ObservabilitySchema,
    demo: Type.Optional(
      Type.Object(
        {
          enabled: Type.Boolean({ default: true, description: 'false: the section is kept but the demo upstream is not started' }),
          host: Type.String({ default: '127.0.0.1', description: 'address the demo upstream listens on' }),
          port: Type.Integer({ minimum: 0, maximum: 65535, default: 9000, description: 'port of the demo upstream (point an upstream node at it); 0 picks a free port' }),
        },
        { additionalProperties: false, description: 'built-in demo upstream that echoes what it received, started by the control plane; for trying configs out' },
      ),
    ),
  },
  {
    additionalProperties: false,
    $id: 'https://nanogate.dev/schema/config.json',
    title: 'nanogate config',
    description:
      'A nanogate gateway config (YAML or JSON): where it listens, the upstreams and routes, the policies, consumers and observability. Every key is described in docs/config-reference.md.',
  },
);

export type Config = Static<typeof ConfigSchema>;
export type RouteConfig = Static<typeof Route>;
export type UpstreamConfig = Static<typeof Upstream>;
export type PredicateConfig = Static<typeof Predicate>;

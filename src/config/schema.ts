import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { POLICIES } from '../policies/index.js';
import { RedisSchema } from '../shared/redis-config.js';
import { ConsumerRegistrySchema, ConsumersSchema } from '../identity/schema.js';
import { ObservabilitySchema } from '../observe/schema.js';
import { DiscoveryConfigSchema } from '../discovery/schema.js';
import { BalancerSchema, BalancingSchema } from '../upstream/balancers/schema.js';
import { CircuitBreakerSchema, FallbackSchema, HealthCheckSchema, OutlierSchema, QueueSchema, RequestBodySchema, RetryBudgetSchema, RetrySchema } from '../upstream/resilience-schema.js';

/**
 * The one schema of a nanogate config file. It is the source of the TypeScript types (Static<>), of validation
 * (Ajv, with defaults filled in and unknown keys refused) and of config/schema.json for editor completion
 * (`nanogate schema`). Defaults live here and nowhere else.
 */

const Millis = (def: number, description: string) => Type.Integer({ minimum: 1, maximum: 3_600_000, default: def, description });
const Name = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', description: 'letters, digits, dot, dash, underscore' });
const HeaderName = Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", maxLength: 256 });
const Cidr = Type.String({ minLength: 2, maxLength: 64, description: 'an IPv4 or IPv6 address or CIDR block' });

const Tls = Type.Object(
  {
    cert: Type.String({ minLength: 1, description: 'path to the PEM certificate chain' }),
    key: Type.String({ minLength: 1, secret: false, description: 'path to the PEM private key (the path is not secret; the file is)' }),
    passphrase: Type.Optional(Type.String({ secret: true, description: 'passphrase of the private key' })),
  },
  { additionalProperties: false },
);

const Listen = Type.Object(
  {
    host: Type.String({ default: '0.0.0.0', minLength: 1 }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
    tls: Type.Optional(Tls),
    reusePort: Type.Boolean({
      default: false,
      description:
        'share host:port with another process that already listens there with SO_REUSEPORT (another nanogate): the kernel then splits new connections between them. Off: start refuses a port that is already in use. The workers of one gateway always share its port.',
    }),
  },
  { additionalProperties: false, default: {} },
);

const Admin = Type.Object(
  {
    host: Type.String({ default: '127.0.0.1', minLength: 1 }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 9901 }),
    token: Type.Optional(Type.String({ minLength: 16, secret: true, description: 'bearer token; required when host is not loopback' })),
    auditLog: Type.String({
      default: 'stderr',
      minLength: 1,
      description: 'where admin changes are recorded as JSON lines: a file path, or "stderr" (through the gateway log)',
    }),
    history: Type.Integer({ minimum: 1, maximum: 100, default: 10, description: 'applied configs kept for rollback' }),
  },
  { additionalProperties: false, default: {} },
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
    maxUrlLength: Type.Integer({ secret: false, minimum: 64, maximum: 65536, default: 8192, description: 'longer request targets get 414' }),
    maxHeaderBytes: Type.Integer({ minimum: 1024, maximum: 1048576, default: 32768, description: 'larger header sections get 431' }),
    maxHeaderCount: Type.Integer({ minimum: 8, maximum: 48, default: 48, description: 'more header fields (Host included) get 431; the front end cannot take more than 48: such a request gets no answer and its connection is closed by the idle timeout (~10 s)' }),
    maxBodyBytes: Type.Integer({ minimum: 0, default: 10485760, description: 'default request body limit (413); a route may override' }),
  },
  { additionalProperties: false, default: {} },
);

const Proxy = Type.Object(
  {
    trustedProxies: Type.Array(Cidr, { default: [], description: 'peers whose X-Forwarded-* headers are trusted and extended' }),
    via: Type.String({ default: 'nanogate', pattern: '^[!-~]+$', description: 'pseudonym in the Via header' }),
    drainTimeoutMs: Millis(10000, 'how long in-flight requests may take to finish on shutdown'),
    requestIdHeader: Type.Optional(HeaderName),
  },
  { additionalProperties: false, default: {} },
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
    connections: Type.Integer({ minimum: 1, maximum: 4096, default: 128, description: 'per node, per worker' }),
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
    keepAliveMs: Millis(4000, 'idle upstream connections are closed after this'),
    connectTimeoutMs: Millis(2000, 'connect timeout (then 502, or the next node)'),
    readTimeoutMs: Millis(30000, 'time allowed for the response head, and between body reads (then 504)'),
    healthCheck: Type.Optional(HealthCheckSchema),
    outlierDetection: OutlierSchema,
    circuitBreaker: Type.Optional(CircuitBreakerSchema),
    retryBudget: RetryBudgetSchema,
    maxConcurrent: Type.Integer({ minimum: 0, maximum: 10_000_000, default: 0, description: 'requests in flight to this upstream across all workers (0: no limit); beyond it the queue, then 503' }),
    queue: QueueSchema,
  },
  { additionalProperties: false },
);

const Predicate = Type.Union([
  Type.String({ description: 'exact value' }),
  Type.Object(
    {
      exact: Type.Optional(Type.String()),
      prefix: Type.Optional(Type.String()),
      regex: Type.Optional(Type.String()),
      present: Type.Optional(Type.Boolean()),
    },
    { additionalProperties: false, minProperties: 1, maxProperties: 1 },
  ),
]);

const Method = Type.String({ pattern: '^[A-Z]{1,16}$' });

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
    hosts: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'exact or *.example.com' })),
    methods: Type.Optional(Type.Array(Method, { minItems: 1 })),
    headers: Type.Optional(Type.Record(HeaderName, Predicate, { secret: false })),
    query: Type.Optional(Type.Record(Type.String({ minLength: 1 }), Predicate)),
  },
  { additionalProperties: false },
);

const Route = Type.Object(
  {
    name: Name,
    match: Match,
    upstream: Type.String({ minLength: 1 }),
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
          connectMs: Type.Optional(Millis(2000, 'connect timeout')),
          readMs: Type.Optional(Millis(30000, 'read timeout')),
          requestMs: Type.Optional(Millis(60000, 'deadline of the whole request: queueing, every try and backoff (then 504, or the fallback)')),
        },
        { additionalProperties: false },
      ),
    ),
    maxBodyBytes: Type.Optional(Type.Integer({ minimum: 0 })),
    retries: RetrySchema,
    requestBody: RequestBodySchema,
    maxConcurrent: Type.Integer({ minimum: 0, maximum: 10_000_000, default: 0, description: 'requests in flight on this route across all workers (0: no limit); beyond it 503 at once' }),
    fallback: Type.Optional(FallbackSchema),
    circuitBreaker: Type.Optional(CircuitBreakerSchema),
    policies: Type.Optional(Policies),
  },
  { additionalProperties: false },
);

export const ConfigSchema = Type.Object(
  {
    $schema: Type.Optional(Type.String()),
    listen: Listen,
    workers: Type.Union([Type.Literal('auto'), Type.Integer({ minimum: 1, maximum: 256 })], { default: 'auto' }),
    admin: Admin,
    reload: Reload,
    limits: Limits,
    proxy: Proxy,
    upstreams: Type.Record(Name, Upstream, { default: {} }),
    routes: Type.Array(Route, { default: [] }),
    policies: Type.Optional(Policies),
    consumers: ConsumersSchema,
    consumerRegistry: Type.Optional(ConsumerRegistrySchema),
    redis: Type.Optional(RedisSchema),
    observability: ObservabilitySchema,
    demo: Type.Optional(
      Type.Object(
        {
          enabled: Type.Boolean({ default: true }),
          host: Type.String({ default: '127.0.0.1' }),
          port: Type.Integer({ minimum: 0, maximum: 65535, default: 9000 }),
        },
        { additionalProperties: false, description: 'built-in demo upstream, started by the control plane' },
      ),
    ),
  },
  { additionalProperties: false, $id: 'https://nanogate.dev/schema/config.json', title: 'nanogate config' },
);

export type Config = Static<typeof ConfigSchema>;
export type RouteConfig = Static<typeof Route>;
export type UpstreamConfig = Static<typeof Upstream>;
export type PredicateConfig = Static<typeof Predicate>;

/** The JSON Schema users get for editors (config/schema.json). */
export function jsonSchema(): TSchema {
  return JSON.parse(JSON.stringify(ConfigSchema));
}

import { Type, type Static } from '@sinclair/typebox';

/**
 * The config of a discovery source: one object per source kind, joined in DiscoveryConfigSchema by `type`. Defaults
 * live here. Every threshold, interval and time-out must be positive: a 0 would turn a loop into a busy loop or a
 * time-out into "fail at once", so the schema refuses it rather than the source guessing what was meant.
 */

const Seconds = (def: number, min: number, max: number, description: string) =>
  Type.Number({ minimum: min, maximum: max, default: def, description });
const Millis = (def: number, description: string) => Type.Integer({ minimum: 1, maximum: 600_000, default: def, description });
const Port = (description: string) => Type.Integer({ minimum: 1, maximum: 65535, description });
const Weight = Type.Integer({ minimum: 1, maximum: 65535, default: 1, description: 'weight given to every discovered node' });
// host:port, [v6]:port, or a bare address (port 53)
const DnsServer = Type.String({
  pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[0-9]{1,3}(\\.[0-9]{1,3}){3})(:[0-9]{1,5})?$',
  description: 'a resolver address: 127.0.0.1, 127.0.0.1:5353, [::1]:53',
});
const HttpUrl = (def: string | undefined, description: string) =>
  def === undefined ? Type.String({ pattern: '^https?://[^/?#]+/?$', description }) : Type.String({ pattern: '^https?://[^/?#]+/?$', default: def, description });

export const DnsDiscoverySchema = Type.Object(
  {
    type: Type.Literal('dns', { description: 'dns: nodes from DNS records' }),
    name: Type.String({
      minLength: 1,
      maxLength: 253,
      pattern: '^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\\.?$',
      description: 'the name to resolve, e.g. api.internal, or _http._tcp.api.internal for SRV',
    }),
    recordType: Type.Union([Type.Literal('A'), Type.Literal('AAAA'), Type.Literal('A+AAAA'), Type.Literal('SRV')], {
      default: 'A',
      description: 'A / AAAA / both for addresses (port from `port`), or SRV (port, priority and weight from the records)',
    }),
    port: Type.Optional(Port('the port of every address (required for A, AAAA and A+AAAA; not allowed for SRV)')),
    srvTargets: Type.Union([Type.Literal('A'), Type.Literal('AAAA'), Type.Literal('A+AAAA')], {
      default: 'A',
      description: 'SRV only: which address records a target is resolved to',
    }),
    weight: Weight,
    servers: Type.Optional(
      Type.Array(DnsServer, { minItems: 1, maxItems: 8, description: 'resolvers tried in order; default: the system resolvers (/etc/resolv.conf)' }),
    ),
    timeoutMs: Millis(2000, 'ms allowed for one query to one server'),
    attempts: Type.Integer({ minimum: 1, maximum: 10, default: 2, description: 'tries per query, cycling through the servers' }),
    minTtlSeconds: Seconds(5, 0.05, 86400, 'floor on the TTL: a record is re-resolved no sooner than this'),
    maxTtlSeconds: Seconds(300, 0.05, 86400, 'ceiling on the TTL: a record is re-resolved at least this often'),
    retrySeconds: Seconds(5, 0.05, 3600, 'first retry after a failed resolution (doubles up to maxTtlSeconds)'),
  },
  { additionalProperties: false, description: 'nodes from DNS A/AAAA or SRV records, re-resolved when their TTL runs out' },
);
export type DnsDiscoveryConfig = Static<typeof DnsDiscoverySchema>;

export const FileDiscoverySchema = Type.Object(
  {
    type: Type.Literal('file', { description: 'file: nodes from a watched file' }),
    path: Type.String({ minLength: 1, description: 'a JSON or YAML file: {"nodes": [{"host", "port", "weight"?, "zone"?}]} or the bare list' }),
    debounceMs: Millis(100, 'quiet time after a change event before the file is read'),
    pollSeconds: Seconds(5, 0.05, 3600, 're-check period, for file systems where change events are lost'),
  },
  { additionalProperties: false, description: 'nodes from a watched file' },
);
export type FileDiscoveryConfig = Static<typeof FileDiscoverySchema>;

export const ConsulDiscoverySchema = Type.Object(
  {
    type: Type.Literal('consul', { description: "consul: nodes from Consul's health API" }),
    address: HttpUrl('http://127.0.0.1:8500', 'URL of the Consul agent (scheme, host and port)'),
    service: Type.String({ minLength: 1, maxLength: 256, pattern: '^[A-Za-z0-9_.:-]+$', description: 'the Consul service whose instances become nodes' }),
    datacenter: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_.-]+$', description: 'default: the agent\'s own' })),
    tags: Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { default: [], maxItems: 16, description: 'only instances carrying every one of these tags' }),
    passingOnly: Type.Boolean({ default: true, description: 'only instances whose health checks all pass' }),
    token: Type.Optional(Type.String({ minLength: 1, secret: true, description: 'ACL token, sent as X-Consul-Token' })),
    tokenFile: Type.Optional(Type.String({ minLength: 1, secret: false, description: 'a file holding the ACL token (read before every request)' })),
    waitSeconds: Seconds(60, 1, 600, 'how long one blocking query may wait for a change (Consul caps it at 600)'),
    minIntervalMs: Millis(1000, 'pacing of the query loop when answers come back at once (burst of 2, then one per interval)'),
    timeoutMs: Millis(10000, 'slack past waitSeconds (+ Consul\'s wait/16 jitter) before a query counts as hung'),
    retryMinMs: Millis(1000, 'first retry after a failed query'),
    retryMaxMs: Millis(30000, 'longest retry interval (the back-off doubles up to it)'),
  },
  { additionalProperties: false, description: 'nodes from Consul\'s health API, followed with blocking queries' },
);
export type ConsulDiscoveryConfig = Static<typeof ConsulDiscoverySchema>;

export const KubernetesDiscoverySchema = Type.Object(
  {
    type: Type.Literal('kubernetes', { description: "kubernetes: nodes from a Service's EndpointSlices" }),
    apiServer: HttpUrl('https://kubernetes.default.svc', 'URL of the Kubernetes API server (the default works inside a pod)'),
    namespace: Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', description: 'the namespace of the Service' }),
    service: Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', description: 'the Service whose EndpointSlices are followed' }),
    portName: Type.Optional(
      Type.String({ maxLength: 63, description: 'the EndpointSlice port to use, by name; omitted: the slices must carry exactly one port' }),
    ),
    tokenFile: Type.Optional(
      Type.String({ minLength: 1, secret: false, description: 'bearer token file, read before every list and watch (in a pod: /var/run/secrets/kubernetes.io/serviceaccount/token)' }),
    ),
    caFile: Type.Optional(Type.String({ minLength: 1, description: 'PEM CA bundle for an https apiServer; default: the system CAs' })),
    weight: Weight,
    watchSeconds: Seconds(300, 1, 3600, 'server-side time-out of one watch (timeoutSeconds); the watch is then resumed'),
    timeoutMs: Millis(10000, 'time allowed for a list, and for silence on a watch past watchSeconds'),
    retryMinMs: Millis(1000, 'first retry after a failed list or watch'),
    retryMaxMs: Millis(30000, 'longest retry interval (the back-off doubles up to it)'),
  },
  { additionalProperties: false, description: 'nodes from the Kubernetes EndpointSlices of a Service, followed with list + watch' },
);
export type KubernetesDiscoveryConfig = Static<typeof KubernetesDiscoverySchema>;

const DiscoveryUnion = Type.Union([DnsDiscoverySchema, FileDiscoverySchema, ConsulDiscoverySchema, KubernetesDiscoverySchema]);
export type DiscoveryConfig = Static<typeof DiscoveryUnion>;

/**
 * The four kinds as one schema, for embedding in the config schema. It is a `oneOf` with a `discriminator` on `type`
 * rather than TypeBox's `anyOf`: Ajv fills in no defaults inside anyOf/oneOf branches, except for a discriminated oneOf
 * when Ajv is created with `discriminator: true`, which then also reports the errors of the one branch that `type`
 * names. (parseDiscoveryConfig picks the branch itself and needs neither.)
 */
export const DiscoveryConfigSchema = Type.Unsafe<DiscoveryConfig>({
  type: 'object',
  required: ['type'],
  discriminator: { propertyName: 'type' },
  oneOf: [DnsDiscoverySchema, FileDiscoverySchema, ConsulDiscoverySchema, KubernetesDiscoverySchema],
  description: 'where an upstream\'s nodes come from; the last good set keeps serving when the source fails',
});

import { Type, type Static } from '@sinclair/typebox';

/**
 * The schema of one consumer, shared by the `consumers:` config section and the registry document
 * (`{ "consumers": [ ... ] }`), and of the `consumerRegistry:` section.
 */

// Visible ASCII: ids and names travel in identity headers to upstreams.
const Token = (max: number, description: string) => Type.String({ minLength: 1, maxLength: max, pattern: '^[\\x21-\\x7e]+$', description });
// RFC 6749 3.3 scope-token: no space, no double quote, no backslash (scopes are joined by spaces in X-Scopes).
const ScopeToken = Type.String({ minLength: 1, maxLength: 128, pattern: '^[\\x21\\x23-\\x5b\\x5d-\\x7e]+$' });
const Role = Type.String({ minLength: 1, maxLength: 128, pattern: '^[\\x21-\\x2b\\x2d-\\x7e]+$', description: 'visible ASCII without comma' });

const ApiKey = Type.Object(
  {
    key: Type.Optional(
      Type.String({ minLength: 16, maxLength: 512, pattern: '^[\\x21-\\x7e]+$', secret: true, description: 'the key itself; only its SHA-256 digest is kept' }),
    ),
    keySha256: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{64}$', secret: false, description: 'hex SHA-256 digest of the key' })),
  },
  { additionalProperties: false, minProperties: 1, maxProperties: 1, description: 'either key or keySha256' },
);

const JwtMapping = Type.Object(
  {
    issuer: Type.String({ minLength: 1, maxLength: 256, description: 'the token\'s "iss"' }),
    subject: Type.String({ minLength: 1, maxLength: 256, description: 'the token\'s "sub"' }),
  },
  { additionalProperties: false },
);

const CertificateBinding = Type.Object(
  {
    sha256: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{2}(:?[0-9a-fA-F]{2}){31}$', description: 'SHA-256 fingerprint of the certificate, hex (colons allowed), e.g. from: openssl x509 -noout -fingerprint -sha256' })),
    subject: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'the whole subject in certificate order, attributes joined by ", ", e.g. "O=Example, CN=client-a"' })),
    san: Type.Optional(Type.String({ minLength: 3, maxLength: 1024, pattern: '^(DNS|URI|email|IP Address):', description: 'one subjectAltName entry, e.g. "URI:spiffe://example.org/billing" or "DNS:client.example"' })),
  },
  { additionalProperties: false, minProperties: 1, maxProperties: 1, description: 'one of sha256, subject or san' },
);

const Subscription = Type.Union([
  Token(64, 'an API name (a route name, or the api of an authorize policy); "*" = every API'),
  Type.Object(
    {
      api: Token(64, 'an API name; "*" = every API'),
      environment: Type.Optional(Token(64, 'e.g. prod; omitted = every environment')),
    },
    { additionalProperties: false },
  ),
]);

export const ConsumerSchema = Type.Object(
  {
    id: Token(256, 'unique consumer id (sent to upstreams as configured by identityHeaders)'),
    plan: Type.Optional(Token(64, 'plan or tier, e.g. gold')),
    keys: Type.Array(ApiKey, { default: [], secret: false, description: "the consumer's API keys (apiKey authentication), each as the key or its SHA-256 digest" }),
    jwt: Type.Array(JwtMapping, { default: [], description: 'JWT issuer + subject pairs that identify this consumer' }),
    certificates: Type.Array(CertificateBinding, {
      default: [],
      description: 'client certificates (mTLS on listen.http2) that identify this consumer, by fingerprint, subject or SAN (the clientCert auth method; docs/mtls.md)',
    }),
    subscriptions: Type.Array(Subscription, { default: [], description: 'APIs (and environments) the consumer may call' }),
    scopes: Type.Array(ScopeToken, { default: [], description: 'OAuth-style scopes the consumer holds (checked by authorize, sent in identityHeaders.scopes)' }),
    roles: Type.Array(Role, { default: [], description: 'roles the consumer holds (checked by authorize, sent in identityHeaders.roles)' }),
    allowIps: Type.Array(Type.String({ minLength: 2, maxLength: 64 }), {
      default: [],
      description: 'when not empty, the consumer may only call from these addresses or CIDR blocks',
    }),
  },
  { additionalProperties: false },
);
export type ConsumerConfig = Static<typeof ConsumerSchema>;

export const ConsumersSchema = Type.Array(ConsumerSchema, { default: [], description: 'consumers of the APIs, with their credentials' });

export const ConsumerRegistrySchema = Type.Object(
  {
    file: Type.Optional(Type.String({ minLength: 1, description: 'a JSON or YAML file {consumers: [...]}, watched for changes (relative to the config file)' })),
    url: Type.Optional(Type.String({ pattern: '^https?://', secret: 'url', description: 'polled with If-None-Match; 304 keeps the current table' })),
    intervalSeconds: Type.Number({ minimum: 0.05, maximum: 86400, default: 30, description: 'seconds between polls of url, or between re-checks of file (besides change events)' }),
    timeoutMs: Type.Integer({ minimum: 1, maximum: 600000, default: 5000, description: 'ms allowed for one fetch of url; a failed fetch keeps the current table' }),
    headers: Type.Optional(Type.Record(Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" }), Type.String(), { secret: true, description: 'sent with every fetch (e.g. authorization)' })),
  },
  { additionalProperties: false, description: 'a source of consumers besides the config; the last good copy keeps serving when it fails' },
);
export type ConsumerRegistryConfig = Static<typeof ConsumerRegistrySchema>;

/** The registry document: `{ consumers: [...] }`. */
export const RegistryDocumentSchema = Type.Object({ consumers: Type.Array(ConsumerSchema) }, { additionalProperties: true });

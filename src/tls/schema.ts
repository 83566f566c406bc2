import { Type, type Static } from '@sinclair/typebox';

/**
 * TLS settings: the listener's certificates (`listen.tls`) and an upstream's client side (`upstreams.<name>.tls`).
 * File paths are read on the control plane (src/tls/compile.ts); a relative path is taken from the config file's
 * directory. The listener part is front-end neutral: the uWS listener reads it today, and any other listener
 * (node:http2, node:tls) can read the same compiled form (PlanListenerTls).
 */

const Path = (description: string) => Type.String({ minLength: 1, description });
const Passphrase = Type.Optional(Type.String({ secret: true, description: 'passphrase of the private key (an encrypted PEM key)' }));

const ServerCertificate = Type.Object(
  {
    hostnames: Type.Array(Type.String({ minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9*][A-Za-z0-9.*-]*$', description: 'a host name, e.g. api.example.com' }), {
      minItems: 1,
      description: 'SNI names served with this certificate (exact names, as the client sends them)',
    }),
    cert: Path('path to the PEM certificate chain (leaf first)'),
    key: Type.String({ minLength: 1, secret: false, description: 'path to the PEM private key (the path is not secret; the file is)' }),
    passphrase: Passphrase,
  },
  { additionalProperties: false, description: 'a certificate chosen by SNI' },
);

export const ListenerTlsSchema = Type.Object(
  {
    cert: Path('path to the PEM certificate chain of the default certificate (clients without SNI, or with a name no entry of `servers` has)'),
    key: Type.String({ minLength: 1, secret: false, description: 'path to the PEM private key (the path is not secret; the file is)' }),
    passphrase: Passphrase,
    servers: Type.Array(ServerCertificate, { default: [], description: 'more certificates, chosen by the SNI name the client sends' }),
    ciphers: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 2048,
        description: 'OpenSSL cipher list for TLS 1.2 (e.g. ECDHE+AESGCM:ECDHE+CHACHA20); TLS 1.3 suites are not configurable with uWS 20.30; omitted: the OpenSSL default',
      }),
    ),
    dhParams: Type.Optional(Path('path to a PEM file of DH parameters, for DHE cipher suites (ECDHE needs none)')),
    preferLowMemory: Type.Boolean({ default: false, description: 'release TLS buffers of idle connections (less memory per connection, a little more CPU)' }),
    watch: Type.Boolean({ default: true, description: 'reload certificates and keys when their files change: new connections get the new certificate, open ones keep theirs' }),
    expiryWarningDays: Type.Integer({ minimum: 0, maximum: 3650, default: 14, description: 'log a warning (at load, and daily) for a certificate that expires within this many days; 0: never' }),
  },
  { additionalProperties: false, description: 'serve HTTPS (TLS 1.2 and 1.3) with these certificates; omitted: plain HTTP (docs/tls.md)' },
);

export const UpstreamTlsSchema = Type.Object(
  {
    ca: Type.Optional(Path('path to a PEM bundle of the CAs that sign the upstream certificates (replaces the system CAs for this upstream); omitted: the system CAs')),
    servername: Type.Optional(
      Type.String({ minLength: 1, maxLength: 253, description: 'SNI name sent and checked against the upstream certificate; omitted: the node host name (none for an IP address)' }),
    ),
    verify: Type.Boolean({ default: true, description: 'check the upstream certificate chain and name; false accepts any certificate (a warning at every load; testing only)' }),
    cert: Type.Optional(Path('path to a PEM client certificate, for upstreams that require one (mTLS); needs key')),
    key: Type.Optional(Type.String({ minLength: 1, secret: false, description: 'path to the PEM private key of the client certificate (the path is not secret; the file is)' })),
    passphrase: Passphrase,
    minVersion: Type.Union([Type.Literal('TLSv1.2'), Type.Literal('TLSv1.3')], { default: 'TLSv1.2', description: 'lowest TLS version offered to the upstream' }),
  },
  { additionalProperties: false, description: 'TLS to the https:// nodes of this upstream, for proxying and health checks (docs/tls.md)' },
);

export type ListenerTlsConfig = Static<typeof ListenerTlsSchema>;
export type UpstreamTlsConfig = Static<typeof UpstreamTlsSchema>;

import { Type, type Static } from '@sinclair/typebox';

/**
 * `listen.http2`: a second front end on node:http2 (docs/http2.md). It serves HTTP/2 and HTTP/1.1 over TLS on one
 * port (ALPN h2, http/1.1) with the certificates of `listen.tls`, or cleartext HTTP/2 with prior knowledge (h2c),
 * and feeds the same router, policies and upstreams as the uWS listener. Client certificates (mTLS,
 * docs/mtls.md) are verified here: uWS 20.30 cannot hand a peer certificate to JavaScript.
 */

const HeaderName = (description: string) => Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", maxLength: 256, description });
const Mode = Type.Union([Type.Literal('optional'), Type.Literal('required')], {
  description: 'required: a connection without a valid certificate is refused; optional: it is served without a certificate identity (a clientCert auth method then answers 401)',
});

const ClientCertificates = Type.Object(
  {
    ca: Type.String({ minLength: 1, description: 'path to the PEM bundle of the CAs that sign client certificates (relative to the config file)' }),
    mode: Type.Union([Type.Literal('optional'), Type.Literal('required')], { default: 'required', description: Mode.description }),
    hosts: Type.Array(
      Type.Object(
        {
          hostnames: Type.Array(Type.String({ minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9*][A-Za-z0-9.*-]*$' }), { minItems: 1, description: 'SNI names this mode applies to (exact names)' }),
          mode: Mode,
        },
        { additionalProperties: false },
      ),
      { default: [], description: 'a mode per SNI name, in place of `mode` for connections that name one of these hosts' },
    ),
    headers: Type.Object(
      {
        subject: Type.Optional(HeaderName('header that carries the verified certificate subject upstream, e.g. x-client-cert-subject')),
        sha256: Type.Optional(HeaderName('header that carries the SHA-256 fingerprint (lower-case hex) upstream, e.g. x-client-cert-sha256')),
        san: Type.Optional(HeaderName('header that carries the subject alternative names upstream ("DNS:a, URI:spiffe://…")')),
      },
      {
        additionalProperties: false,
        secret: false,
        default: { subject: 'x-client-cert-subject', sha256: 'x-client-cert-sha256' },
        description: 'headers that carry the verified certificate to the upstream; copies sent by the client are always removed',
      },
    ),
  },
  { additionalProperties: false, description: 'verify client certificates (mTLS) on this listener (docs/mtls.md); needs TLS (not h2c)' },
);

export const Http2ListenSchema = Type.Object(
  {
    port: Type.Integer({ minimum: 0, maximum: 65535, description: 'TCP port of the HTTP/2 listener (not listen.port); 0 picks a free one' }),
    host: Type.Optional(Type.String({ minLength: 1, description: 'address it binds; omitted: listen.host' })),
    h2c: Type.Boolean({
      default: false,
      description: 'cleartext HTTP/2 with prior knowledge (no TLS, no HTTP/1.1 on this port), e.g. behind a load balancer that ends TLS; false: TLS with the certificates of listen.tls',
    }),
    maxConcurrentStreams: Type.Integer({ minimum: 1, maximum: 10000, default: 128, description: 'streams a client may open at once on one HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS)' }),
    clientCertificates: Type.Optional(ClientCertificates),
  },
  {
    additionalProperties: false,
    description: 'an HTTP/2 + HTTP/1.1 listener on node:http2 beside the uWS one, same routes and policies (docs/http2.md); served by worker 0',
  },
);

export type Http2ListenConfig = Static<typeof Http2ListenSchema>;

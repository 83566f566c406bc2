import { Type, type Static } from '@sinclair/typebox';
import type { PolicyContext } from '../../pipeline/policy.js';
import { consumerLookup, type ConsumerLookup } from '../../identity/consumers.js';
import { CERT_SAN, CERT_SHA256, CERT_SUBJECT } from '../../identity/normalize.js';
import type { ClientCertificate } from '../../node-listener/client-cert.js';
import { AUTH_FAIL, AUTH_NONE, bindConsumer, type AuthFailure, type AuthMethod, type AuthResult, type Authenticator } from './authenticator.js';

/**
 * Client certificates (mTLS): the certificate the node:http2 listener verified at the handshake
 * (listen.http2.clientCertificates) is mapped to a consumer by its SHA-256 fingerprint, then its whole subject, then
 * each subjectAltName entry (consumers[].certificates). The answer is kept on the connection's certificate for the
 * current table generation, so the requests after the first on a connection cost one comparison. A request without a
 * certificate (the uWS listener, or an optional name on the node listener) is AUTH_NONE: the next method, or 401.
 */
const Schema = Type.Object({}, { additionalProperties: false, secret: false, description: 'the verified client certificate (mTLS on listen.http2), bound to a consumer by consumers[].certificates' });
type Config = Static<typeof Schema>;

function resolve(lookup: ConsumerLookup, cert: ClientCertificate): number {
  let index = lookup.byJwt(CERT_SHA256, cert.sha256);
  if (index < 0) index = lookup.byJwt(CERT_SUBJECT, cert.subject);
  for (let i = 0; index < 0 && i < cert.san.length; i++) index = lookup.byJwt(CERT_SAN, cert.san[i]);
  return index;
}

class ClientCertMethod implements AuthMethod {
  readonly challenge = 'ClientCertificate realm="%REALM%"';
  readonly credentialHeaders: readonly string[] = [];
  readonly credentialQuery: readonly string[] = [];
  readonly synchronous = true;
  readonly #lookup: ConsumerLookup | null;

  constructor(lookup: ConsumerLookup | null) {
    this.#lookup = lookup;
  }

  authenticate(ctx: PolicyContext, failure: AuthFailure): AuthResult {
    const cert = ctx.clientCert;
    if (cert === undefined || cert === null) return AUTH_NONE;
    const lookup = this.#lookup;
    let index = -1;
    if (lookup !== null) {
      const generation = lookup.generation;
      if (cert.consumerGeneration !== generation) {
        cert.consumerIndex = resolve(lookup, cert);
        cert.consumerGeneration = generation;
      }
      index = cert.consumerIndex;
    }
    if (index < 0) {
      failure.code = 'NG_ERR_AUTH_UNKNOWN_CONSUMER';
      failure.detail = 'the client certificate is bound to no consumer';
      return AUTH_FAIL;
    }
    return bindConsumer(ctx, lookup!, index);
  }
}

export const clientCertAuthenticator: Authenticator<Config, null> = {
  kind: 'clientCert',
  schema: Schema,
  compile() {
    return null;
  },
  create(_data, env) {
    return new ClientCertMethod(consumerLookup(env.services));
  },
};

import { createHash } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { request } from 'undici';
import { PolicyConfigError, type CompileContext, type PolicyContext } from '../../pipeline/policy.js';
import type { ConsumerLookup } from '../../identity/consumers.js';
import { AUTH_FAIL, AUTH_NONE, AUTH_PENDING, type AuthDone, type AuthFailure, type AuthMethod, type AuthResult, type Authenticator } from './authenticator.js';
import { TokenCache } from './token-cache.js';
import { SettingsRegistry } from './settings-registry.js';
import { MapConsumerSchema, Rejection, resolveMapConsumer, applyIdentity, bearerToken, consumerTable, fail, rolesOf, scopesOf, type Identity, type MapConsumer } from './bearer.js';

/**
 * Opaque bearer tokens checked by the authorization server (OAuth 2.0 Token Introspection, RFC 7662): the gateway
 * POSTs `token=...` with its client credentials (HTTP Basic, RFC 6749 section 2.3.1) and trusts the answer.
 *
 * Answers are cached per worker, keyed by the raw token: an active token until min(its exp, cacheSeconds); an
 * inactive one for cacheSeconds (it does not come back to life, and a client retrying a revoked token must not turn
 * into a stream of introspection calls). Concurrent requests with the same new token share one call. An endpoint
 * that is down, slow or answers anything but 200 + JSON gives NG_ERR_AUTH_UNAVAILABLE (503), never a 401: the
 * client's token may well be fine.
 */
export const IntrospectionSchema = Type.Object(
  {
    url: Type.String({ minLength: 1, secret: 'url', description: 'the introspection endpoint (http or https)' }),
    clientId: Type.String({ minLength: 1, description: "the gateway's client id at the authorization server" }),
    clientSecret: Type.String({ minLength: 1, secret: true, description: 'its client secret (use ${ENV} interpolation)' }),
    cacheSeconds: Type.Integer({ minimum: 0, maximum: 86400, default: 60, description: 'longest an answer is cached (an active token: never beyond its exp); 0: no cache' }),
    tokenTypeHint: Type.Optional(Type.String({ secret: false, minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.-]+$', description: 'token_type_hint sent along, e.g. access_token' })),
    timeoutMs: Type.Integer({ minimum: 1, maximum: 60000, default: 3000, description: 'ms allowed for one introspection call (then the request is refused with 503)' }),
    cacheSize: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 10000, description: 'answers kept per worker' }),
    maxTokenBytes: Type.Integer({ secret: false, minimum: 16, maximum: 65536, default: 8192, description: 'longer tokens are refused without a call' }),
    issuer: Type.Optional(Type.String({ description: 'issuer used to map the subject to a consumer when the answer has no "iss"' })),
    mapConsumer: MapConsumerSchema,
  },
  { additionalProperties: false, description: 'opaque bearer tokens checked with OAuth 2.0 token introspection (RFC 7662)' },
);
type IntrospectionConfig = Static<typeof IntrospectionSchema>;

export interface IntrospectionData {
  id: string;
  url: string;
  authorization: string;
  /** "&token_type_hint=..." or '' */
  hintParam: string;
  cacheMs: number;
  timeoutMs: number;
  cacheSize: number;
  maxTokenBytes: number;
  issuer: string;
  mapConsumer: MapConsumer;
}

function compileIntrospection(config: IntrospectionConfig, cc: CompileContext): IntrospectionData {
  let url: URL;
  try {
    url = new URL(config.url);
  } catch {
    throw new PolicyConfigError('url', `"${config.url}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new PolicyConfigError('url', 'must be an http or https URL');
  // RFC 6749 section 2.3.1: id and secret are form-urlencoded before they are joined and base64-encoded.
  const basic = Buffer.from(`${formEncode(config.clientId)}:${formEncode(config.clientSecret)}`).toString('base64');
  const data: Omit<IntrospectionData, 'id'> = {
    url: url.href,
    authorization: `Basic ${basic}`,
    hintParam: config.tokenTypeHint ? `&token_type_hint=${formEncode(config.tokenTypeHint)}` : '',
    cacheMs: config.cacheSeconds * 1000,
    timeoutMs: config.timeoutMs,
    cacheSize: config.cacheSize,
    maxTokenBytes: config.maxTokenBytes,
    issuer: config.issuer ?? '',
    mapConsumer: resolveMapConsumer(config.mapConsumer, cc.config),
  };
  return { id: createHash('sha256').update(JSON.stringify(data)).digest('base64url'), ...data };
}

const formEncode = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');

/** A cached "active": false answer. */
class Inactive {
  constructor(readonly expiresAt: number) {}
}

const MAX_RESPONSE_BYTES = 64 * 1024;

/** One configuration's endpoint, cache and calls in flight, in one worker. */
export class Introspector {
  readonly cache: TokenCache<Identity | Inactive>;
  readonly data: IntrospectionData;
  /** calls made to the endpoint by this worker (for tests and status) */
  calls = 0;
  readonly #inflight = new Map<string, Promise<Identity | Inactive | Rejection>>();
  readonly #headers: Record<string, string>;

  constructor(data: IntrospectionData) {
    this.data = data;
    this.cache = new TokenCache(data.cacheSize);
    this.#headers = { authorization: data.authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  }

  /** Resolves (never rejects) to the answer for an uncached token; the answer is cached before it resolves. */
  check(token: string): Promise<Identity | Inactive | Rejection> {
    let p = this.#inflight.get(token);
    if (p !== undefined) return p;
    p = this.#call(token).then((r) => {
      this.#inflight.delete(token);
      if (!(r instanceof Rejection)) this.cache.set(token, r, Date.now());
      return r;
    });
    this.#inflight.set(token, p);
    return p;
  }

  async #call(token: string): Promise<Identity | Inactive | Rejection> {
    const d = this.data;
    this.calls++;
    let doc: Record<string, unknown>;
    try {
      const res = await request(d.url, {
        method: 'POST',
        headers: this.#headers,
        body: `token=${formEncode(token)}${d.hintParam}`,
        headersTimeout: d.timeoutMs,
        bodyTimeout: d.timeoutMs,
        signal: AbortSignal.timeout(d.timeoutMs),
      });
      if (res.statusCode !== 200) {
        await res.body.dump();
        return new Rejection('NG_ERR_AUTH_UNAVAILABLE', `the introspection endpoint answered ${res.statusCode}`);
      }
      let size = 0;
      const chunks: Buffer[] = [];
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > MAX_RESPONSE_BYTES) {
          res.body.destroy();
          return new Rejection('NG_ERR_AUTH_UNAVAILABLE', 'the introspection answer is too large');
        }
        chunks.push(chunk as Buffer);
      }
      const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return new Rejection('NG_ERR_AUTH_UNAVAILABLE', 'the introspection answer is not a JSON object');
      doc = parsed as Record<string, unknown>;
    } catch {
      return new Rejection('NG_ERR_AUTH_UNAVAILABLE', 'the introspection endpoint could not be reached');
    }
    const now = Date.now();
    if (doc.active !== true) return new Inactive(now + d.cacheMs);
    const exp = typeof doc.exp === 'number' ? doc.exp * 1000 : Infinity;
    const subject = typeof doc.sub === 'string' ? doc.sub : typeof doc.client_id === 'string' ? doc.client_id : typeof doc.username === 'string' ? doc.username : null;
    return {
      expiresAt: Math.min(exp, now + d.cacheMs),
      subject,
      issuer: typeof doc.iss === 'string' ? doc.iss : d.issuer,
      scopes: scopesOf(doc),
      roles: rolesOf(doc),
      memo: undefined,
    };
  }
}

/** Per worker and configuration digest: routes with the same settings share one cache (kept across reloads). */
const INTROSPECTORS = new SettingsRegistry<Introspector>();

export function introspector(data: IntrospectionData, plan: object): Introspector {
  return INTROSPECTORS.get(data.id, plan, () => new Introspector(data));
}

export class IntrospectionMethod implements AuthMethod {
  readonly challenge = 'Bearer realm="%REALM%"';
  readonly credentialHeaders: readonly string[] = ['authorization'];
  readonly credentialQuery: readonly string[] = [];
  readonly introspector: Introspector;
  readonly table: ConsumerLookup | null;
  readonly required: boolean;

  constructor(introspector: Introspector, table: ConsumerLookup | null, required: boolean) {
    this.introspector = introspector;
    this.table = table;
    this.required = required;
  }

  authenticate(ctx: PolicyContext, failure: AuthFailure, done: AuthDone): AuthResult {
    const token = bearerToken(ctx.header('authorization'));
    if (token === null) return AUTH_NONE;
    const it = this.introspector;
    if (token.length === 0) return fail(failure, 'NG_ERR_AUTH_MALFORMED', 'the Bearer credentials are empty');
    if (token.length > it.data.maxTokenBytes) return fail(failure, 'NG_ERR_AUTH_MALFORMED', `the token is longer than ${it.data.maxTokenBytes} bytes`);
    const hit = it.cache.get(token, Date.now());
    if (hit !== undefined) return this.#settle(ctx, hit, failure);
    it.check(token).then((out) => {
      let result: typeof AUTH_FAIL | 0;
      try {
        result = this.#settle(ctx, out, failure);
      } catch {
        result = fail(failure, 'NG_ERR_GATEWAY_INTERNAL', 'the consumer lookup failed');
      }
      done(result);
    });
    return AUTH_PENDING;
  }

  #settle(ctx: PolicyContext, out: Identity | Inactive | Rejection, failure: AuthFailure): typeof AUTH_FAIL | 0 {
    if (out instanceof Rejection) return fail(failure, out.code, out.detail);
    if (out instanceof Inactive) return fail(failure, 'NG_ERR_AUTH_INVALID', 'the token is not active');
    return applyIdentity(ctx, out, this.table, this.required, failure);
  }
}

export const introspectionAuthenticator: Authenticator<IntrospectionConfig, IntrospectionData> = {
  kind: 'introspection',
  schema: IntrospectionSchema,
  compile: compileIntrospection,
  create(data, env) {
    return new IntrospectionMethod(introspector(data, env.services), consumerTable(env.services, data.mapConsumer), data.mapConsumer === 'required');
  },
};

import { createHash } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { jwtVerify, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { PolicyConfigError, type CompileContext, type PolicyContext } from '../../pipeline/policy.js';
import type { ConsumerLookup } from '../../identity/consumers.js';
import { AUTH_FAIL, AUTH_NONE, AUTH_PENDING, type AuthDone, type AuthFailure, type AuthMethod, type AuthResult, type Authenticator } from './authenticator.js';
import { ALGS, ALG_NAMES, ASYMMETRIC_ALGS, compileKey, type KeyMaterial } from './jwt-algs.js';
import { ALG_REFUSED, KID_UNKNOWN, KeySet } from './jwt-keys.js';
import { jwksSource, type JwksSource } from './jwks.js';
import { TokenCache } from './token-cache.js';
import { SettingsRegistry } from './settings-registry.js';
import { MapConsumerSchema, Rejection, resolveMapConsumer, applyIdentity, bearerToken, consumerTable, fail, rolesOf, scopesOf, type Identity, type MapConsumer } from './bearer.js';

/**
 * JWT bearer tokens (RFC 7519), signed with a configured key or a key from a JWKS URL, checked with jose.
 *
 * Per request, in order (cheap first, nothing untrusted is parsed before its size is known):
 *   1. `Authorization: Bearer <token>`; no bearer header -> AUTH_NONE (another method or anonymous access may apply)
 *   2. size <= maxTokenBytes, else NG_ERR_AUTH_MALFORMED (before any decoding)
 *   3. the worker's token cache: a token verified before and not expired costs one Map lookup
 *   4. the header: three parts, JSON, `alg` among the accepted ones ("none" never is), `kid` a string
 *   5. keys declared for that alg (and kid), then jose's jwtVerify: signature, exp/nbf with clock skew, iss, aud,
 *      required claims; the result is cached until the token's exp (never longer), at most cacheMaxSeconds
 */
const StringOrList = (description: string) =>
  Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })], { description });

/**
 * An inline JWK: its public members stay visible in the admin API; the members that hold secret or private key
 * material (RFC 7518 sections 6.3.2 and 6.4.1) are marked secret. Private members are refused by compileKey, but a
 * refused config must not quote them either.
 */
const JwkSecret = (description: string) => Type.Optional(Type.String({ secret: true, description }));
const PRIVATE = 'private key material, refused (a verification key is public) and never quoted';
const Jwk = Type.Object(
  {
    k: JwkSecret('oct key: the shared secret, base64url (HS256/384/512)'),
    d: JwkSecret(`RSA private exponent or EC private key; ${PRIVATE}`),
    p: JwkSecret(`RSA first prime factor; ${PRIVATE}`),
    q: JwkSecret(`RSA second prime factor; ${PRIVATE}`),
    dp: JwkSecret(`RSA first factor CRT exponent; ${PRIVATE}`),
    dq: JwkSecret(`RSA second factor CRT exponent; ${PRIVATE}`),
    qi: JwkSecret(`RSA first CRT coefficient; ${PRIVATE}`),
    oth: Type.Optional(Type.Unknown({ secret: true, description: `RSA other primes info; ${PRIVATE}` })),
  },
  { additionalProperties: true, secret: false, description: 'a public JWK, or an oct JWK for HS*' },
);

const KeySchema = Type.Object(
  {
    kid: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'matched against the token header "kid"' })),
    alg: Type.String({ description: `the one algorithm this key verifies: ${ALG_NAMES.join(', ')}` }),
    secret: Type.Optional(Type.String({ minLength: 1, secret: true, description: 'HS256/384/512 shared secret (UTF-8), at least as long as the hash' })),
    publicKeyPem: Type.Optional(Type.String({ minLength: 1, secret: false, description: 'PEM public key (SPKI) for RS*/PS*/ES*/EdDSA' })),
    jwk: Type.Optional(Jwk),
  },
  { additionalProperties: false },
);

export const JwtSchema = Type.Object(
  {
    keys: Type.Optional(Type.Array(KeySchema, { minItems: 1, secret: false, description: 'inline verification keys (or use jwksUrl)' })),
    jwksUrl: Type.Optional(Type.String({ minLength: 1, secret: 'url', description: 'JWKS endpoint (http or https) serving the public keys' })),
    jwksRefreshSeconds: Type.Integer({ minimum: 0, maximum: 86400, default: 60, description: 'least time between two JWKS fetches triggered by unknown kids' }),
    jwksMaxAgeSeconds: Type.Integer({ minimum: 1, maximum: 604800, default: 600, description: 'a JWKS older than this is refreshed in the background' }),
    jwksTimeoutMs: Type.Integer({ minimum: 1, maximum: 60000, default: 3000, description: 'ms allowed for one JWKS fetch; a failed fetch keeps the last good key set' }),
    algorithms: Type.Optional(Type.Array(Type.String(), { minItems: 1, description: 'accepted algorithms (default: those of the inline keys, or every public-key algorithm for a JWKS)' })),
    issuer: Type.Optional(StringOrList('accepted "iss": one value or a list; omitted: any issuer')),
    audience: Type.Optional(StringOrList('accepted "aud": the token must name one of these; omitted: not checked')),
    clockSkewSeconds: Type.Integer({ minimum: 0, maximum: 3600, default: 30, description: 'tolerance for exp and nbf' }),
    requiredClaims: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'claims that must be present, e.g. [exp, sub]' }),
    maxTokenBytes: Type.Integer({ secret: false, minimum: 256, maximum: 65536, default: 8192, description: 'longer tokens are refused before parsing' }),
    cacheSize: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 10000, description: 'verified tokens kept per worker (0: no cache)' }),
    cacheMaxSeconds: Type.Integer({ minimum: 1, maximum: 86400, default: 300, description: 'longest a verified token is cached (never beyond its exp)' }),
    mapConsumer: MapConsumerSchema,
  },
  { additionalProperties: false, description: 'JWT bearer tokens verified with inline keys or a JWKS URL' },
);
type JwtConfig = Static<typeof JwtSchema>;

export interface JwtData {
  /** digest of everything below: workers share one verifier (and its token cache) per distinct configuration */
  id: string;
  keys: KeyMaterial[] | null;
  jwks: { url: string; refreshMs: number; maxAgeMs: number; timeoutMs: number } | null;
  algorithms: string[];
  issuer: string | string[] | undefined;
  audience: string | string[] | undefined;
  clockSkewSeconds: number;
  requiredClaims: string[];
  maxTokenBytes: number;
  cacheSize: number;
  cacheMaxMs: number;
  mapConsumer: MapConsumer;
}

// ------------------------------------------------------------------------------------------------ control plane

function compileJwt(config: JwtConfig, cc: CompileContext): JwtData {
  if ((config.keys === undefined) === (config.jwksUrl === undefined)) {
    throw new PolicyConfigError('', 'give either "keys" (inline) or "jwksUrl"', 'keys: [{ alg: HS256, secret: ${JWT_SECRET} }]  or  jwksUrl: https://idp.example/.well-known/jwks.json');
  }
  if (config.algorithms) {
    config.algorithms.forEach((a, i) => {
      if (!ALGS[a]) throw new PolicyConfigError(`algorithms[${i}]`, `unsupported algorithm "${a}"`, `one of ${ALG_NAMES.join(', ')}`);
    });
  }
  let keys: KeyMaterial[] | null = null;
  let jwks: JwtData['jwks'] = null;
  let algorithms: string[];
  if (config.keys) {
    keys = config.keys.map((k, i) => {
      try {
        return compileKey(k);
      } catch (err) {
        if (err instanceof PolicyConfigError) throw new PolicyConfigError(`keys[${i}]${err.path ? `.${err.path}` : ''}`, err.message, err.hint);
        throw err;
      }
    });
    const kids = new Set<string>();
    keys.forEach((k, i) => {
      if (k.kid === null) return;
      if (kids.has(k.kid)) throw new PolicyConfigError(`keys[${i}].kid`, `kid "${k.kid}" is used twice`);
      kids.add(k.kid);
    });
    const declared = [...new Set(keys.map((k) => k.alg))];
    if (config.algorithms) {
      const off = keys.findIndex((k) => !config.algorithms!.includes(k.alg));
      if (off >= 0) throw new PolicyConfigError(`keys[${off}].alg`, `${keys[off].alg} is not in "algorithms"`);
    }
    algorithms = config.algorithms ?? declared;
  } else {
    let url: URL;
    try {
      url = new URL(config.jwksUrl!);
    } catch {
      throw new PolicyConfigError('jwksUrl', `"${config.jwksUrl}" is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new PolicyConfigError('jwksUrl', 'must be an http or https URL');
    algorithms = config.algorithms ?? ASYMMETRIC_ALGS;
    const symmetric = algorithms.find((a) => ALGS[a].kty === 'oct');
    if (symmetric) throw new PolicyConfigError('algorithms', `${symmetric} needs a shared secret, which a JWKS URL never provides`, 'use inline keys for HS* algorithms');
    jwks = { url: url.href, refreshMs: config.jwksRefreshSeconds * 1000, maxAgeMs: config.jwksMaxAgeSeconds * 1000, timeoutMs: config.jwksTimeoutMs };
  }
  const data: Omit<JwtData, 'id'> = {
    keys,
    jwks,
    algorithms,
    issuer: config.issuer,
    audience: config.audience,
    clockSkewSeconds: config.clockSkewSeconds,
    requiredClaims: config.requiredClaims,
    maxTokenBytes: config.maxTokenBytes,
    cacheSize: config.cacheSize,
    cacheMaxMs: config.cacheMaxSeconds * 1000,
    mapConsumer: resolveMapConsumer(config.mapConsumer, cc.config),
  };
  return { id: createHash('sha256').update(JSON.stringify(data)).digest('base64url'), ...data };
}

// ------------------------------------------------------------------------------------------------ worker

/** Cache key: the last 22 characters of the token, i.e. 132 bits of signature (see TokenCache). */
const JWT_KEY_TAIL = 22;

/**
 * Verifies tokens for one configuration, in one worker: its keys (imported once), its token cache, and the
 * verifications in flight (concurrent requests with the same new token share one check).
 */
export class JwtVerifier {
  readonly cache: TokenCache<Identity>;
  readonly maxTokenBytes: number;
  readonly jwks: JwksSource | null;
  readonly #inflight = new Map<string, Promise<Identity | Rejection>>();
  readonly #accepted: ReadonlySet<string>;
  readonly #options: JWTVerifyOptions;
  readonly #cacheMaxMs: number;
  #inline: KeySet | null = null;
  readonly #inlineReady: Promise<KeySet> | null = null;

  constructor(data: JwtData) {
    this.cache = new TokenCache<Identity>(data.cacheSize, { keyTail: JWT_KEY_TAIL });
    this.maxTokenBytes = data.maxTokenBytes;
    this.#accepted = new Set(data.algorithms);
    this.#cacheMaxMs = data.cacheMaxMs;
    this.#options = {
      algorithms: data.algorithms,
      issuer: data.issuer,
      audience: data.audience,
      clockTolerance: data.clockSkewSeconds,
      requiredClaims: data.requiredClaims,
    };
    if (data.keys !== null) {
      this.jwks = null;
      this.#inlineReady = KeySet.build(data.keys.map((k) => ({ kid: k.kid, algs: [k.alg], jwk: k.jwk }))).then((set) => (this.#inline = set));
    } else {
      const src = jwksSource({ ...data.jwks!, algorithms: data.algorithms });
      if (src.keys === null && !src.fetching) void src.refresh(); // warm before the first request
      this.jwks = src;
    }
  }

  /**
   * Checks a token that is not in the cache. Header problems are answered at once (a Rejection); otherwise the
   * promise resolves (never rejects) to the identity, which is then cached, or to a Rejection.
   */
  verify(token: string): Rejection | Promise<Identity | Rejection> {
    const running = this.#inflight.get(token);
    if (running !== undefined) return running;
    const dot1 = token.indexOf('.');
    const dot2 = dot1 > 0 ? token.indexOf('.', dot1 + 1) : -1;
    if (dot2 < 0 || token.indexOf('.', dot2 + 1) >= 0) return new Rejection('NG_ERR_AUTH_MALFORMED', 'the token is not a JWT (three base64url parts)');
    let header: unknown;
    try {
      header = JSON.parse(Buffer.from(token.slice(0, dot1), 'base64url').toString('utf8'));
    } catch {
      return new Rejection('NG_ERR_AUTH_MALFORMED', 'the token header is not base64url JSON');
    }
    if (header === null || typeof header !== 'object' || Array.isArray(header)) return new Rejection('NG_ERR_AUTH_MALFORMED', 'the token header is not a JSON object');
    const { alg, kid } = header as { alg?: unknown; kid?: unknown };
    if (typeof alg !== 'string') return new Rejection('NG_ERR_AUTH_MALFORMED', 'the token header has no "alg"');
    if (kid !== undefined && typeof kid !== 'string') return new Rejection('NG_ERR_AUTH_MALFORMED', 'the token header "kid" is not a string');
    if (alg.toLowerCase() === 'none') return new Rejection('NG_ERR_AUTH_INVALID', 'unsigned tokens (alg "none") are refused');
    if (!this.#accepted.has(alg)) return new Rejection('NG_ERR_AUTH_INVALID', ALGS[alg] ? `algorithm ${alg} is not accepted here` : 'the token algorithm is not supported');
    const p = this.#verify(token, alg, kid).then((r) => {
      this.#inflight.delete(token);
      if (!(r instanceof Rejection)) this.cache.set(token, r, Date.now());
      return r;
    });
    this.#inflight.set(token, p);
    return p;
  }

  async #verify(token: string, alg: string, kid: string | undefined): Promise<Identity | Rejection> {
    try {
      const keys = await this.#keys(kid, alg);
      if (keys instanceof Rejection) return keys;
      let last: unknown;
      for (let i = 0; i < keys.length; i++) {
        try {
          const { payload } = await jwtVerify(token, keys[i], this.#options);
          return this.#identity(payload);
        } catch (err) {
          last = err;
          // Several candidate keys (no kid): only a signature mismatch moves on to the next one.
          if ((err as { code?: string }).code !== 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') break;
        }
      }
      return rejectionFor(last);
    } catch (err) {
      return rejectionFor(err);
    }
  }

  async #keys(kid: string | undefined, alg: string): Promise<CryptoKey[] | Rejection> {
    const src = this.jwks;
    if (src === null) return selected((this.#inline ?? (await this.#inlineReady!)).select(kid, alg));
    const now = Date.now();
    if (src.keys === null) {
      if (src.fetching || src.mayFetch(now)) await src.refresh();
      if (src.keys === null) return new Rejection('NG_ERR_AUTH_UNAVAILABLE', 'the signing keys could not be fetched from the JWKS endpoint');
    } else if (src.stale(now)) {
      void src.refresh(); // in the background: this token is checked against the set at hand
    }
    let r = src.keys!.select(kid, alg);
    if (r === KID_UNKNOWN && kid !== undefined && (src.fetching || src.mayFetch(now))) {
      await src.refresh(); // a new kid usually means the provider rotated its keys
      r = src.keys!.select(kid, alg);
    }
    return selected(r);
  }

  #identity(payload: JWTPayload): Identity {
    const now = Date.now();
    const exp = typeof payload.exp === 'number' ? payload.exp * 1000 : Infinity;
    return {
      expiresAt: Math.min(exp, now + this.#cacheMaxMs),
      subject: typeof payload.sub === 'string' ? payload.sub : null,
      issuer: typeof payload.iss === 'string' ? payload.iss : '',
      scopes: scopesOf(payload),
      roles: rolesOf(payload),
      memo: undefined,
    };
  }
}

function selected(r: CryptoKey[] | typeof KID_UNKNOWN | typeof ALG_REFUSED): CryptoKey[] | Rejection {
  if (r === KID_UNKNOWN) return new Rejection('NG_ERR_AUTH_UNKNOWN_KEY', 'no verification key matches the token "kid"');
  if (r === ALG_REFUSED) return new Rejection('NG_ERR_AUTH_INVALID', 'the key the token names is not declared for its algorithm');
  return r;
}

/** jose's error codes -> ours. Details name no token content (they also go into WWW-Authenticate). */
function rejectionFor(err: unknown): Rejection {
  const e = err as { code?: string; claim?: string; reason?: string } | undefined;
  switch (e?.code) {
    case 'ERR_JWT_EXPIRED':
      return new Rejection('NG_ERR_AUTH_EXPIRED', 'the token has expired');
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (e.claim === 'nbf') return new Rejection('NG_ERR_AUTH_EXPIRED', 'the token is not valid yet (nbf)');
      if (e.reason === 'missing') return new Rejection('NG_ERR_AUTH_INVALID', `the token lacks the required "${e.claim}" claim`);
      return new Rejection('NG_ERR_AUTH_INVALID', `the token "${e.claim}" claim is not accepted`);
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return new Rejection('NG_ERR_AUTH_BAD_SIGNATURE', 'the token signature does not verify');
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
      return new Rejection('NG_ERR_AUTH_MALFORMED', 'the token is not a well-formed JWT');
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return new Rejection('NG_ERR_AUTH_INVALID', 'the token algorithm or header is not accepted');
    default:
      return new Rejection('NG_ERR_AUTH_INVALID', 'the token was rejected');
  }
}

/** Verifiers per configuration digest, per worker: routes with the same settings share one token cache. */
const VERIFIERS = new SettingsRegistry<JwtVerifier>();

export function jwtVerifier(data: JwtData, plan: object): JwtVerifier {
  return VERIFIERS.get(data.id, plan, () => new JwtVerifier(data));
}

export class JwtMethod implements AuthMethod {
  readonly challenge = 'Bearer realm="%REALM%"';
  readonly credentialHeaders: readonly string[] = ['authorization'];
  readonly credentialQuery: readonly string[] = [];
  readonly verifier: JwtVerifier;
  readonly table: ConsumerLookup | null;
  readonly required: boolean;

  constructor(verifier: JwtVerifier, table: ConsumerLookup | null, required: boolean) {
    this.verifier = verifier;
    this.table = table;
    this.required = required;
  }

  authenticate(ctx: PolicyContext, failure: AuthFailure, done: AuthDone): AuthResult {
    const token = bearerToken(ctx.header('authorization'));
    if (token === null) return AUTH_NONE;
    const v = this.verifier;
    if (token.length === 0) return fail(failure, 'NG_ERR_AUTH_MALFORMED', 'the Bearer credentials are empty');
    if (token.length > v.maxTokenBytes) return fail(failure, 'NG_ERR_AUTH_MALFORMED', `the token is longer than ${v.maxTokenBytes} bytes`);
    const hit = v.cache.get(token, Date.now());
    if (hit !== undefined) return applyIdentity(ctx, hit, this.table, this.required, failure);
    const r = v.verify(token);
    if (r instanceof Rejection) return fail(failure, r.code, r.detail);
    r.then((out) => {
      let result: typeof AUTH_FAIL | 0;
      try {
        result = out instanceof Rejection ? fail(failure, out.code, out.detail) : applyIdentity(ctx, out, this.table, this.required, failure);
      } catch {
        result = fail(failure, 'NG_ERR_GATEWAY_INTERNAL', 'the consumer lookup failed');
      }
      done(result);
    });
    return AUTH_PENDING;
  }
}

export const jwtAuthenticator: Authenticator<JwtConfig, JwtData> = {
  kind: 'jwt',
  schema: JwtSchema,
  compile: compileJwt,
  create(data, env) {
    return new JwtMethod(jwtVerifier(data, env.services), consumerTable(env.services, data.mapConsumer), data.mapConsumer === 'required');
  },
};

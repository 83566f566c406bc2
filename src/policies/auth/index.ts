import { Type, type Static } from '@sinclair/typebox';
import { CONTINUE, PENDING, PRIORITY, RESPOND, PolicyConfigError, type HookResult, type PolicyContext, type PolicyModule } from '../../pipeline/policy.js';
import { consumerLookup, type ConsumerLookup } from '../../identity/consumers.js';
import { AUTH_FAIL, AUTH_NONE, AUTH_OK, AUTH_PENDING, type AuthDone, type AuthFailure, type AuthMethod, type Authenticator } from './authenticator.js';
import { AUTHENTICATORS } from './methods.js';

/**
 * Authentication for a route: one or more methods (any of them may succeed, tried in the order written), anonymous
 * access allowed or not, credentials hidden from the upstream or not, and the identity passed to the upstream in
 * configured headers. A failure answers 401 with WWW-Authenticate (RFC 9110 section 11.6.1) and an error code that
 * says why: missing, malformed, expired, bad signature, unknown key, unknown consumer. A consumer identified from the
 * consumer table that calls from outside its own allowIps gets 403.
 */
const Methods = Type.Object(Object.fromEntries(AUTHENTICATORS.map((a) => [a.kind, Type.Optional(a.schema)])), {
  additionalProperties: false,
  minProperties: 1,
  description: 'authentication methods by kind; tried in the order written, the first that accepts wins',
});

const HeaderName = Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", maxLength: 256 });
const IdentityHeaders = Type.Object(
  {
    consumerId: Type.Optional({ ...HeaderName, description: "header that carries the consumer's id, e.g. X-Consumer-Id; omitted: not sent" }),
    plan: Type.Optional({ ...HeaderName, description: "header that carries the consumer's plan, e.g. X-Consumer-Plan; omitted: not sent" }),
    scopes: Type.Optional(Type.String({ pattern: HeaderName.pattern, maxLength: 256, description: 'scopes joined by spaces' })),
    roles: Type.Optional(Type.String({ pattern: HeaderName.pattern, maxLength: 256, description: 'roles joined by commas' })),
  },
  {
    additionalProperties: false,
    secret: false,
    description: 'headers that carry the identity to the upstream, e.g. consumerId: X-Consumer-Id; copies sent by the client are always removed',
  },
);

const Schema = Type.Object(
  {
    methods: Methods,
    anonymous: Type.Boolean({ default: false, description: 'let requests without credentials through (consumer stays unset)' }),
    hideCredentials: Type.Boolean({ default: false, secret: false, description: 'remove the credential headers/query parameters before forwarding' }),
    realm: Type.String({ default: 'nanogate', pattern: '^[^"\\\\\\r\\n]*$', description: 'realm named in the WWW-Authenticate header of 401 answers' }),
    identityHeaders: Type.Optional(IdentityHeaders),
  },
  // secret: false: the policy's settings; its credentials are marked in the method schemas
  { additionalProperties: false, secret: false, description: 'authenticate requests with API keys, JWTs, token introspection or client certificates (clientCert: mTLS on listen.http2)' },
);
type Config = Static<typeof Schema>;

interface IdentityNames {
  consumerId: string | null;
  plan: string | null;
  scopes: string | null;
  roles: string | null;
}

interface Data {
  methods: { kind: string; data: unknown }[];
  anonymous: boolean;
  hideCredentials: boolean;
  realm: string;
  identity: IdentityNames;
}

const BY_KIND = new Map<string, Authenticator>(AUTHENTICATORS.map((a) => [a.kind, a]));
const MANAGED = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'te', 'trailer', 'upgrade', 'via', 'x-forwarded-for']);

/** Runs kept per hook for reuse: one request in flight per run, so a burst of asynchronous ones needs more. */
const MAX_FREE_RUNS = 64;

/**
 * One request's pass through the methods. Pooled per hook and reused, so the common (synchronous) case allocates
 * nothing; an asynchronous method keeps its run (its `failure` and `done`) until it calls done.
 */
class AuthRun {
  ctx: PolicyContext | null = null;
  index = 0;
  readonly failure: AuthFailure = { code: 'NG_ERR_AUTH_MISSING', detail: '' };
  readonly done: AuthDone;
  constructor(hook: AuthHook) {
    this.done = (r, f) => hook.resumed(this, r, f);
  }
}

/** Header values must not carry CR, LF or other controls; a JWT subject is client-chosen text. */
function headerSafe(v: string): string {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return encodeURIComponent(v);
  }
  return v;
}

class AuthHook {
  readonly #methods: AuthMethod[];
  readonly #anonymous: boolean;
  readonly #challengeHeaders: readonly string[];
  /** each method's challenge with the realm filled in */
  readonly #challenges: readonly string[];
  readonly #lookup: ConsumerLookup | null;
  readonly #identity: IdentityNames;
  /** identity header names a client might send (removed from every request) */
  readonly #strip: readonly string[];
  /** credentials to hide (empty unless hideCredentials) */
  readonly #hideHeaders: readonly string[];
  readonly #hideQuery: readonly string[];
  readonly #free: AuthRun[] = [];
  // Last joined scope/role lists: the table hands out the same array per consumer, so a repeat skips the join.
  #scopesOf: readonly string[] | null = null;
  #scopesText = '';
  #rolesOf: readonly string[] | null = null;
  #rolesText = '';

  constructor(methods: AuthMethod[], data: Data, lookup: ConsumerLookup | null) {
    this.#methods = methods;
    this.#anonymous = data.anonymous;
    this.#lookup = lookup;
    this.#identity = data.identity;
    this.#challenges = methods.map((m) => m.challenge.replace('%REALM%', data.realm));
    this.#challengeHeaders = ['www-authenticate', this.#challenges.join(', ')];
    const id = data.identity;
    this.#strip = [id.consumerId, id.plan, id.scopes, id.roles].filter((n): n is string => n !== null);
    this.#hideHeaders = data.hideCredentials ? [...new Set(methods.flatMap((m) => m.credentialHeaders))] : [];
    this.#hideQuery = data.hideCredentials ? [...new Set(methods.flatMap((m) => m.credentialQuery))] : [];
  }

  readonly access = (ctx: PolicyContext): HookResult => {
    // Before anything else, so that no path (anonymous, failure) forwards a client's own X-Consumer-Id.
    const strip = this.#strip;
    for (let i = 0; i < strip.length; i++) if (ctx.header(strip[i]) !== undefined) ctx.removeUpstreamHeader(strip[i]);
    const run = this.#free.pop() ?? new AuthRun(this);
    run.ctx = ctx;
    run.index = 0;
    run.failure.code = 'NG_ERR_AUTH_MISSING';
    run.failure.detail = '';
    return this.#loop(run);
  };

  #loop(run: AuthRun): HookResult {
    const methods = this.#methods;
    const ctx = run.ctx!;
    while (run.index < methods.length) {
      const r = methods[run.index].authenticate(ctx, run.failure, run.done);
      if (r === AUTH_PENDING) return PENDING;
      if (r !== AUTH_NONE) return this.#finish(run, r);
      run.index++;
    }
    return this.#finish(run, AUTH_NONE);
  }

  /** `done` of an asynchronous method: go on with the next method or finish, then resume the pipeline. */
  resumed(run: AuthRun, r: typeof AUTH_OK | typeof AUTH_NONE | typeof AUTH_FAIL, f?: AuthFailure): void {
    const ctx = run.ctx;
    if (ctx === null) return; // a second call of done: the contract says once; ignore
    if (f !== undefined) {
      run.failure.code = f.code;
      run.failure.detail = f.detail;
    }
    if (ctx.aborted) return this.#release(run);
    let out: HookResult;
    if (r === AUTH_NONE) {
      run.index++;
      out = this.#loop(run);
      if (out === PENDING) return; // a later method went asynchronous; it resumes itself
    } else {
      out = this.#finish(run, r);
    }
    ctx.resume(out === RESPOND ? RESPOND : CONTINUE);
  }

  #finish(run: AuthRun, r: number): typeof CONTINUE | typeof RESPOND {
    const ctx = run.ctx!;
    let out: typeof CONTINUE | typeof RESPOND = CONTINUE;
    if (r === AUTH_OK) {
      const lookup = this.#lookup;
      if (ctx.consumerIndex >= 0 && lookup !== null && !lookup.allowsIp(ctx.consumerIndex, ctx.clientIp)) {
        ctx.respondProblem('NG_ERR_AUTHZ_FORBIDDEN', 'this consumer may not call from this address');
        out = RESPOND;
      } else {
        this.#hideCredentials(ctx);
        this.#setIdentity(ctx);
      }
    } else if (r !== AUTH_NONE || !this.#anonymous) {
      const f = run.failure;
      if (r === AUTH_NONE) {
        f.code = 'NG_ERR_AUTH_MISSING';
        f.detail = 'this route requires credentials';
      }
      ctx.respondProblem(f.code, f.detail, r === AUTH_FAIL ? this.#failureChallenge(run.index, f) : this.#challengeHeaders);
      out = RESPOND;
    }
    this.#release(run);
    return out;
  }

  /**
   * RFC 6750 section 3: a refused bearer token gets error="invalid_token" and a description in the failing method's
   * challenge (not when the identity provider was unreachable: the token may be fine). Only on this failure path.
   */
  #failureChallenge(index: number, f: AuthFailure): readonly string[] {
    const own = this.#challenges[index];
    if (own === undefined || !own.startsWith('Bearer ') || f.code === 'NG_ERR_AUTH_UNAVAILABLE') return this.#challengeHeaders;
    const parts = this.#challenges.slice();
    parts[index] = `${own}, error="invalid_token", error_description="${f.detail.replace(/["\\\x00-\x1f\x7f-\uffff]/g, '')}"`;
    return ['www-authenticate', parts.join(', ')];
  }

  #release(run: AuthRun): void {
    run.ctx = null;
    if (this.#free.length < MAX_FREE_RUNS) this.#free.push(run);
  }

  #hideCredentials(ctx: PolicyContext): void {
    const headers = this.#hideHeaders;
    for (let i = 0; i < headers.length; i++) if (ctx.header(headers[i]) !== undefined) ctx.removeUpstreamHeader(headers[i]);
    const query = this.#hideQuery;
    if (query.length > 0 && ctx.query.length > 0) for (let i = 0; i < query.length; i++) ctx.removeUpstreamQueryParam(query[i]);
  }

  #setIdentity(ctx: PolicyContext): void {
    const names = this.#identity;
    if (names.consumerId !== null && ctx.consumerId !== null) ctx.setUpstreamHeader(names.consumerId, headerSafe(ctx.consumerId));
    if (names.plan !== null && ctx.consumerPlan !== null) ctx.setUpstreamHeader(names.plan, headerSafe(ctx.consumerPlan));
    const scopes = ctx.scopes;
    if (names.scopes !== null && scopes !== null && scopes.length > 0) {
      if (scopes !== this.#scopesOf) {
        this.#scopesOf = scopes;
        this.#scopesText = headerSafe(scopes.join(' '));
      }
      ctx.setUpstreamHeader(names.scopes, this.#scopesText);
    }
    const roles = ctx.roles;
    if (names.roles !== null && roles !== null && roles.length > 0) {
      if (roles !== this.#rolesOf) {
        this.#rolesOf = roles;
        this.#rolesText = headerSafe(roles.join(','));
      }
      ctx.setUpstreamHeader(names.roles, this.#rolesText);
    }
  }
}

export const authPolicy: PolicyModule<Config, Data> = {
  name: 'auth',
  priority: PRIORITY.authentication,
  schema: Schema,
  description: 'authenticate requests with API keys, JWTs or token introspection',
  compile(config, cc) {
    const methods: Data['methods'] = [];
    for (const [kind, cfg] of Object.entries(config.methods)) {
      const a = BY_KIND.get(kind);
      if (!a) throw new PolicyConfigError(`methods.${kind}`, `unknown authentication method "${kind}"`);
      try {
        methods.push({ kind, data: a.compile ? a.compile(cfg, { ...cc, where: `${cc.where}.methods.${kind}` }) : cfg });
      } catch (err) {
        if (err instanceof PolicyConfigError) throw new PolicyConfigError(`methods.${kind}${err.path ? `.${err.path}` : ''}`, err.message, err.hint);
        throw err;
      }
    }
    const ih = config.identityHeaders ?? {};
    const seen = new Map<string, string>();
    const name = (key: keyof IdentityNames): string | null => {
      const raw = ih[key];
      if (raw === undefined) return null;
      const lower = raw.toLowerCase();
      if (MANAGED.has(lower)) throw new PolicyConfigError(`identityHeaders.${key}`, `"${raw}" is managed by the gateway and cannot carry an identity`);
      const other = seen.get(lower);
      if (other) throw new PolicyConfigError(`identityHeaders.${key}`, `"${raw}" is already used for ${other}`);
      seen.set(lower, key);
      return lower;
    };
    const identity: IdentityNames = { consumerId: name('consumerId'), plan: name('plan'), scopes: name('scopes'), roles: name('roles') };
    return { methods, anonymous: config.anonymous, hideCredentials: config.hideCredentials, realm: config.realm, identity };
  },
  create(data, env) {
    const methods = data.methods.map((m) => BY_KIND.get(m.kind)!.create(m.data, env));
    return { access: new AuthHook(methods, data, consumerLookup(env.services)).access };
  },
};

export { AUTH_OK, AUTH_NONE, AUTH_FAIL, AUTH_PENDING };

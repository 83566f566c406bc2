import { Type, type Static } from '@sinclair/typebox';
import { CONTINUE, PENDING, PRIORITY, RESPOND, PolicyConfigError, type PolicyContext, type PolicyModule } from '../../pipeline/policy.js';
import { AUTH_FAIL, AUTH_NONE, AUTH_OK, AUTH_PENDING, type AuthFailure, type AuthMethod, type Authenticator } from './authenticator.js';
import { AUTHENTICATORS } from './methods.js';

/**
 * Authentication for a route: one or more methods (any of them may succeed, tried in the order written), anonymous
 * access allowed or not, credentials hidden from the upstream or not. A failure answers 401 with WWW-Authenticate
 * (RFC 6750 style) and an error code that says why: missing, malformed, expired, bad signature, unknown key,
 * unknown consumer.
 */
const Methods = Type.Object(Object.fromEntries(AUTHENTICATORS.map((a) => [a.kind, Type.Optional(a.schema)])), {
  additionalProperties: false,
  minProperties: 1,
  description: 'authentication methods by kind; tried in the order written, the first that accepts wins',
});

const Schema = Type.Object(
  {
    methods: Methods,
    anonymous: Type.Boolean({ default: false, description: 'let requests without credentials through (consumer stays unset)' }),
    hideCredentials: Type.Boolean({ default: false, description: 'remove the credential headers/query parameters before forwarding' }),
    realm: Type.String({ default: 'nanogate' }),
  },
  { additionalProperties: false, description: 'authenticate requests with API keys, JWTs or token introspection' },
);
type Config = Static<typeof Schema>;

interface Data {
  methods: { kind: string; data: unknown }[];
  anonymous: boolean;
  hideCredentials: boolean;
  realm: string;
}

const BY_KIND = new Map<string, Authenticator>(AUTHENTICATORS.map((a) => [a.kind, a]));

/** Per-request state of the auth hook, kept in ctx.slots[slot]. */
class AuthRun {
  index = 0;
  readonly failure: AuthFailure = { code: 'NG_ERR_AUTH_MISSING', detail: '' };
  readonly done: (r: number, f?: AuthFailure) => void;
  constructor(readonly ctx: PolicyContext, readonly hook: AuthHook) {
    this.done = (r, f) => {
      if (f) {
        this.failure.code = f.code;
        this.failure.detail = f.detail;
      }
      if (ctx.aborted) return;
      ctx.resume(hook.after(this, r) === RESPOND ? RESPOND : CONTINUE);
    };
  }
}

class AuthHook {
  constructor(
    readonly methods: AuthMethod[],
    readonly anonymous: boolean,
    readonly hide: boolean,
    readonly slot: number,
    readonly challenges: string,
  ) {}

  access = (ctx: PolicyContext) => {
    const run = new AuthRun(ctx, this);
    ctx.slots[this.slot] = run;
    return this.loop(run);
  };

  loop(run: AuthRun): typeof CONTINUE | typeof RESPOND | typeof PENDING {
    while (run.index < this.methods.length) {
      const r = this.methods[run.index].authenticate(run.ctx, run.failure, run.done);
      if (r === AUTH_PENDING) return PENDING;
      if (r !== AUTH_NONE) return this.finish(run, r);
      run.index++;
    }
    return this.finish(run, AUTH_NONE);
  }

  /** After an asynchronous method: go on with the next method or finish. */
  after(run: AuthRun, r: number): typeof CONTINUE | typeof RESPOND {
    if (r === AUTH_NONE) {
      run.index++;
      const next = this.loop(run);
      return next === PENDING ? CONTINUE : next; // PENDING here means a later method took over; it resumes itself
    }
    return this.finish(run, r);
  }

  finish(run: AuthRun, r: number): typeof CONTINUE | typeof RESPOND {
    const ctx = run.ctx;
    if (r === AUTH_OK) {
      if (this.hide) for (const m of this.methods) for (const h of m.credentialHeaders) ctx.removeUpstreamHeader(h);
      return CONTINUE;
    }
    if (r === AUTH_NONE && this.anonymous) return CONTINUE;
    const f = run.failure;
    if (r === AUTH_NONE) {
      f.code = 'NG_ERR_AUTH_MISSING';
      f.detail = 'this route requires credentials';
    }
    ctx.respondProblem(f.code, f.detail, ['www-authenticate', this.challenges]);
    return RESPOND;
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
    return { methods, anonymous: config.anonymous, hideCredentials: config.hideCredentials, realm: config.realm };
  },
  create(data, env) {
    const methods = data.methods.map((m) => BY_KIND.get(m.kind)!.create(m.data, env));
    const challenges = methods.map((m) => m.challenge.replace('%REALM%', data.realm)).join(', ');
    return { access: new AuthHook(methods, data.anonymous, data.hideCredentials, env.slot, challenges).access };
  },
};

export { AUTH_OK, AUTH_NONE, AUTH_FAIL, AUTH_PENDING };

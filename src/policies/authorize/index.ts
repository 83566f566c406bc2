import { Type, type Static } from '@sinclair/typebox';
import { CONTINUE, PRIORITY, RESPOND, PolicyConfigError, type HookResult, type PolicyContext, type PolicyModule } from '../../pipeline/policy.js';
import type { ErrorCode } from '../../errors/codes.js';
import { consumerLookup, type ConsumerLookup } from '../../identity/consumers.js';

/**
 * Authorization, after authentication: may this consumer call this route? It checks, in order, that there is an
 * identity at all, the consumer's subscription to the route's API (and environment), the consumer's own IP allowlist,
 * and required scopes and roles (all of / any of). A refusal is 403 NG_ERR_AUTHZ_FORBIDDEN, or with `hide: true` the
 * same 404 NG_ERR_ROUTE_NOT_FOUND the router gives for a path it does not know, so that callers without access cannot
 * tell the route exists.
 */
const NameOpts = { pattern: '^[\\x21-\\x7e]+$', minLength: 1, maxLength: 128 };
const Name = Type.String(NameOpts);
const Requirement = Type.Object(
  {
    allOf: Type.Optional(Type.Array(Name, { minItems: 1, description: 'every one of these is required' })),
    anyOf: Type.Optional(Type.Array(Name, { minItems: 1, description: 'at least one of these is required' })),
  },
  { additionalProperties: false, minProperties: 1, description: 'allOf, anyOf or both' },
);

const Schema = Type.Object(
  {
    api: Type.Optional(Type.String({ ...NameOpts, description: 'the API this route belongs to, as named in consumer subscriptions (default: the route name)' })),
    environment: Type.Optional(Type.String({ ...NameOpts, description: 'the environment of this gateway, when subscriptions are per environment (e.g. prod)' })),
    subscription: Type.Boolean({ default: true, description: 'require a subscription to the API (false: scopes and roles only)' }),
    scopes: Type.Optional({ ...Requirement, description: "scopes the caller must hold (a token's own when it carries them, else the consumer's): allOf, anyOf or both" }),
    roles: Type.Optional({ ...Requirement, description: "roles the caller must hold (a token's own when it carries them, else the consumer's): allOf, anyOf or both" }),
    hide: Type.Boolean({ default: false, description: 'answer 404 NG_ERR_ROUTE_NOT_FOUND instead of 403, hiding that the route exists' }),
  },
  { additionalProperties: false, description: 'allow a route only to consumers with a subscription, scopes or roles' },
);
type Config = Static<typeof Schema>;

interface Data {
  api: string;
  environment: string | null;
  subscription: boolean;
  scopesAll: string[];
  scopesAny: string[];
  rolesAll: string[];
  rolesAny: string[];
  hide: boolean;
}

const NONE: readonly string[] = [];

function hasAll(have: readonly string[], want: readonly string[]): boolean {
  for (let i = 0; i < want.length; i++) if (!have.includes(want[i])) return false;
  return true;
}

function hasAny(have: readonly string[], want: readonly string[]): boolean {
  if (want.length === 0) return true;
  for (let i = 0; i < want.length; i++) if (have.includes(want[i])) return true;
  return false;
}

class AuthorizeHook {
  readonly #d: Data;
  readonly #lookup: ConsumerLookup | null;
  readonly #code: ErrorCode;
  readonly #environment: string | undefined;

  constructor(d: Data, lookup: ConsumerLookup | null) {
    this.#d = d;
    this.#lookup = lookup;
    this.#code = d.hide ? 'NG_ERR_ROUTE_NOT_FOUND' : 'NG_ERR_AUTHZ_FORBIDDEN';
    this.#environment = d.environment ?? undefined;
  }

  #deny(ctx: PolicyContext, detail: string): typeof RESPOND {
    // Hidden: the router's own words for an unknown path, so nothing tells the two apart.
    ctx.respondProblem(this.#code, this.#d.hide ? `no route for ${ctx.method} ${ctx.path}` : detail);
    return RESPOND;
  }

  readonly access = (ctx: PolicyContext): HookResult => {
    const d = this.#d;
    const id = ctx.consumerId;
    if (id === null) return this.#deny(ctx, 'this route requires an identified consumer');
    const lookup = this.#lookup;
    let index = ctx.consumerIndex;
    // An asynchronous authentication step may have resolved the index in a table that has since been swapped.
    if (index >= 0 && lookup !== null && lookup.id(index) !== id) index = lookup.byId(id);
    if (d.subscription && (index < 0 || lookup === null || !lookup.subscribed(index, d.api, this.#environment))) {
      return this.#deny(ctx, `the consumer has no subscription to API "${d.api}"${d.environment !== null ? ` in ${d.environment}` : ''}`);
    }
    if (index >= 0 && lookup !== null && !lookup.allowsIp(index, ctx.clientIp)) return this.#deny(ctx, 'this consumer may not call from this address');
    if (d.scopesAll.length > 0 || d.scopesAny.length > 0) {
      const have = ctx.scopes ?? NONE;
      if (!hasAll(have, d.scopesAll) || !hasAny(have, d.scopesAny)) return this.#deny(ctx, 'the consumer lacks a required scope');
    }
    if (d.rolesAll.length > 0 || d.rolesAny.length > 0) {
      const have = ctx.roles ?? NONE;
      if (!hasAll(have, d.rolesAll) || !hasAny(have, d.rolesAny)) return this.#deny(ctx, 'the consumer lacks a required role');
    }
    return CONTINUE;
  };
}

export const authorizePolicy: PolicyModule<Config, Data> = {
  name: 'authorize',
  priority: PRIORITY.authorization,
  schema: Schema,
  description: 'allow a route only to consumers with a subscription, scopes or roles',
  compile(config, cc) {
    const api = config.api ?? cc.routeName;
    if (api === null) throw new PolicyConfigError('api', 'needs an API name here', 'set api, or put authorize on the route');
    const whole = cc.config as { policies?: { auth?: unknown }; routes?: { name: string; policies?: { auth?: unknown } }[] };
    const route = whole.routes?.find((r) => r.name === cc.routeName);
    if (route && route.policies?.auth === undefined && whole.policies?.auth === undefined) {
      throw new PolicyConfigError('', 'authorize needs an identity, but this route has no auth policy', 'add policies.auth to the route or at the top level');
    }
    return {
      api,
      environment: config.environment ?? null,
      subscription: config.subscription,
      scopesAll: config.scopes?.allOf ?? [],
      scopesAny: config.scopes?.anyOf ?? [],
      rolesAll: config.roles?.allOf ?? [],
      rolesAny: config.roles?.anyOf ?? [],
      hide: config.hide,
    };
  },
  create(data, env) {
    return { access: new AuthorizeHook(data, consumerLookup(env.services)).access };
  },
};

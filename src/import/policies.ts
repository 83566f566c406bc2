import { type JwtKey, type Obj, sameJwtKey } from './common.js';

/**
 * The nanogate policies of one route (or of the top level) while plugins are being converted. Both converters
 * fill it from their own plugin names; what it adds is the rule that keeps a conversion safe: when a plugin that
 * guards access (authentication, ACLs, IP rules) cannot be converted, the route is left out of the output rather
 * than served without it.
 */
export class PolicyBuilder {
  readonly policies: Obj = {};
  /** why the route must be left out, or null */
  blocked: string | null = null;
  /** a request body limit (413 beyond it): routes[].maxBodyBytes, or limits.maxBodyBytes at the top level */
  maxBodyBytes: number | undefined = undefined;
  #authMethods = 0;

  block(reason: string): void {
    this.blocked ??= reason;
  }

  /** Adds one authentication method to the `auth` policy (several: the first that accepts wins). */
  addAuth(kind: 'apiKey' | 'jwt', method: Obj, opts: { hideCredentials: boolean; anonymous: boolean; identityHeader: string }): void {
    const auth = (this.policies.auth ??= { methods: {} }) as { methods: Obj; hideCredentials?: boolean; anonymous?: boolean; identityHeaders?: Obj };
    auth.methods[kind] = method;
    if (opts.hideCredentials) auth.hideCredentials = true;
    if (opts.anonymous) auth.anonymous = true;
    auth.identityHeaders = { consumerId: opts.identityHeader };
    this.#authMethods++;
  }

  get authMethods(): number {
    return this.#authMethods;
  }

  addLimits(limits: Obj[], quota: Obj | undefined, hideHeaders: boolean): void {
    const rl = (this.policies.rateLimit ??= { limits: [] }) as { limits: Obj[]; quota?: Obj; headers?: Obj };
    rl.limits.push(...limits);
    if (quota) rl.quota = quota;
    if (hideHeaders) rl.headers = { draft: false, legacy: false };
  }

  addHeaders(side: 'request' | 'response', set: Record<string, string>, remove: string[]): void {
    if (!Object.keys(set).length && !remove.length) return;
    const h = (this.policies.headers ??= {}) as Record<string, { set?: Record<string, string>; remove?: string[] }>;
    const s = (h[side] ??= {});
    if (Object.keys(set).length) s.set = { ...s.set, ...set };
    if (remove.length) s.remove = [...new Set([...(s.remove ?? []), ...remove])];
  }
}

/** A jwt credential of a consumer: the issuer it is looked up by, and the key that verifies its tokens. */
export interface JwtCredential {
  consumer: string;
  issuer: string;
  key: JwtKey;
  path: string;
}

/**
 * The one key set of a route's jwt method. nanogate verifies a route's tokens with one set of keys and then maps
 * iss + sub to a consumer; it does not bind a key to an issuer. So a conversion is only safe when every consumer's
 * tokens are verified by the same key (one issuer signing for all, the usual identity-provider setup): with a key
 * per consumer, a consumer holding its own secret could sign a token naming another.
 */
export function sharedJwtKey(credentials: JwtCredential[]): JwtKey | string {
  if (credentials.length === 0) return 'no consumer has a jwt credential to verify tokens with';
  const first = credentials[0].key;
  const other = credentials.find((c) => !sameJwtKey(c.key, first));
  if (other) {
    return `consumers "${credentials[0].consumer}" and "${other.consumer}" have different jwt keys: nanogate verifies a route's tokens with one key set and does not bind a key to an issuer, so one consumer could sign as another; put the tokens behind one issuer (or a JWKS) first`;
  }
  return first;
}

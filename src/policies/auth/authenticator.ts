import type { TSchema } from '@sinclair/typebox';
import type { ErrorCode } from '../../errors/codes.js';
import type { CompileContext, PolicyContext, PolicyEnv } from '../../pipeline/policy.js';
import type { ConsumerLookup } from '../../identity/consumers.js';

/**
 * One way to authenticate (API key, JWT, token introspection). The `auth` policy runs a route's methods in order and
 * the first that accepts wins, so a route can take an API key or a JWT. A method answers:
 *   AUTH_OK       the credential is valid; the method has set ctx.consumerId (and plan, scopes, roles when known)
 *   AUTH_NONE     no credential of this kind in the request: the next method is tried
 *   AUTH_FAIL     a credential of this kind is present and invalid: `failure` says why; no other method is tried
 *   AUTH_PENDING  the method went asynchronous (JWKS fetch, introspection call) and calls `done` exactly once
 */
export const AUTH_OK = 0;
export const AUTH_NONE = 1;
export const AUTH_FAIL = 2;
export const AUTH_PENDING = 3;
export type AuthResult = typeof AUTH_OK | typeof AUTH_NONE | typeof AUTH_FAIL | typeof AUTH_PENDING;

/**
 * The consumer at `index` of the table becomes the request's identity (API key, client certificate). The record is
 * decoded once per consumer and worker, then the same strings and arrays every time: no allocation.
 */
export function bindConsumer(ctx: PolicyContext, lookup: ConsumerLookup, index: number): typeof AUTH_OK {
  const c = lookup.record(index);
  ctx.consumerIndex = index;
  ctx.consumerId = c.id;
  ctx.consumerPlan = c.plan;
  ctx.scopes = c.scopes;
  ctx.roles = c.roles;
  return AUTH_OK;
}

export interface AuthFailure {
  code: ErrorCode;
  detail: string;
}

export type AuthDone = (result: typeof AUTH_OK | typeof AUTH_NONE | typeof AUTH_FAIL, failure?: AuthFailure) => void;

export interface AuthMethod {
  /** the scheme for WWW-Authenticate when this method fails, e.g. 'Bearer realm="api"' or 'ApiKey header="x-api-key"' */
  readonly challenge: string;
  /** the credential headers to remove before forwarding when the route hides credentials (lower case) */
  readonly credentialHeaders: readonly string[];
  /** the credential query parameters to remove before forwarding (hideCredentials) */
  readonly credentialQuery: readonly string[];
  /** true when authenticate never returns AUTH_PENDING (and so never keeps `failure` or `done` past the call) */
  readonly synchronous?: boolean;
  authenticate(ctx: PolicyContext, failure: AuthFailure, done: AuthDone): AuthResult;
}

export interface Authenticator<Config = any, Data = any> {
  /** its key under `policies.auth.methods` */
  readonly kind: string;
  readonly schema: TSchema;
  compile?(config: Config, cc: CompileContext): Data;
  create(data: Data, env: PolicyEnv): AuthMethod;
}

import { Type } from '@sinclair/typebox';
import type { ErrorCode } from '../../errors/codes.js';
import type { PolicyContext } from '../../pipeline/policy.js';
import type { ConsumerLookup } from '../../identity/consumers.js';
import * as identityModule from '../../identity/consumers.js';
import { AUTH_FAIL, AUTH_OK, type AuthFailure } from './authenticator.js';

/**
 * What the bearer-token methods (jwt, introspection) share: reading the token from `Authorization: Bearer`, the
 * identity a checked token yields, and how that identity becomes ctx.consumer* (through the consumer table when
 * there is one).
 */

/** The identity a valid token carries; cached per token until `expiresAt` (ms since the epoch). */
export interface Identity {
  readonly expiresAt: number;
  /** `sub` (or the introspection response's sub / client_id) */
  readonly subject: string | null;
  /** `iss`, '' when absent */
  readonly issuer: string;
  /** `scope` (space separated) or `scp` (array or string); null when the token has neither */
  readonly scopes: readonly string[] | null;
  /** `roles` claim (array of strings); null when absent */
  readonly roles: readonly string[] | null;
  /** the consumer this identity mapped to, kept with the cached token (applyIdentity) */
  memo?: ConsumerMemo;
}

/**
 * What a cached token's issuer and subject resolved to in one consumer table: a later request with the same token
 * reuses it while the lookup still reads that table (a registry swap makes a new table, and the memo is redone).
 */
class ConsumerMemo {
  constructor(
    readonly lookup: ConsumerLookup,
    readonly table: object,
    readonly index: number,
    readonly id: string | null,
    readonly plan: string | null,
    readonly scopes: readonly string[] | null,
    readonly roles: readonly string[] | null,
  ) {}
}

/** Why a token was refused; what the asynchronous checks resolve to instead of throwing. */
export class Rejection {
  constructor(
    readonly code: ErrorCode,
    readonly detail: string,
  ) {}
}

export function fail(failure: AuthFailure, code: ErrorCode, detail: string): typeof AUTH_FAIL {
  failure.code = code;
  failure.detail = detail;
  return AUTH_FAIL;
}

// "bearer" as char codes; compared with | 0x20 so the scheme is case-insensitive (RFC 9110 section 11.1) without
// lower-casing (allocating) the header on every request.
const BEARER = [0x62, 0x65, 0x61, 0x72, 0x65, 0x72];

/**
 * The token of an `Authorization: Bearer <token>` header: null when the header is absent or uses another scheme
 * (another method may take it), '' when the scheme is Bearer but the token is missing.
 */
export function bearerToken(h: string | undefined): string | null {
  if (h === undefined || h.length < 6) return null;
  for (let i = 0; i < 6; i++) if ((h.charCodeAt(i) | 0x20) !== BEARER[i]) return null;
  if (h.length === 6) return '';
  if (h.charCodeAt(6) !== 0x20) return null; // e.g. "Bearerx"
  let start = 7;
  while (start < h.length && h.charCodeAt(start) === 0x20) start++;
  let end = h.length;
  while (end > start && h.charCodeAt(end - 1) === 0x20) end--;
  return start === 7 && end === h.length ? h.slice(7) : h.slice(start, end);
}

/** `scope` "a b c" (RFC 8693 section 4.2 / RFC 9068) or `scp` ["a","b"] / "a b" as a frozen list; null when absent. */
export function scopesOf(claims: Record<string, unknown>): readonly string[] | null {
  const s = claims.scope ?? claims.scp;
  if (typeof s === 'string') return Object.freeze(s.split(' ').filter((x) => x.length > 0));
  if (Array.isArray(s)) return Object.freeze(s.filter((x): x is string => typeof x === 'string'));
  return null;
}

export function rolesOf(claims: Record<string, unknown>): readonly string[] | null {
  const r = claims.roles;
  return Array.isArray(r) ? Object.freeze(r.filter((x): x is string => typeof x === 'string')) : null;
}

/** How a token's issuer + subject relate to the consumer table. */
export const MapConsumerSchema = Type.Union([Type.Literal('auto'), Type.Literal('required'), Type.Literal('optional'), Type.Literal('off')], {
  default: 'auto',
  description:
    '"required": a token whose issuer+subject map to no consumer is refused (NG_ERR_AUTH_UNKNOWN_CONSUMER); ' +
    '"optional": such a token passes with its subject as consumer id; "off": the subject is the consumer id, the table is not consulted; ' +
    '"auto": "required" when some consumer has a jwt mapping or a consumer registry is configured, else "off"',
});
export type MapConsumer = 'required' | 'optional' | 'off';

/** Resolves "auto" against the whole config (compile time). */
export function resolveMapConsumer(mode: MapConsumer | 'auto', config: unknown): MapConsumer {
  if (mode !== 'auto') return mode;
  const c = (config ?? {}) as { consumers?: { jwt?: unknown[] }[]; consumerRegistry?: unknown };
  const mapped = Array.isArray(c.consumers) && c.consumers.some((x) => Array.isArray(x?.jwt) && x.jwt.length > 0);
  return mapped || c.consumerRegistry !== undefined ? 'required' : 'off';
}

/**
 * The worker's consumer table view, or null when there is none. The table module is read through its namespace so
 * that this code works whether or not it exports `consumerLookup` (it is built alongside).
 */
export function consumerTable(services: Record<string, unknown>, mode: MapConsumer): ConsumerLookup | null {
  if (mode === 'off') return null;
  const fn = (identityModule as unknown as Record<string, unknown>).consumerLookup;
  if (typeof fn !== 'function') return null;
  return (fn as (s: Record<string, unknown>) => ConsumerLookup | null)(services) ?? null;
}

/**
 * Sets ctx.consumer* from a checked token. With a consumer table, issuer+subject -> byJwt -> the consumer's id and
 * plan; scopes and roles are the token's when it carries them (the grant of this token), else the consumer's.
 * Without a mapping, the subject is the consumer id and the token's scope/roles claims are taken as they are.
 */
export function applyIdentity(ctx: PolicyContext, id: Identity, table: ConsumerLookup | null, required: boolean, failure: AuthFailure): typeof AUTH_OK | typeof AUTH_FAIL {
  if (table !== null) {
    const current = table.table;
    let m = id.memo;
    if (m === undefined || m.lookup !== table || m.table !== current) {
      const i = id.subject === null ? -1 : table.byJwt(id.issuer, id.subject);
      const c = i < 0 ? null : table.record(i);
      m = c === null ? new ConsumerMemo(table, current, -1, null, null, null, null) : new ConsumerMemo(table, current, i, c.id, c.plan, id.scopes ?? c.scopes, id.roles ?? c.roles);
      id.memo = m;
    }
    if (m.index >= 0) {
      ctx.consumerIndex = m.index;
      ctx.consumerId = m.id;
      ctx.consumerPlan = m.plan;
      ctx.scopes = m.scopes;
      ctx.roles = m.roles;
      return AUTH_OK;
    }
    if (required) return fail(failure, 'NG_ERR_AUTH_UNKNOWN_CONSUMER', 'the token is valid but its subject is not a known consumer');
  }
  ctx.consumerId = id.subject;
  ctx.scopes = id.scopes;
  ctx.roles = id.roles;
  return AUTH_OK;
}

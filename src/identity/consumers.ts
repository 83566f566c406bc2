/**
 * How policies look up consumers. The control plane builds the consumer table (from `consumers:` in the config and
 * from registry sources) into shared memory; workers read it through this interface with no copying.
 * `consumerLookup(env.services)` returns the worker's view of the current table, or null when no consumers exist.
 */
export interface ConsumerLookup {
  /** the generation of the table currently read (changes when a new registry version is swapped in) */
  readonly generation: number;
  /** the table currently read, as an identity to compare: a new object after every swap */
  readonly table: object;
  /** consumer index for an API key given as its SHA-256 digest (32 bytes), or -1 */
  byKeyDigest(digest: Uint8Array): number;
  /** consumer index for a JWT issuer + subject mapping, or -1 */
  byJwt(issuer: string, subject: string): number;
  /** consumer index for a consumer id, or -1 (e.g. to re-resolve an index after a table swap) */
  byId(id: string): number;
  /** id, plan, scopes and roles of a consumer in one lookup */
  record(index: number): { readonly id: string; readonly plan: string | null; readonly scopes: readonly string[]; readonly roles: readonly string[] };
  id(index: number): string;
  plan(index: number): string | null;
  scopes(index: number): readonly string[];
  roles(index: number): readonly string[];
  /** does the consumer hold a subscription to this API (and environment, when given)? */
  subscribed(index: number, api: string, environment?: string): boolean;
  /** the consumer's own IP allowlist (true when it has none) */
  allowsIp(index: number, ip: string): boolean;
}

/** The name under which the consumer table travels in plan.services. */
export const CONSUMERS_SERVICE = 'consumers';

export { consumerLookup } from './lookup.js';

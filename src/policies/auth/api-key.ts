import * as crypto from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import type { PolicyContext } from '../../pipeline/policy.js';
import { PolicyConfigError } from '../../pipeline/policy.js';
import { consumerLookup, type ConsumerLookup } from '../../identity/consumers.js';
import { findQueryParam } from '../../shared/query.js';
import { AUTH_FAIL, AUTH_NONE, bindConsumer, type AuthFailure, type AuthMethod, type AuthResult, type Authenticator } from './authenticator.js';

/**
 * API keys: the key comes in a header (default x-api-key) or a query parameter, its SHA-256 digest is looked up in the
 * shared consumer table (constant-time digest comparison, src/identity/table.ts), and a verified key is remembered
 * per worker so that a repeat costs one Map lookup instead of a hash and a probe.
 */
const Schema = Type.Object(
  {
    header: Type.Optional(Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", maxLength: 256, description: 'header carrying the key (default x-api-key)' })),
    query: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'query parameter carrying the key; when only this is set, the header is not read' })),
  },
  // secret: false: the settings of the method; the keys themselves are consumers[].keys[].key
  { additionalProperties: false, secret: false, description: 'API keys looked up in the consumer table' },
);
type Config = Static<typeof Schema>;

interface Data {
  header: string | null;
  query: string | null;
}

/** Longer values are refused before hashing (the schema caps configured keys at 512 characters). */
const MAX_KEY_LENGTH = 512;

/**
 * Verified keys of this worker: raw key -> consumer index, valid for one table generation. One cache per worker
 * thread (module state is per thread) shared by every route, so a key verified on one route is warm on all, and it
 * survives config reloads that keep the same table. Unknown keys are not cached: a client sending random keys must
 * not be able to push valid ones out. Bounded: when full, the oldest insertion goes (Map keeps insertion order).
 */
export const KEY_CACHE_SIZE = 16_384;
const keyCache = new Map<string, number>();
let keyCacheGeneration = -1;

/** node:crypto's one-shot hash (Node >= 20.12) skips the Hash object; fall back to createHash elsewhere. */
const sha256: (s: string) => Buffer =
  typeof (crypto as { hash?: unknown }).hash === 'function'
    ? (s) => (crypto as unknown as { hash(alg: string, data: string, enc: 'buffer'): Buffer }).hash('sha256', s, 'buffer')
    : (s) => crypto.createHash('sha256').update(s, 'utf8').digest();

/** Resolves a raw key to a consumer index (or -1) against the lookup's current table, through the cache. */
let lastKey = '';
let lastLookup: ConsumerLookup | null = null;
let lastGeneration = -1;
let lastIndex = -1;

export function resolveApiKey(lookup: ConsumerLookup, raw: string): number {
  const generation = lookup.generation;
  if (generation !== keyCacheGeneration) {
    keyCache.clear();
    keyCacheGeneration = generation;
  }
  // the key of the last hit, compared as it is: a client sends the same key request after request, and the Map
  // lookup hashes the key, a new string each request (about 900 instructions, native-bench/instructions.sh)
  if (raw === lastKey && lookup === lastLookup && generation === lastGeneration) return lastIndex;
  const hit = keyCache.get(raw);
  if (hit !== undefined) {
    lastKey = raw;
    lastLookup = lookup;
    lastGeneration = generation;
    lastIndex = hit;
    return hit;
  }
  const index = lookup.byKeyDigest(sha256(raw));
  if (index >= 0) {
    if (keyCache.size >= KEY_CACHE_SIZE) keyCache.delete(keyCache.keys().next().value!);
    keyCache.set(raw, index);
  }
  return index;
}

class ApiKeyMethod implements AuthMethod {
  readonly challenge: string;
  readonly credentialHeaders: readonly string[];
  readonly credentialQuery: readonly string[];
  readonly synchronous = true;
  readonly #header: string | null;
  readonly #query: string | null;
  readonly #lookup: ConsumerLookup | null;

  constructor(data: Data, lookup: ConsumerLookup | null) {
    this.#header = data.header;
    this.#query = data.query;
    this.#lookup = lookup;
    this.credentialHeaders = data.header !== null ? [data.header] : [];
    this.credentialQuery = data.query !== null ? [data.query] : [];
    this.challenge = `ApiKey realm="%REALM%"${data.header !== null ? `, header="${data.header}"` : ''}${data.query !== null ? `, query="${data.query}"` : ''}`;
  }

  authenticate(ctx: PolicyContext, failure: AuthFailure): AuthResult {
    let raw: string | undefined | null = this.#header !== null ? ctx.header(this.#header) : undefined;
    if (raw === undefined && this.#query !== null) raw = findQueryParam(ctx.query, this.#query);
    if (raw === undefined || raw === null || raw.length === 0) return AUTH_NONE;
    if (raw.length > MAX_KEY_LENGTH) {
      failure.code = 'NG_ERR_AUTH_MALFORMED';
      failure.detail = `the API key is longer than ${MAX_KEY_LENGTH} characters`;
      return AUTH_FAIL;
    }
    const lookup = this.#lookup;
    const index = lookup === null ? -1 : resolveApiKey(lookup, raw);
    if (index < 0) {
      failure.code = 'NG_ERR_AUTH_UNKNOWN_KEY';
      failure.detail = 'the API key is not known';
      return AUTH_FAIL;
    }
    return bindConsumer(ctx, lookup!, index);
  }
}

export const apiKeyAuthenticator: Authenticator<Config, Data> = {
  kind: 'apiKey',
  schema: Schema,
  compile(config) {
    const header = config.header?.toLowerCase() ?? null;
    const query = config.query ?? null;
    if (header !== null && ['host', 'content-length', 'transfer-encoding', 'connection', 'te', 'upgrade'].includes(header)) {
      throw new PolicyConfigError('header', `"${config.header}" cannot carry an API key`);
    }
    return { header: header ?? (query === null ? 'x-api-key' : null), query };
  },
  create(data, env) {
    return new ApiKeyMethod(data, consumerLookup(env.services));
  },
};

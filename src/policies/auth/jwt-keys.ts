import type { JsonWebKey } from 'node:crypto';
import { importKey } from './jwt-algs.js';

/** select(): the token names a kid this set does not hold (a JWKS source may refetch once). */
export const KID_UNKNOWN = 1;
/** select(): keys exist for the token, but none is declared for the token's algorithm (e.g. HS256 against RS keys). */
export const ALG_REFUSED = 2;

/** One key of a set, imported once per algorithm it may verify. */
export interface KeyInput {
  readonly kid: string | null;
  readonly algs: readonly string[];
  readonly jwk: JsonWebKey;
}

interface Entry {
  readonly kid: string | null;
  readonly alg: string;
  readonly key: CryptoKey;
}

/**
 * An immutable set of imported verification keys (configured inline, or one JWKS generation). Each CryptoKey is
 * bound to one algorithm, so select() can only hand out keys declared for the token's `alg`.
 *
 *   byKid:  kid -> [entry per alg]        (tokens with a kid)
 *   free:   entries of keys without a kid (tried for any token, in order)
 */
export class KeySet {
  readonly #byKid = new Map<string, Entry[]>();
  readonly #free: Entry[] = [];
  readonly #all: Entry[] = [];
  /** keys that could not be imported (bad JWKS entries) */
  readonly skipped: number;

  private constructor(entries: Entry[], skipped: number) {
    this.skipped = skipped;
    for (const e of entries) {
      this.#all.push(e);
      if (e.kid === null) this.#free.push(e);
      else {
        let list = this.#byKid.get(e.kid);
        if (list === undefined) this.#byKid.set(e.kid, (list = []));
        list.push(e);
      }
    }
  }

  get size(): number {
    return this.#all.length;
  }

  /** Imports every key for each of its algorithms; a key WebCrypto refuses is skipped and counted. */
  static async build(inputs: readonly KeyInput[]): Promise<KeySet> {
    const jobs: Promise<Entry | null>[] = [];
    for (const k of inputs) {
      for (const alg of k.algs) {
        jobs.push(
          importKey(k.jwk, alg).then(
            (key) => ({ kid: k.kid, alg, key }),
            () => null,
          ),
        );
      }
    }
    const done = await Promise.all(jobs);
    const entries = done.filter((e): e is Entry => e !== null);
    return new KeySet(entries, done.length - entries.length);
  }

  /**
   * The keys to try for a token header, in order: the key with the token's kid, else the keys without a kid, else
   * (token without kid) every key; only those declared for `alg`.
   */
  select(kid: string | undefined, alg: string): CryptoKey[] | typeof KID_UNKNOWN | typeof ALG_REFUSED {
    let pool: readonly Entry[];
    // A kid this set does not hold may still fit a key without a kid; if none fits, the kid is what is unknown.
    let unknownKid = false;
    if (kid !== undefined) {
      const named = this.#byKid.get(kid);
      if (named !== undefined) pool = named;
      else {
        pool = this.#free;
        unknownKid = true;
      }
    } else pool = this.#all;
    let out: CryptoKey[] | null = null;
    for (let i = 0; i < pool.length; i++) if (pool[i].alg === alg) (out ??= []).push(pool[i].key);
    if (out !== null) return out;
    return unknownKid || pool.length === 0 ? KID_UNKNOWN : ALG_REFUSED;
  }
}

import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { PolicyConfigError } from '../../pipeline/policy.js';

/**
 * The JWS algorithms the jwt method accepts, and what key each needs. One table serves the control plane (checking
 * key material when the config loads, with node:crypto, synchronously) and the workers (importing each key once as a
 * WebCrypto CryptoKey bound to ONE algorithm, which jose then uses as is).
 *
 * Binding a key to one algorithm is the defence against algorithm confusion (RFC 8725 section 3.1): a token whose
 * header says HS256 can only be checked with a key declared HS256, so an RSA public key is never used as an HMAC
 * secret. "none" is not in the table, so it is never accepted.
 */
export interface AlgSpec {
  readonly kty: 'oct' | 'RSA' | 'EC' | 'OKP';
  /** EC / OKP curve */
  readonly crv?: string;
  /** node:crypto asymmetricKeyType values that fit (RSA-PSS keys are only valid for PS*) */
  readonly keyTypes?: readonly string[];
  /** WebCrypto import parameters, the same jose checks a CryptoKey against */
  readonly params: RsaHashedImportParams | EcKeyImportParams | HmacImportParams | Algorithm;
  /** HMAC: the smallest secret RFC 7518 section 3.2 allows (the hash size), in bytes */
  readonly minSecretBytes?: number;
}

const hmac = (bits: number): AlgSpec => ({ kty: 'oct', params: { name: 'HMAC', hash: `SHA-${bits}` }, minSecretBytes: bits / 8 });
const rsa = (bits: number): AlgSpec => ({ kty: 'RSA', keyTypes: ['rsa'], params: { name: 'RSASSA-PKCS1-v1_5', hash: `SHA-${bits}` } });
const pss = (bits: number): AlgSpec => ({ kty: 'RSA', keyTypes: ['rsa', 'rsa-pss'], params: { name: 'RSA-PSS', hash: `SHA-${bits}` } });
const ec = (crv: string): AlgSpec => ({ kty: 'EC', crv, keyTypes: ['ec'], params: { name: 'ECDSA', namedCurve: crv } });
const ed: AlgSpec = { kty: 'OKP', crv: 'Ed25519', keyTypes: ['ed25519'], params: { name: 'Ed25519' } };

export const ALGS: Readonly<Record<string, AlgSpec>> = Object.freeze({
  __proto__: null,
  HS256: hmac(256),
  HS384: hmac(384),
  HS512: hmac(512),
  RS256: rsa(256),
  RS384: rsa(384),
  RS512: rsa(512),
  PS256: pss(256),
  PS384: pss(384),
  PS512: pss(512),
  ES256: ec('P-256'),
  ES384: ec('P-384'),
  ES512: ec('P-521'),
  EdDSA: ed,
  Ed25519: ed,
} as unknown as Record<string, AlgSpec>);

export const ALG_NAMES = Object.keys(ALGS);
/** Algorithms a JWKS URL may serve keys for: public-key ones only (a JWKS never carries shared secrets). */
export const ASYMMETRIC_ALGS = ALG_NAMES.filter((a) => ALGS[a].kty !== 'oct');

const NIST: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

/** A checked verification key as it travels in the plan: a public (or oct) JWK without use/alg/key_ops noise. */
export interface KeyMaterial {
  readonly kid: string | null;
  readonly alg: string;
  readonly jwk: JsonWebKey;
}

/**
 * Checks one configured key and returns its plain-data form. Throws PolicyConfigError (path relative to the key) with
 * a message that says what to fix.
 */
export function compileKey(key: { kid?: string; alg: string; secret?: string; publicKeyPem?: string; jwk?: Record<string, unknown> }): KeyMaterial {
  const spec = ALGS[key.alg];
  if (!spec) throw new PolicyConfigError('alg', `unsupported algorithm "${key.alg}"`, `one of ${ALG_NAMES.join(', ')}`);
  const given = [key.secret, key.publicKeyPem, key.jwk].filter((v) => v !== undefined).length;
  if (given !== 1) throw new PolicyConfigError('', 'give exactly one of "secret", "publicKeyPem" or "jwk"');
  const kid = key.kid ?? null;

  if (spec.kty === 'oct') {
    let secret: Buffer;
    if (key.secret !== undefined) secret = Buffer.from(key.secret, 'utf8');
    else if (key.jwk !== undefined && key.jwk.kty === 'oct' && typeof key.jwk.k === 'string') secret = Buffer.from(key.jwk.k, 'base64url');
    else throw new PolicyConfigError(key.publicKeyPem !== undefined ? 'publicKeyPem' : 'jwk', `${key.alg} needs a shared secret ("secret", or a "jwk" with kty "oct")`, 'a public key is never used as an HMAC secret');
    if (secret.length < spec.minSecretBytes!) {
      throw new PolicyConfigError(key.secret !== undefined ? 'secret' : 'jwk.k', `${key.alg} needs a secret of at least ${spec.minSecretBytes} bytes (RFC 7518 section 3.2); this one has ${secret.length}`, 'e.g. openssl rand -base64 48');
    }
    return { kid, alg: key.alg, jwk: { kty: 'oct', k: secret.toString('base64url') } };
  }

  if (key.secret !== undefined) throw new PolicyConfigError('secret', `${key.alg} is a public-key algorithm: give "publicKeyPem" or "jwk", not a secret`);
  let obj: KeyObject;
  const where = key.publicKeyPem !== undefined ? 'publicKeyPem' : 'jwk';
  try {
    if (key.publicKeyPem !== undefined) {
      // createPublicKey would quietly derive the public half of a private key; a private key has no place here.
      if (/PRIVATE KEY-----/.test(key.publicKeyPem)) throw new PolicyConfigError('publicKeyPem', 'this is a private key; give the public key (SPKI PEM)', 'openssl pkey -in key.pem -pubout');
      obj = createPublicKey(key.publicKeyPem);
    }
    else {
      if ('d' in key.jwk! || 'p' in key.jwk! || 'k' in key.jwk!) throw new PolicyConfigError('jwk', 'this JWK holds private or secret key material; give only the public key');
      obj = createPublicKey({ key: key.jwk as JsonWebKey, format: 'jwk' });
    }
  } catch (err) {
    if (err instanceof PolicyConfigError) throw err;
    throw new PolicyConfigError(where, `not a usable public key: ${(err as Error).message}`);
  }
  if (obj.type !== 'public') throw new PolicyConfigError(where, 'a private key was given; give the public key');
  const problem = keyObjectProblem(obj, key.alg);
  if (problem) throw new PolicyConfigError(where, problem);
  const jwk = obj.export({ format: 'jwk' });
  return { kid, alg: key.alg, jwk };
}

function keyObjectProblem(obj: KeyObject, alg: string): string | null {
  const spec = ALGS[alg];
  const type = obj.asymmetricKeyType ?? '';
  if (!spec.keyTypes!.includes(type)) return `a ${type || 'secret'} key cannot verify ${alg}`;
  const details = obj.asymmetricKeyDetails ?? {};
  if (spec.kty === 'RSA' && (details.modulusLength ?? 0) < 2048) return `${alg} needs an RSA key of at least 2048 bits (RFC 7518 section 3.3)`;
  if (spec.kty === 'EC' && NIST[details.namedCurve ?? ''] !== spec.crv) return `${alg} needs an EC key on ${spec.crv}`;
  return null;
}

/** Which of `allowed` a JWK taken from a JWKS may verify, by its kty/crv and its own "alg" when present. */
export function algsForJwk(jwk: Record<string, unknown>, allowed: readonly string[]): string[] {
  if (jwk.use !== undefined && jwk.use !== 'sig') return [];
  if (jwk.kty === 'oct' || 'd' in jwk) return []; // never a shared or private key from a URL
  const out: string[] = [];
  for (const alg of allowed) {
    const spec = ALGS[alg];
    if (!spec || spec.kty !== jwk.kty || (spec.crv !== undefined && spec.crv !== jwk.crv)) continue;
    if (jwk.alg !== undefined && jwk.alg !== alg && !(isEd(jwk.alg) && isEd(alg))) continue;
    out.push(alg);
  }
  return out;
}

const isEd = (a: unknown) => a === 'EdDSA' || a === 'Ed25519';

/** Imports a key for one algorithm (in a worker). Rejects when WebCrypto refuses it. */
export function importKey(jwk: JsonWebKey, alg: string): Promise<CryptoKey> {
  const spec = ALGS[alg];
  // Only the key fields: "alg"/"use"/"key_ops" were checked already and WebCrypto would compare them again.
  const clean: JsonWebKey =
    spec.kty === 'oct' ? { kty: 'oct', k: jwk.k } : spec.kty === 'RSA' ? { kty: 'RSA', n: jwk.n, e: jwk.e } : spec.kty === 'EC' ? { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y } : { kty: 'OKP', crv: jwk.crv, x: jwk.x };
  return crypto.subtle.importKey('jwk', clean, spec.params, false, ['verify']);
}

/** Key-size checks for keys that come from a JWKS at run time (the same rules as configured keys). */
export function jwkProblem(jwk: JsonWebKey, alg: string): string | null {
  try {
    return keyObjectProblem(createPublicKey({ key: jwk, format: 'jwk' }), alg);
  } catch (err) {
    return (err as Error).message;
  }
}

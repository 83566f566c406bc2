import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { loadConfigText } from '../../src/config/load.js';
import { compileConfig } from '../../src/config/compile.js';
import { ConfigError } from '../../src/config/errors.js';
import { TokenCache } from '../../src/policies/auth/token-cache.js';
import { bearerToken, scopesOf } from '../../src/policies/auth/bearer.js';
import { JwtVerifier, type JwtData } from '../../src/policies/auth/jwt.js';
import { Rejection } from '../../src/policies/auth/bearer.js';
import { algsForJwk } from '../../src/policies/auth/jwt-algs.js';
import { SettingsRegistry } from '../../src/policies/auth/settings-registry.js';
import { signToken } from '../helpers/idp.js';

// The jwt method's pieces on their own: config checks, bearer parsing, the token cache, cache lifetimes.

function jwtConfigError(jwt: string): string {
  const text = `
upstreams: { app: { nodes: [{ url: "http://127.0.0.1:9001" }] } }
routes:
  - { name: r, match: { prefix: / }, upstream: app, policies: { auth: { methods: { jwt: ${jwt} } } } }
`;
  try {
    compileConfig(loadConfigText(text, 'gw.yaml', {}), 'gw.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  assert.fail(`expected a ConfigError for ${jwt}`);
}

const AT = 'routes[0].policies.auth.methods.jwt';

test('config: keys or jwksUrl, secrets long enough, public keys of the right type and size', () => {
  assert.match(jwtConfigError('{ audience: x }'), new RegExp(`${AT.replace(/[[\].]/g, '\\$&')}: give either "keys"`));
  assert.match(jwtConfigError('{ keys: [{ alg: HS256, secret: x }], jwksUrl: "http://a/" }'), /give either "keys"/);
  assert.match(jwtConfigError('{ keys: [{ alg: HS256, secret: short }] }'), /keys\[0\]\.secret: HS256 needs a secret of at least 32 bytes/);
  assert.match(jwtConfigError('{ keys: [{ alg: HS512, secret: "0123456789012345678901234567890123456789" }] }'), /at least 64 bytes/);
  assert.match(jwtConfigError('{ keys: [{ alg: none, secret: x }] }'), /keys\[0\]\.alg: unsupported algorithm "none"/);
  assert.match(jwtConfigError('{ keys: [{ alg: RS256, secret: "0123456789012345678901234567890123456789" }] }'), /public-key algorithm/);
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = JSON.stringify(ec.publicKey.export({ type: 'spki', format: 'pem' }));
  assert.match(jwtConfigError(`{ keys: [{ alg: RS256, publicKeyPem: ${pem} }] }`), /a ec key cannot verify RS256/);
  assert.match(jwtConfigError(`{ keys: [{ alg: ES384, publicKeyPem: ${pem} }] }`), /ES384 needs an EC key on P-384/);
  assert.match(jwtConfigError(`{ keys: [{ alg: HS256, publicKeyPem: ${pem} }] }`), /a public key is never used as an HMAC secret/);
  const priv = JSON.stringify(ec.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  assert.match(jwtConfigError(`{ keys: [{ alg: ES256, publicKeyPem: ${priv} }] }`), /private key/);
  const jwkPriv = JSON.stringify(ec.privateKey.export({ format: 'jwk' }));
  assert.match(jwtConfigError(`{ keys: [{ alg: ES256, jwk: ${jwkPriv} }] }`), /private or secret key material/);
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
  assert.match(jwtConfigError(`{ keys: [{ alg: RS256, publicKeyPem: ${JSON.stringify(small.publicKey.export({ type: 'spki', format: 'pem' }))} }] }`), /at least 2048 bits/);
  assert.match(jwtConfigError(`{ keys: [{ kid: a, alg: ES256, publicKeyPem: ${pem} }, { kid: a, alg: ES256, publicKeyPem: ${pem} }] }`), /keys\[1\]\.kid: kid "a" is used twice/);
  assert.match(jwtConfigError('{ jwksUrl: "ftp://x/keys" }'), /jwksUrl: must be an http or https URL/);
  assert.match(jwtConfigError('{ jwksUrl: "http://x/keys", algorithms: [RS256, HS256] }'), /HS256 needs a shared secret, which a JWKS URL never provides/);
  assert.match(jwtConfigError('{ keys: [{ alg: HS256, secret: "0123456789012345678901234567890123456789" }], algorithms: [RS256] }'), /HS256 is not in "algorithms"/);
});

test('bearer parsing: scheme case-insensitive, other schemes ignored, empty token distinguished', () => {
  assert.equal(bearerToken(undefined), null);
  assert.equal(bearerToken('Basic abc'), null);
  assert.equal(bearerToken('Bearerabc'), null);
  assert.equal(bearerToken('Bearer abc.def'), 'abc.def');
  assert.equal(bearerToken('bEaReR   abc  '), 'abc');
  assert.equal(bearerToken('Bearer'), '');
  assert.equal(bearerToken('Bearer    '), '');
});

test('scopes come from "scope" (space separated) or "scp" (list or string)', () => {
  assert.deepEqual(scopesOf({ scope: 'a  b c' }), ['a', 'b', 'c']);
  assert.deepEqual(scopesOf({ scp: ['a', 1, 'b'] }), ['a', 'b']);
  assert.deepEqual(scopesOf({ scp: 'x y' }), ['x', 'y']);
  assert.equal(scopesOf({}), null);
});

test('JWKS keys are bound to algorithms their type allows; oct, private and encryption keys are never used', () => {
  const all = ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'];
  assert.deepEqual(algsForJwk({ kty: 'RSA', n: 'x', e: 'AQAB' }, all), ['RS256', 'PS256']);
  assert.deepEqual(algsForJwk({ kty: 'RSA', n: 'x', e: 'AQAB', alg: 'PS256' }, all), ['PS256']);
  assert.deepEqual(algsForJwk({ kty: 'EC', crv: 'P-384', x: 'x', y: 'y' }, all), ['ES384']);
  assert.deepEqual(algsForJwk({ kty: 'OKP', crv: 'Ed25519', x: 'x', alg: 'Ed25519' }, all), ['EdDSA']);
  assert.deepEqual(algsForJwk({ kty: 'oct', k: 'c2VjcmV0' }, [...all, 'HS256']), []);
  assert.deepEqual(algsForJwk({ kty: 'RSA', n: 'x', e: 'AQAB', d: 'x' }, all), []);
  assert.deepEqual(algsForJwk({ kty: 'RSA', n: 'x', e: 'AQAB', use: 'enc' }, all), []);
});

test('token cache: entries expire, the oldest goes first when full, the byte budget holds', () => {
  const c = new TokenCache<{ expiresAt: number; v: number }>(3, { maxBytes: 100 });
  c.set('a', { expiresAt: 1000, v: 1 }, 0);
  c.set('b', { expiresAt: 2000, v: 2 }, 0);
  assert.equal(c.get('a', 999)?.v, 1);
  assert.equal(c.get('a', 1000), undefined, 'expired at expiresAt');
  assert.equal(c.size, 1);
  c.set('c', { expiresAt: 5000, v: 3 }, 0);
  c.set('d', { expiresAt: 5000, v: 4 }, 0);
  c.set('e', { expiresAt: 5000, v: 5 }, 0);
  assert.equal(c.size, 3);
  assert.equal(c.get('b', 0), undefined, 'the oldest was evicted');
  c.set('x'.repeat(90), { expiresAt: 5000, v: 6 }, 0);
  assert.equal(c.size, 3);
  c.set('y'.repeat(50), { expiresAt: 5000, v: 7 }, 0);
  assert.equal(c.size, 1, 'a 50-byte token pushed out the rest (100-byte budget)');
  assert.equal(c.get('y'.repeat(50), 0)?.v, 7);
  c.set('old', { expiresAt: 10, v: 7 }, 20);
  assert.equal(c.get('old', 0), undefined, 'already expired entries are not stored');
  // keyed by the tail: a token with the same tail is a miss, never a hit, and replaces the entry when stored
  const t = new TokenCache<{ expiresAt: number; v: number }>(10, { keyTail: 4 });
  t.set('header.payload.SIGN', { expiresAt: 5000, v: 1 }, 0);
  assert.equal(t.get('header.payload.SIGN', 0)?.v, 1);
  assert.equal(t.get('header.FORGED.SIGN', 0), undefined);
  t.set('other.payload.SIGN', { expiresAt: 5000, v: 2 }, 0);
  assert.equal(t.size, 1);
  assert.equal(t.get('header.payload.SIGN', 0), undefined);
  assert.equal(t.get('other.payload.SIGN', 0)?.v, 2);
  const off = new TokenCache<{ expiresAt: number }>(0);
  off.set('a', { expiresAt: 5000 }, 0);
  assert.equal(off.size, 0);
  // the last hit is answered without the Map, and it goes as soon as its entry goes: evicted, replaced, cleared
  const h = new TokenCache<{ expiresAt: number; v: number }>(2, { keyTail: 4 });
  h.set('one.SIGA', { expiresAt: 5000, v: 1 }, 0);
  assert.equal(h.get('one.SIGA', 0)?.v, 1);
  h.set('two.SIGB', { expiresAt: 5000, v: 2 }, 0);
  h.set('three.SIGC', { expiresAt: 5000, v: 3 }, 0);
  assert.equal(h.get('one.SIGA', 0), undefined, 'the last hit was evicted');
  assert.equal(h.get('two.SIGB', 0)?.v, 2);
  h.set('two.SIGB', { expiresAt: 5000, v: 20 }, 0);
  assert.equal(h.get('two.SIGB', 0)?.v, 20, 'the last hit was replaced');
  assert.equal(h.get('two.SIGB', 5000), undefined, 'the last hit expired');
  assert.equal(h.size, 1);
  assert.equal(h.get('three.SIGC', 0)?.v, 3);
  h.clear();
  assert.equal(h.get('three.SIGC', 0), undefined, 'the cache was cleared');
});

function data(over: Partial<JwtData> = {}): JwtData {
  return {
    id: 'unit',
    keys: [{ kid: null, alg: 'HS256', jwk: { kty: 'oct', k: Buffer.from('unit-test-secret-of-32-bytes-or-more!').toString('base64url') } }],
    jwks: null,
    algorithms: ['HS256'],
    issuer: undefined,
    audience: undefined,
    clockSkewSeconds: 0,
    requiredClaims: [],
    maxTokenBytes: 8192,
    cacheSize: 100,
    cacheMaxMs: 300_000,
    mapConsumer: 'off',
    ...over,
  };
}
const key = { privateKey: new TextEncoder().encode('unit-test-secret-of-32-bytes-or-more!'), alg: 'HS256' };

test('a verified token is cached until its exp, never longer, and at most cacheMaxSeconds', async () => {
  const v = new JwtVerifier(data());
  const exp = Math.floor(Date.now() / 1000) + 60;
  const token = await signToken({ sub: 's', exp }, key);
  const r = await v.verify(token);
  assert.ok(!(r instanceof Rejection));
  assert.equal(r.expiresAt, exp * 1000);
  assert.equal(v.cache.get(token, Date.now())?.subject, 's');
  assert.equal(v.cache.get(token, exp * 1000), undefined);

  const capped = new JwtVerifier(data({ cacheMaxMs: 5000 }));
  const before = Date.now();
  const r2 = await capped.verify(await signToken({ sub: 's', exp: undefined }, key));
  assert.ok(!(r2 instanceof Rejection));
  assert.ok(r2.expiresAt >= before + 5000 && r2.expiresAt <= Date.now() + 5000);
});

test('refused tokens are not cached; header problems are answered without going asynchronous', async () => {
  const v = new JwtVerifier(data());
  const bad = await signToken({ sub: 's', exp: Math.floor(Date.now() / 1000) - 5 }, key);
  const r = await v.verify(bad);
  assert.ok(r instanceof Rejection);
  assert.equal(r.code, 'NG_ERR_AUTH_EXPIRED');
  assert.equal(v.cache.size, 0);
  const sync = v.verify('e30.e30.x');
  assert.ok(sync instanceof Rejection, 'no alg: refused at once');
  assert.equal(sync.code, 'NG_ERR_AUTH_MALFORMED');
});

test('settings registry: shared within a plan, carried to the next, dropped when two plans did not use it', () => {
  const reg = new SettingsRegistry<{ n: number }>();
  let made = 0;
  const make = () => ({ n: ++made });
  const [a, b, c] = [{}, {}, {}];
  const x = reg.get('x', a, make);
  assert.equal(reg.get('x', a, make), x, 'two routes, one object');
  const y = reg.get('y', a, make);
  assert.equal(reg.get('x', b, make), x, 'carried over to the next plan');
  assert.equal(reg.size, 2, 'y is kept while the previous plan may still serve');
  assert.equal(reg.get('x', c, make), x);
  assert.equal(reg.size, 1, 'y dropped: neither of the last two plans used it');
  assert.notEqual(reg.get('y', c, make), y);
});

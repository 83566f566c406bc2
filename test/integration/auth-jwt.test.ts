import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { problemOf, signToken, signingKey, startIdp, unsignedToken, type SigningKey, type TestIdp } from '../helpers/idp.js';

// Inline keys: one route per algorithm family, and every way a token is refused.
const SECRET = 'a-shared-secret-of-at-least-32-bytes!';
const hs = { privateKey: new TextEncoder().encode(SECRET), alg: 'HS256' };
const ISS = 'https://issuer.test';

let up: TestUpstream;
let gw: TestGateway;
let rs: SigningKey;
let ps: SigningKey;
let es: SigningKey;
let ed: SigningKey;
let idp: TestIdp;
let c1: SigningKey;
let c2: SigningKey;

before(async () => {
  [rs, ps, es, ed, c1, c2] = await Promise.all([
    signingKey('RS256', 'rs-1'),
    signingKey('PS256', 'ps-1'),
    signingKey('ES256'),
    signingKey('EdDSA', 'ed-1'),
    signingKey('ES256', 'c1'),
    signingKey('ES256', 'c2'),
  ]);
  idp = await startIdp();
  idp.keys = [c1.publicJwk];
  up = await startUpstream();
  gw = await startGateway(`
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
routes:
  - name: hs
    match: { prefix: /hs }
    upstream: app
    policies:
      auth:
        realm: shop
        methods:
          jwt:
            keys: [{ alg: HS256, secret: "${SECRET}" }]
            issuer: ${ISS}
            audience: [api, other]
            requiredClaims: [sub]
            clockSkewSeconds: 30
            maxTokenBytes: 2048
  - name: asym
    match: { prefix: /asym }
    upstream: app
    policies:
      auth:
        hideCredentials: true
        methods:
          jwt:
            keys:
              - kid: rs-1
                alg: RS256
                publicKeyPem: ${JSON.stringify(rs.publicPem)}
              - { kid: ps-1, alg: PS256, jwk: ${JSON.stringify(ps.publicJwk)} }
              - { alg: ES256, jwk: ${JSON.stringify(es.publicJwk)} }
              - { kid: ed-1, alg: EdDSA, jwk: ${JSON.stringify(ed.publicJwk)} }
  # the token cache made visible: keys from a JWKS that the test changes under the gateway
  - name: cached
    match: { prefix: /cached }
    upstream: app
    policies:
      auth: { methods: { jwt: { jwksUrl: ${idp.jwksUrl}, jwksRefreshSeconds: 0, audience: api } } }
  - name: uncached
    match: { prefix: /uncached }
    upstream: app
    policies:
      auth: { methods: { jwt: { jwksUrl: ${idp.jwksUrl}, jwksRefreshSeconds: 0, audience: api, cacheSize: 0 } } }
`);
});
after(async () => {
  await gw?.stop();
  await up?.close();
  await idp?.close();
});

const call = (path: string, token?: string, scheme = 'Bearer') => fetch(`${gw.url}${path}`, { headers: token === undefined ? {} : { authorization: `${scheme} ${token}` } });
const good = (claims: Record<string, unknown> = {}) => signToken({ iss: ISS, aud: 'api', sub: 'alice', ...claims }, hs);

async function refused(res: Response, code: string, status = 401) {
  const p = await problemOf(res);
  assert.equal(p.status, status, `${code}: ${p.detail}`);
  assert.equal(p.code, code, p.detail);
  return p;
}

test('a valid HS256 token passes, and so does its repeat', async () => {
  const token = await good();
  const before = up.received.length;
  for (let i = 0; i < 3; i++) assert.equal((await call('/hs/a', token)).status, 200);
  assert.equal(up.received.length, before + 3);
  assert.equal(up.received.at(-1)!.headers.authorization, `Bearer ${token}`);
  // the scheme is case-insensitive
  assert.equal((await call('/hs/a', token, 'bearer')).status, 200);
});

test('a repeated token is served from the cache: it still passes after its key left the JWKS, unlike a new one', async () => {
  const early = await signToken({ sub: 'early', aud: 'api' }, c1);
  for (const route of ['/cached', '/uncached']) assert.equal((await call(`${route}/a`, early)).status, 200, route);
  // the provider withdraws c1; a token with the new kid makes the gateway refetch (jwksRefreshSeconds: 0; both
  // routes read one key set, as they name the same source)
  idp.keys = [c2.publicJwk];
  const before = idp.jwksRequests;
  for (const route of ['/cached', '/uncached']) assert.equal((await call(`${route}/a`, await signToken({ sub: 'rotated', aud: 'api' }, c2))).status, 200, route);
  assert.ok(idp.jwksRequests > before, 'the new kid refetched the set');
  // a token c1 signed that the gateway never saw is refused now: its key is gone
  await refused(await call('/cached/a', await signToken({ sub: 'late', aud: 'api' }, c1)), 'NG_ERR_AUTH_UNKNOWN_KEY');
  // the one verified before is answered from the cache, without any key; with cacheSize 0 it is checked again and fails
  const fetches = idp.jwksRequests;
  assert.equal((await call('/cached/a', early)).status, 200);
  assert.equal(idp.jwksRequests, fetches, 'a cache hit asks the JWKS endpoint nothing');
  await refused(await call('/uncached/a', early), 'NG_ERR_AUTH_UNKNOWN_KEY');
});

test('RS256 (PEM), PS256, ES256 (no kid) and EdDSA keys verify; hideCredentials drops the token', async () => {
  for (const key of [rs, ps, es, ed]) {
    const res = await call('/asym/x', await signToken({ sub: key.alg }, key));
    assert.equal(res.status, 200, key.alg);
    assert.equal(((await res.json()) as { headers: Record<string, string> }).headers.authorization, undefined);
  }
});

test('no credentials, or another scheme: 401 NG_ERR_AUTH_MISSING with a Bearer challenge', async () => {
  const p = await refused(await call('/hs/a'), 'NG_ERR_AUTH_MISSING');
  assert.equal(p.challenge, 'Bearer realm="shop"');
  await refused(await call('/hs/a', 'dXNlcjpwYXNz', 'Basic'), 'NG_ERR_AUTH_MISSING');
});

test('alg "none" is refused', async () => {
  const p = await refused(await call('/hs/a', unsignedToken({ iss: ISS, aud: 'api', sub: 'alice', exp: Math.floor(Date.now() / 1000) + 60 })), 'NG_ERR_AUTH_INVALID');
  assert.match(p.detail, /none/);
  // RFC 6750 section 3: the refused token is named in the challenge
  assert.equal(p.challenge, `Bearer realm="shop", error="invalid_token", error_description="unsigned tokens (alg none) are refused"`);
});

test('algorithm confusion: an HS256 token signed with the RS public key as secret fails', async () => {
  const secret = new TextEncoder().encode(rs.publicPem);
  // with the RS key's kid: that key is declared RS256 only
  await refused(await call('/asym/x', await signToken({ sub: 'mallory' }, { privateKey: secret, alg: 'HS256', kid: 'rs-1' })), 'NG_ERR_AUTH_INVALID');
  // without a kid: no key of the route accepts HS256
  await refused(await call('/asym/x', await signToken({ sub: 'mallory' }, { privateKey: secret, alg: 'HS256' })), 'NG_ERR_AUTH_INVALID');
  // and an RS256 header on an HS route: no key for it
  await refused(await call('/hs/a', await signToken({ iss: ISS, aud: 'api', sub: 'x' }, rs)), 'NG_ERR_AUTH_INVALID');
});

test('expired and not-yet-valid tokens are refused beyond the clock skew, accepted within it', async () => {
  const now = Math.floor(Date.now() / 1000);
  await refused(await call('/hs/a', await good({ exp: now - 120 })), 'NG_ERR_AUTH_EXPIRED');
  assert.equal((await call('/hs/a', await good({ exp: now - 10 }))).status, 200);
  const p = await refused(await call('/hs/a', await good({ nbf: now + 120 })), 'NG_ERR_AUTH_EXPIRED');
  assert.match(p.detail, /nbf/);
  assert.equal((await call('/hs/a', await good({ nbf: now + 10 }))).status, 200);
});

test('wrong issuer, wrong audience, missing required claim: NG_ERR_AUTH_INVALID', async () => {
  await refused(await call('/hs/a', await good({ iss: 'https://evil.test' })), 'NG_ERR_AUTH_INVALID');
  await refused(await call('/hs/a', await good({ aud: 'someone-else' })), 'NG_ERR_AUTH_INVALID');
  assert.equal((await call('/hs/a', await good({ aud: ['x', 'other'] }))).status, 200);
  const p = await refused(await call('/hs/a', await good({ sub: undefined })), 'NG_ERR_AUTH_INVALID');
  assert.match(p.detail, /"sub"/);
});

test('oversized tokens are refused before parsing', async () => {
  await refused(await call('/hs/a', await good({ pad: 'x'.repeat(3000) })), 'NG_ERR_AUTH_MALFORMED');
  await refused(await call('/hs/a', 'a'.repeat(2049)), 'NG_ERR_AUTH_MALFORMED');
});

test('unknown kid: NG_ERR_AUTH_UNKNOWN_KEY', async () => {
  const other = await signingKey('RS256', 'rs-unknown');
  await refused(await call('/asym/x', await signToken({ sub: 'x' }, other)), 'NG_ERR_AUTH_UNKNOWN_KEY');
});

test('bad signatures: tampered payload, wrong secret, wrong key with a known kid', async () => {
  const token = await good();
  const [h, , s] = token.split('.');
  const forged = Buffer.from(JSON.stringify({ iss: ISS, aud: 'api', sub: 'admin', exp: Math.floor(Date.now() / 1000) + 60 })).toString('base64url');
  await refused(await call('/hs/a', `${h}.${forged}.${s}`), 'NG_ERR_AUTH_BAD_SIGNATURE');
  const wrong = { privateKey: new TextEncoder().encode('another-secret-that-is-long-enough-too'), alg: 'HS256' };
  await refused(await call('/hs/a', await signToken({ iss: ISS, aud: 'api', sub: 'a' }, wrong)), 'NG_ERR_AUTH_BAD_SIGNATURE');
  const impostor = await signingKey('RS256', 'rs-1');
  await refused(await call('/asym/x', await signToken({ sub: 'x' }, impostor)), 'NG_ERR_AUTH_BAD_SIGNATURE');
});

test('malformed tokens: NG_ERR_AUTH_MALFORMED', async () => {
  for (const t of ['abc', 'a.b', 'a.b.c.d', '!!!.e30.x', `${Buffer.from('[1]').toString('base64url')}.e30.x`]) {
    await refused(await call('/hs/a', t), 'NG_ERR_AUTH_MALFORMED');
  }
  await refused(await fetch(`${gw.url}/hs/a`, { headers: { authorization: 'Bearer' } }), 'NG_ERR_AUTH_MALFORMED');
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  await refused(await call('/hs/a', `${b64({ alg: 'HS256', kid: 7 })}.${b64({})}.sig`), 'NG_ERR_AUTH_MALFORMED');
});

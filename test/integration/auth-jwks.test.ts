import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { closedPort, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { problemOf, signToken, signingKey, startIdp, type SigningKey, type TestIdp } from '../helpers/idp.js';
import { until } from '../helpers/gateway-state.js';

// Keys from a real JWKS endpoint: rotation, refetch limits, outages.
let up: TestUpstream;
let idp: TestIdp;
let gw: TestGateway;
let k1: SigningKey;
let k2: SigningKey;
let rsa: SigningKey;

before(async () => {
  [k1, k2, rsa] = await Promise.all([signingKey('ES256', 'k1'), signingKey('ES256', 'k2'), signingKey('RS256', 'r1')]);
  idp = await startIdp();
  idp.keys = [k1.publicJwk, rsa.publicJwk, { kty: 'oct', k: Buffer.from('shared-secret-in-a-jwks-is-ignored').toString('base64url'), kid: 'oct', alg: 'HS256' }];
  up = await startUpstream();
  gw = await startGateway(`
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
routes:
  - name: eager
    match: { prefix: /eager }
    upstream: app
    policies:
      auth: { methods: { jwt: { jwksUrl: ${idp.jwksUrl}, jwksRefreshSeconds: 0, audience: api } } }
  - name: patient
    match: { prefix: /patient }
    upstream: app
    policies:
      auth: { methods: { jwt: { jwksUrl: ${idp.jwksUrl}, jwksRefreshSeconds: 3600, audience: api } } }
  - name: aging
    match: { prefix: /aging }
    upstream: app
    policies:
      auth: { methods: { jwt: { jwksUrl: ${idp.jwksUrl}, jwksRefreshSeconds: 3600, jwksMaxAgeSeconds: 1, audience: api } } }
  - name: nowhere
    match: { prefix: /nowhere }
    upstream: app
    policies:
      auth: { methods: { jwt: { jwksUrl: "http://127.0.0.1:${await closedPort()}/jwks", jwksTimeoutMs: 500 } } }
`);
});
after(async () => {
  await gw?.stop();
  await up?.close();
  await idp?.close();
});

const call = async (path: string, token: string) => fetch(`${gw.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
const token = (key: SigningKey, sub = 'alice') => signToken({ sub, aud: 'api' }, key);

async function refused(res: Response, code: string, status = 401) {
  const p = await problemOf(res);
  assert.equal(p.code, code, p.detail);
  assert.equal(p.status, status);
}

test('tokens signed by a key of the JWKS verify (EC and RSA); a shared secret in the JWKS is never used', async () => {
  assert.equal((await call('/eager/a', await token(k1))).status, 200);
  assert.equal((await call('/eager/a', await token(rsa))).status, 200);
  const hs = { privateKey: Buffer.from('shared-secret-in-a-jwks-is-ignored'), alg: 'HS256', kid: 'oct' };
  await refused(await call('/eager/a', await token(hs as unknown as SigningKey)), 'NG_ERR_AUTH_INVALID');
});

test('a rotated key (new kid) is accepted after one refetch', async () => {
  const fetchesBefore = idp.jwksRequests;
  idp.keys = [k1.publicJwk, k2.publicJwk, rsa.publicJwk];
  assert.equal((await call('/eager/b', await token(k2))).status, 200);
  assert.equal(idp.jwksRequests, fetchesBefore + 1);
  // now known: no further fetch
  assert.equal((await call('/eager/b', await token(k2, 'bob'))).status, 200);
  assert.equal(idp.jwksRequests, fetchesBefore + 1);
});

test('an unknown kid refetches at most once per jwksRefreshSeconds', async () => {
  // "patient" fetched when the route was created, before k2 existed; its interval has not passed.
  const fetchesBefore = idp.jwksRequests;
  await refused(await call('/patient/a', await token(k2)), 'NG_ERR_AUTH_UNKNOWN_KEY');
  await refused(await call('/patient/a', await token(k2, 'bob')), 'NG_ERR_AUTH_UNKNOWN_KEY');
  assert.equal(idp.jwksRequests, fetchesBefore);
  assert.equal((await call('/patient/a', await token(k1))).status, 200);
});

test('with the JWKS endpoint failing, the last good set still verifies; an unknown kid gets UNKNOWN_KEY', async () => {
  idp.jwksStatus = 500;
  try {
    const before = idp.jwksRequests;
    assert.equal((await call('/eager/c', await token(k1, 'carol'))).status, 200);
    assert.equal((await call('/eager/c', await token(k2, 'carol'))).status, 200);
    const k3 = await signingKey('ES256', 'k3');
    await refused(await call('/eager/c', await token(k3)), 'NG_ERR_AUTH_UNKNOWN_KEY');
    assert.equal(idp.jwksRequests, before + 1, 'the unknown kid tried one refetch');
    assert.equal((await call('/eager/c', await token(k1, 'dave'))).status, 200, 'the failed refetch kept the set');
  } finally {
    idp.jwksStatus = 200;
  }
});

test('a JWKS endpoint that was never reachable: 503 NG_ERR_AUTH_UNAVAILABLE', async () => {
  const res = await call('/nowhere/a', await token(k1));
  assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="nanogate"', 'no invalid_token: the token may be fine');
  await refused(res, 'NG_ERR_AUTH_UNAVAILABLE', 503);
  await refused(await call('/nowhere/a', await token(k1, 'bob')), 'NG_ERR_AUTH_UNAVAILABLE', 503);
});

test('a set older than jwksMaxAgeSeconds is refreshed in the background: a withdrawn key stops verifying new tokens', async () => {
  const saved = idp.keys;
  try {
    const early = await token(k1, 'early');
    assert.equal((await call('/aging/a', early)).status, 200);
    idp.keys = [k2.publicJwk];
    // Until the set is past its age (1 s), a new token is checked against it and nothing is fetched; the first one
    // after that is still checked against the set at hand, and a refresh starts behind it.
    const before = idp.jwksRequests;
    let n = 0;
    await until('a token to start the background refresh', async () => {
      assert.equal((await call('/aging/a', await token(k1, `late-${n++}`))).status, 200, 'the old set still answers');
      return idp.jwksRequests > before;
    });
    assert.equal(idp.jwksRequests, before + 1);
    // the refreshed set no longer has k1: new k1 tokens are refused once it is in place
    await until('the refreshed set to be in place', async () => {
      const res = await call('/aging/a', await token(k1, `later-${n++}`));
      if (res.status === 200) return false;
      await refused(res, 'NG_ERR_AUTH_UNKNOWN_KEY');
      return true;
    });
    assert.equal((await call('/aging/a', await token(k2))).status, 200);
    assert.equal((await call('/aging/a', early)).status, 200, 'a token verified before stays cached (cacheMaxSeconds, exp)');
  } finally {
    idp.keys = saved;
  }
});

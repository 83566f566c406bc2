import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { basicCredentials, problemOf, startIdp, type TestIdp } from '../helpers/idp.js';

// Opaque tokens checked against a real RFC 7662 endpoint.
let up: TestUpstream;
let idp: TestIdp;
let doomed: TestIdp;
let gw: TestGateway;

/** The gateway config; `cacheSeconds` of the main route varies for the reload test. */
function config(cacheSeconds: number, extraRoute = ''): string {
  const method = (url: string, extra: string) =>
    `{ methods: { introspection: { url: "${url}", clientId: gateway, clientSecret: "s3cr3t:with colon", timeoutMs: 1000${extra} } } }`;
  return `
reload: { watch: false }
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
routes:
  - { name: opaque, match: { prefix: /o }, upstream: app, policies: { auth: ${method(idp.introspectUrl, `, cacheSeconds: ${cacheSeconds}, tokenTypeHint: access_token`)} } }
  - { name: nocache, match: { prefix: /n }, upstream: app, policies: { auth: ${method(idp.introspectUrl, ', cacheSeconds: 0')} } }
  - { name: down, match: { prefix: /d }, upstream: app, policies: { auth: ${method(doomed.introspectUrl, ', cacheSeconds: 60')} } }
${extraRoute}`;
}

before(async () => {
  idp = await startIdp({ clientId: 'gateway', clientSecret: 's3cr3t:with colon' });
  doomed = await startIdp();
  up = await startUpstream();
  gw = await startGateway(config(60));
  await doomed.close();
});
after(async () => {
  await gw?.stop();
  await up?.close();
  await idp?.close();
  await doomed?.close();
});

const call = (path: string, token: string) => fetch(`${gw.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

test('an active token passes; the call carries Basic client credentials and the token type hint', async () => {
  idp.tokens.set('opaque-1', { active: true, sub: 'alice', scope: 'read write', exp: inAnHour() });
  const res = await call('/o/x', 'opaque-1');
  assert.equal(res.status, 200);
  // RFC 6749 2.3.1: id and secret are form-encoded before base64, so the colon inside the secret survives
  const auth = idp.lastIntrospection!.authorization!;
  assert.equal(Buffer.from(auth.slice(6), 'base64').toString(), 'gateway:s3cr3t%3Awith+colon');
  assert.equal(basicCredentials(auth), 'gateway:s3cr3t:with colon');
  assert.equal(idp.lastIntrospection!.body, 'token=opaque-1&token_type_hint=access_token');
});

test('a repeat is served from the cache: the endpoint sees one call', async () => {
  idp.tokens.set('opaque-2', { active: true, sub: 'bob', exp: inAnHour() });
  const before = idp.introspectRequests;
  for (let i = 0; i < 5; i++) assert.equal((await call('/o/x', 'opaque-2')).status, 200);
  assert.equal(idp.introspectRequests, before + 1);
  // and concurrent first requests share one call
  idp.tokens.set('opaque-3', { active: true, sub: 'bob', exp: inAnHour() });
  const statuses = await Promise.all(Array.from({ length: 8 }, () => call('/o/x', 'opaque-3').then((r) => r.status)));
  assert.deepEqual(statuses, Array(8).fill(200));
  assert.equal(idp.introspectRequests, before + 2);
});

test('cacheSeconds: 0 asks every time', async () => {
  idp.tokens.set('opaque-4', { active: true, sub: 'carol' });
  const before = idp.introspectRequests;
  for (let i = 0; i < 3; i++) assert.equal((await call('/n/x', 'opaque-4')).status, 200);
  assert.equal(idp.introspectRequests, before + 3);
});

test('active: false -> 401 NG_ERR_AUTH_INVALID (and that answer is cached too)', async () => {
  const before = idp.introspectRequests;
  for (let i = 0; i < 2; i++) {
    const p = await problemOf(await call('/o/x', 'revoked-token'));
    assert.equal(p.status, 401);
    assert.equal(p.code, 'NG_ERR_AUTH_INVALID');
    assert.match(p.challenge!, /^Bearer realm="nanogate"/);
  }
  assert.equal(idp.introspectRequests, before + 1);
});

test('an active token past its exp is not served from the cache', async () => {
  idp.tokens.set('opaque-5', { active: true, sub: 'dan', exp: Math.floor(Date.now() / 1000) - 1 });
  const before = idp.introspectRequests;
  assert.equal((await call('/o/x', 'opaque-5')).status, 200);
  assert.equal((await call('/o/x', 'opaque-5')).status, 200);
  assert.equal(idp.introspectRequests, before + 2);
});

test('endpoint down, or answering an error: 503 NG_ERR_AUTH_UNAVAILABLE', async () => {
  let p = await problemOf(await call('/d/x', 'whatever'));
  assert.equal(p.status, 503);
  assert.equal(p.code, 'NG_ERR_AUTH_UNAVAILABLE');
  idp.introspectStatus = 500;
  try {
    p = await problemOf(await call('/o/x', 'never-seen-before'));
    assert.equal(p.status, 503);
    assert.equal(p.code, 'NG_ERR_AUTH_UNAVAILABLE');
    // a cached answer still serves while the endpoint fails
    assert.equal((await call('/o/x', 'opaque-2')).status, 200);
  } finally {
    idp.introspectStatus = 200;
  }
  // the failure was not cached
  idp.tokens.set('never-seen-before', { active: true, sub: 'eve' });
  assert.equal((await call('/o/x', 'never-seen-before')).status, 200);
});

test('a reload that keeps the settings keeps the cache warm; changed settings start a new cache', async () => {
  idp.tokens.set('opaque-r', { active: true, sub: 'frank', exp: inAnHour() });
  const before = idp.introspectRequests;
  assert.equal((await call('/o/x', 'opaque-r')).status, 200);
  gw.rewrite(config(60, '  - { name: extra, match: { prefix: /extra }, upstream: app }'));
  await gw.gateway.reload();
  assert.equal((await call('/o/x', 'opaque-r')).status, 200);
  assert.equal(idp.introspectRequests, before + 1, 'served from the cache across the reload');
  gw.rewrite(config(30));
  await gw.gateway.reload();
  assert.equal((await call('/o/x', 'opaque-r')).status, 200);
  assert.equal(idp.introspectRequests, before + 2, 'new settings, new cache');
});

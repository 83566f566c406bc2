import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { problemOf, signToken, startIdp, type TestIdp } from '../helpers/idp.js';

// Tokens mapped to consumers (issuer + subject -> consumer table), seen by the upstream through identity headers.
const SECRET = 'consumer-mapping-secret-32-bytes-long!';
const hs = { privateKey: new TextEncoder().encode(SECRET), alg: 'HS256' };
const ISS = 'https://issuer.test';

let up: TestUpstream;
let idp: TestIdp;
let gw: TestGateway;

before(async () => {
  up = await startUpstream();
  idp = await startIdp();
  const identity = '{ consumerId: X-Consumer-Id, plan: X-Consumer-Plan, scopes: X-Scopes, roles: X-Roles }';
  gw = await startGateway(`
consumers:
  - { id: acme, plan: gold, jwt: [{ issuer: "${ISS}", subject: svc-acme }], scopes: [orders.read], roles: [partner] }
  - { id: globex, jwt: [{ issuer: "${ISS}", subject: svc-globex }] }
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
routes:
  - name: mapped
    match: { prefix: /m }
    upstream: app
    policies:
      auth: { identityHeaders: ${identity}, methods: { jwt: { keys: [{ alg: HS256, secret: "${SECRET}" }] } } }
  - name: optional
    match: { prefix: /opt }
    upstream: app
    policies:
      auth: { identityHeaders: ${identity}, methods: { jwt: { keys: [{ alg: HS256, secret: "${SECRET}" }], mapConsumer: optional } } }
  - name: unmapped
    match: { prefix: /u }
    upstream: app
    policies:
      auth: { identityHeaders: ${identity}, methods: { jwt: { keys: [{ alg: HS256, secret: "${SECRET}" }], mapConsumer: off } } }
  - name: introspected
    match: { prefix: /i }
    upstream: app
    policies:
      auth:
        identityHeaders: ${identity}
        methods: { introspection: { url: "${idp.introspectUrl}", clientId: gateway, clientSecret: gateway-secret, issuer: "${ISS}" } }
`);
});
after(async () => {
  await gw?.stop();
  await up?.close();
  await idp?.close();
});

const call = (path: string, token: string) => fetch(`${gw.url}${path}`, { headers: { authorization: `Bearer ${token}`, 'x-consumer-id': 'forged' } });
const seen = async (res: Response) => {
  assert.equal(res.status, 200);
  return ((await res.json()) as { headers: Record<string, string | undefined> }).headers;
};

test('a token whose issuer+subject map to a consumer carries that consumer (plan; scopes and roles from the token when it has them)', async () => {
  let h = await seen(await call('/m/x', await signToken({ iss: ISS, sub: 'svc-acme' }, hs)));
  assert.equal(h['x-consumer-id'], 'acme');
  assert.equal(h['x-consumer-plan'], 'gold');
  assert.equal(h['x-scopes'], 'orders.read', 'no scope claim: the consumer scopes');
  assert.equal(h['x-roles'], 'partner');
  h = await seen(await call('/m/x', await signToken({ iss: ISS, sub: 'svc-acme', scope: 'orders.write' }, hs)));
  assert.equal(h['x-scopes'], 'orders.write', 'the token scope claim wins');
  h = await seen(await call('/m/x', await signToken({ iss: ISS, sub: 'svc-acme', roles: ['auditor'] }, hs)));
  assert.equal(h['x-roles'], 'auditor', 'and so does its roles claim');
  h = await seen(await call('/m/x', await signToken({ iss: ISS, sub: 'svc-globex' }, hs)));
  assert.equal(h['x-consumer-id'], 'globex');
});

test('a valid token for no consumer: 401 NG_ERR_AUTH_UNKNOWN_CONSUMER (mapConsumer auto = required here)', async () => {
  for (const claims of [{ iss: ISS, sub: 'stranger' }, { iss: 'https://other.test', sub: 'svc-acme' }, { iss: ISS }]) {
    const p = await problemOf(await call('/m/x', await signToken(claims, hs)));
    assert.equal(p.status, 401);
    assert.equal(p.code, 'NG_ERR_AUTH_UNKNOWN_CONSUMER');
  }
});

test('mapConsumer optional: unmapped subjects pass as themselves; off: the table is not consulted', async () => {
  let h = await seen(await call('/opt/x', await signToken({ iss: ISS, sub: 'svc-acme' }, hs)));
  assert.equal(h['x-consumer-id'], 'acme');
  h = await seen(await call('/opt/x', await signToken({ iss: ISS, sub: 'stranger', scp: ['a', 'b'], roles: ['r1'] }, hs)));
  assert.equal(h['x-consumer-id'], 'stranger');
  assert.equal(h['x-scopes'], 'a b');
  assert.equal(h['x-roles'], 'r1');
  h = await seen(await call('/u/x', await signToken({ iss: ISS, sub: 'svc-acme', scope: 'x' }, hs)));
  assert.equal(h['x-consumer-id'], 'svc-acme');
  assert.equal(h['x-consumer-plan'], undefined);
  assert.equal(h['x-scopes'], 'x');
});

test('introspection answers map to consumers the same way (configured issuer when the answer has none)', async () => {
  idp.tokens.set('opaque-acme', { active: true, sub: 'svc-acme' });
  idp.tokens.set('opaque-nobody', { active: true, sub: 'nobody', iss: ISS });
  const h = await seen(await call('/i/x', 'opaque-acme'));
  assert.equal(h['x-consumer-id'], 'acme');
  const p = await problemOf(await call('/i/x', 'opaque-nobody'));
  assert.equal(p.code, 'NG_ERR_AUTH_UNKNOWN_CONSUMER');
});

test('a cached token follows the consumer table: after a reload changes its consumer, the next request carries the change', async () => {
  const config = (consumers: string) => `
consumers:
${consumers}
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
routes:
  - name: mapped
    match: { prefix: /m }
    upstream: app
    policies:
      auth: { identityHeaders: { consumerId: X-Consumer-Id, plan: X-Consumer-Plan }, methods: { jwt: { keys: [{ alg: HS256, secret: "${SECRET}" }] } } }
`;
  const acme = (plan: string) => `  - { id: acme, plan: ${plan}, jwt: [{ issuer: "${ISS}", subject: svc-acme }] }`;
  const other = `  - { id: other, jwt: [{ issuer: "${ISS}", subject: svc-other }] }`;
  const own = await startGateway(config(acme('gold')));
  try {
    const token = await signToken({ iss: ISS, sub: 'svc-acme', exp: Math.floor(Date.now() / 1000) + 600 }, hs);
    const get = () => fetch(`${own.url}/m/x`, { headers: { authorization: `Bearer ${token}` } });
    for (let i = 0; i < 2; i++) assert.equal((await seen(await get()))['x-consumer-plan'], 'gold');
    own.rewrite(config(`${acme('silver')}\n${other}`));
    await own.gateway.reload();
    assert.equal((await seen(await get()))['x-consumer-plan'], 'silver');
    own.rewrite(config(other));
    await own.gateway.reload();
    const gone = await get();
    assert.equal(gone.status, 401);
    assert.equal((await problemOf(gone)).code, 'NG_ERR_AUTH_UNKNOWN_CONSUMER');
  } finally {
    await own.stop();
  }
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { signToken } from '../helpers/idp.js';
import { loadConfigText } from '../../src/config/load.js';
import { compileConfig } from '../../src/config/compile.js';
import { ConfigError } from '../../src/config/errors.js';

const SECRET = 'a-shared-secret-of-at-least-32-bytes!';
const ISS = 'https://issuer.test';
const KEY = { alice: 'alice-0123456789abcdef', bob: 'bob-0123456789abcdef', carol: 'carol-0123456789abcdef', dave: 'dave-0123456789abcdef' };

let up: TestUpstream;
let gw: TestGateway;

before(async () => {
  up = await startUpstream();
  gw = await startGateway(`
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
consumers:
  - id: alice
    keys: [{ key: ${KEY.alice} }]
    subscriptions: [orders, { api: billing, environment: prod }]
    scopes: [orders:read, orders:write]
    roles: [admin]
  - id: bob
    keys: [{ key: ${KEY.bob} }]
    subscriptions: [orders]
    scopes: [orders:read]
    allowIps: [10.0.0.0/8]
  - id: carol
    keys: [{ key: ${KEY.carol} }]
    subscriptions: [{ api: "*" }]
    roles: [support]
    allowIps: [127.0.0.1/32, "::1"]
  - id: dave
    keys: [{ key: ${KEY.dave} }]
    jwt: [{ issuer: ${ISS}, subject: dave-sub }]
    scopes: [orders:read]
policies:
  auth:
    methods:
      apiKey: {}
      jwt: { keys: [{ alg: HS256, secret: "${SECRET}" }], issuer: ${ISS} }
    identityHeaders: { consumerId: X-Consumer-Id }
routes:
  - { name: orders, match: { prefix: /orders }, upstream: app, policies: { authorize: {} } }
  - { name: whoami, match: { prefix: /whoami }, upstream: app }
  - name: orders-write
    match: { prefix: /write }
    upstream: app
    policies: { authorize: { api: orders, scopes: { allOf: [orders:read, orders:write] } } }
  - name: orders-any
    match: { prefix: /any }
    upstream: app
    policies: { authorize: { api: orders, scopes: { anyOf: [orders:write, orders:admin] } } }
  - name: support
    match: { prefix: /support }
    upstream: app
    policies: { authorize: { subscription: false, roles: { anyOf: [admin, support] } } }
  - name: billing
    match: { prefix: /billing }
    upstream: app
    policies: { authorize: { environment: prod } }
  - name: billing-staging
    match: { prefix: /staging-billing }
    upstream: app
    policies: { authorize: { api: billing, environment: staging } }
  - name: secret
    match: { prefix: /secret }
    upstream: app
    policies: { authorize: { api: orders, hide: true } }
  - name: anon-authz
    match: { prefix: /anon }
    upstream: app
    policies:
      auth: { methods: { apiKey: {} }, anonymous: true }
      authorize: { api: orders }
`);
});
after(async () => {
  await gw.stop();
  await up.close();
});

async function call(path: string, who: keyof typeof KEY | null, headers: Record<string, string> = {}) {
  const res = await fetch(`${gw.url}${path}`, { headers: who ? { 'x-api-key': KEY[who], ...headers } : headers });
  const body = res.headers.get('content-type') === 'application/problem+json' ? ((await res.json()) as { code: string; detail?: string }) : (await res.text(), null);
  return { status: res.status, code: body?.code ?? null, detail: body?.detail };
}

test('a subscription to the route\'s API (the route name by default) is required', async () => {
  assert.equal((await call('/orders/1', 'alice')).status, 200);
  const dave = await call('/orders/1', 'dave');
  assert.equal(dave.status, 403);
  assert.equal(dave.code, 'NG_ERR_AUTHZ_FORBIDDEN');
  assert.match(dave.detail!, /subscription/);
  assert.equal((await call('/orders/1', 'carol')).status, 200, '"*" subscribes to every API');
});

test('scopes: allOf needs every one, anyOf at least one', async () => {
  assert.equal((await call('/write/1', 'alice')).status, 200);
  const bob = await call('/write/1', 'carol');
  assert.equal(bob.status, 403);
  assert.match(bob.detail!, /scope/);
  assert.equal((await call('/any/1', 'alice')).status, 200);
  assert.equal((await call('/any/1', 'carol')).code, 'NG_ERR_AUTHZ_FORBIDDEN');
});

test('roles anyOf, without a subscription requirement', async () => {
  assert.equal((await call('/support/1', 'alice')).status, 200);
  assert.equal((await call('/support/1', 'carol')).status, 200);
  const dave = await call('/support/1', 'dave');
  assert.equal(dave.status, 403);
  assert.match(dave.detail!, /role/);
});

test('environments: a subscription for prod does not open staging; one without environment opens both', async () => {
  assert.equal((await call('/billing/1', 'alice')).status, 200);
  assert.equal((await call('/staging-billing/1', 'alice')).code, 'NG_ERR_AUTHZ_FORBIDDEN');
  assert.equal((await call('/staging-billing/1', 'carol')).status, 200);
});

test('hide: a refused consumer gets the same 404 as an unknown path', async () => {
  const hidden = await call('/secret/x', 'dave');
  const unknown = await call('/no-such-route', 'dave');
  assert.equal(hidden.status, 404);
  assert.equal(hidden.code, 'NG_ERR_ROUTE_NOT_FOUND');
  assert.equal(unknown.code, 'NG_ERR_ROUTE_NOT_FOUND');
  assert.equal(hidden.detail, 'no route for GET /secret/x');
  assert.equal((await call('/secret/x', 'alice')).status, 200);
});

test('the consumer\'s own IP allowlist: outside it is 403, inside it passes', async () => {
  const bob = await call('/orders/1', 'bob'); // calls from 127.0.0.1, allowlist 10.0.0.0/8
  assert.equal(bob.status, 403);
  assert.equal(bob.code, 'NG_ERR_AUTHZ_FORBIDDEN');
  assert.match(bob.detail!, /address/);
  assert.equal((await call('/orders/1', 'carol')).status, 200);
});

test('anonymous requests on a route that authorizes are refused', async () => {
  const res = await call('/anon/1', null);
  assert.equal(res.status, 403);
  assert.equal(res.code, 'NG_ERR_AUTHZ_FORBIDDEN');
  assert.equal((await call('/anon/1', 'alice')).status, 200);
});

test('two methods on one route: an API key or a JWT mapped to a consumer, then the same authorization', async () => {
  const key = { privateKey: new TextEncoder().encode(SECRET), alg: 'HS256' };
  const token = await signToken({ iss: ISS, sub: 'dave-sub' }, key);
  const who = await fetch(`${gw.url}/whoami`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(who.status, 200);
  assert.equal(up.received.at(-1)!.headers['x-consumer-id'], 'dave', 'issuer + subject mapped to the consumer');
  const res = await fetch(`${gw.url}/support/1`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 403, 'dave (by JWT) has no role for support');
  const ok = await fetch(`${gw.url}/write/1`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(ok.status, 403);
  const alice = await fetch(`${gw.url}/orders/2`, { headers: { 'x-api-key': KEY.alice, authorization: 'Bearer not-a-token' } });
  assert.equal(alice.status, 200, 'the first method that accepts wins');
  assert.equal(up.received.at(-1)!.headers['x-consumer-id'], 'alice');
  const jwtOrders = await fetch(`${gw.url}/support/2`, { headers: { authorization: `Bearer ${await signToken({ iss: ISS, sub: 'nobody' }, key)}` } });
  assert.equal(jwtOrders.status, 401, 'a token that maps to no consumer is refused when consumers have JWT mappings');
});

test('authorize on a route without any auth policy is a config error', () => {
  const text = `
upstreams: { app: { nodes: [{ url: "http://127.0.0.1:1" }] } }
routes:
  - { name: r, match: { prefix: /r }, upstream: app, policies: { authorize: {} } }
`;
  assert.throws(() => compileConfig(loadConfigText(text, 'x.yaml'), 'x.yaml'), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.issues[0].path, 'routes[0].policies.authorize');
    return true;
  });
});

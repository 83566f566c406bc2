import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { admin } from '../helpers/admin.js';
import { closeAll, fieldValues, send } from '../helpers/http.js';

/**
 * Targeting (a header value; an API-key consumer's plan, role or subscription), stickiness by consumer and the
 * signed affinity cookie, through a real gateway with one real upstream server per version.
 */

const T = { timeout: 60_000 };
const SECRET = 'affinity-secret-0123456789';
const KEYS = { alice: 'alice-key-0123456789abcdef', bob: 'bob-key-0123456789abcdef', carol: 'carol-key-0123456789abcdef', dave: 'dave-key-0123456789abcdef' };

let stable: TestUpstream;
let canary: TestUpstream;
let gw: TestGateway;

function versionUpstream(name: string) {
  return startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'x-served-by': name });
    res.end(name);
  });
}

before(async () => {
  stable = await versionUpstream('stable');
  canary = await versionUpstream('canary');
  const many = Array.from({ length: 40 }, (_, i) => `  - { id: user-${i}, keys: [{ key: user-key-${i}-0123456789abcdef }] }`).join('\n');
  gw = await startGateway(`
upstreams:
  v1: { nodes: [{ url: ${stable.url} }] }
  v2: { nodes: [{ url: ${canary.url} }] }
consumers:
  - { id: alice, plan: beta, keys: [{ key: ${KEYS.alice} }] }
  - { id: bob, plan: gold, roles: [tester], keys: [{ key: ${KEYS.bob} }] }
  - { id: carol, subscriptions: [{ api: orders-beta, environment: prod }], keys: [{ key: ${KEYS.carol} }] }
  - { id: dave, plan: gold, subscriptions: [{ api: orders-beta, environment: test }], keys: [{ key: ${KEYS.dave} }] }
${many}
routes:
  - name: targeted
    match: { prefix: /targeted }
    upstream: v1
    policies: { auth: { methods: { apiKey: {} }, anonymous: true } }
    traffic:
      versions:
        - { name: stable, upstream: v1, weight: 100 }
        - { name: canary, upstream: v2, weight: 0 }
      targeting:
        - { version: canary, header: { name: X-Canary-Version, value: v2.1.0 } }
        - { version: canary, consumer: { plans: [beta] } }
        - { version: canary, consumer: { roles: [tester] } }
        - { version: canary, consumer: { subscription: { api: orders-beta, environment: prod } } }
  - name: keyed
    match: { prefix: /keyed }
    upstream: v1
    policies: { auth: { methods: { apiKey: {} } } }
    traffic:
      versions:
        - { name: stable, upstream: v1, weight: 100 }
        - { name: canary, upstream: v2, weight: 0 }
      targeting:
        - { version: canary, header: { name: x-canary-version, value: v2.1.0 } }
  - name: by-consumer
    match: { prefix: /by-consumer }
    upstream: v1
    policies: { auth: { methods: { apiKey: {} } } }
    traffic:
      versions:
        - { name: stable, upstream: v1, weight: 60 }
        - { name: canary, upstream: v2, weight: 40 }
      sticky: { by: consumer }
  - name: by-cookie
    match: { prefix: /by-cookie }
    upstream: v1
    traffic:
      versions:
        - { name: stable, upstream: v1, weight: 70 }
        - { name: canary, upstream: v2, weight: 30 }
      sticky: { by: cookie, name: sid }
  - name: by-ip
    match: { prefix: /by-ip }
    upstream: v1
    traffic:
      versions:
        - { name: stable, upstream: v1, weight: 50 }
        - { name: canary, upstream: v2, weight: 50 }
      sticky: { by: ip }
  - name: affine
    match: { prefix: /affine }
    upstream: v1
    traffic:
      versions:
        - { name: stable, upstream: v1, weight: 50 }
        - { name: canary, upstream: v2, weight: 50 }
      targeting:
        - { version: canary, header: { name: x-canary-version, value: v2.1.0 } }
      affinity: { cookie: ng-version, ttlSeconds: 600, secret: "${SECRET}" }
`);
}, T);

after(() => closeAll(() => gw?.stop(), () => stable?.close(), () => canary?.close()), T);

async function servedBy(path: string, headers: Record<string, string> = {}): Promise<string> {
  const r = await send(gw.port, { path, headers });
  assert.equal(r.status, 200, r.text);
  return String(r.headers['x-served-by']);
}

test('a header value sends a request to its version whatever the weights', T, async () => {
  assert.equal(await servedBy('/targeted', { 'x-canary-version': 'v2.1.0' }), 'canary');
  assert.equal(await servedBy('/targeted', { 'x-canary-version': 'v2.0.0' }), 'stable');
  assert.equal(await servedBy('/targeted'), 'stable');
});

test("an API-key consumer's plan, role or subscription sends it to its version; others follow the weights", T, async () => {
  assert.equal(await servedBy('/targeted', { 'x-api-key': KEYS.alice }), 'canary', 'plan beta');
  assert.equal(await servedBy('/targeted', { 'x-api-key': KEYS.bob }), 'canary', 'role tester');
  assert.equal(await servedBy('/targeted', { 'x-api-key': KEYS.carol }), 'canary', 'subscription orders-beta in prod');
  assert.equal(await servedBy('/targeted', { 'x-api-key': KEYS.dave }), 'stable', 'plan gold, orders-beta only in test');
  assert.equal(await servedBy('/targeted'), 'stable', 'anonymous');
});

test('the split is decided after authentication: a refused request goes to no version', T, async () => {
  const before = (await admin(gw.adminUrl, 'GET', '/routes/keyed/traffic')).body.versions;
  const r = await send(gw.port, { path: '/keyed', headers: { 'x-canary-version': 'v2.1.0' } });
  assert.equal(r.status, 401);
  assert.equal(JSON.parse(r.text).code, 'NG_ERR_AUTH_MISSING');
  assert.equal(await servedBy('/keyed', { 'x-canary-version': 'v2.1.0', 'x-api-key': KEYS.dave }), 'canary');
  const after = (await admin(gw.adminUrl, 'GET', '/routes/keyed/traffic')).body.versions;
  assert.deepEqual([after[0].requests - before[0].requests, after[1].requests - before[1].requests], [0, 1]);
});

test('sticky by consumer: each consumer stays on one version; the consumers spread by the weights', T, async () => {
  const seen = new Map<string, Set<string>>();
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 40; i++) {
      const v = await servedBy('/by-consumer', { 'x-api-key': `user-key-${i}-0123456789abcdef` });
      (seen.get(`user-${i}`) ?? seen.set(`user-${i}`, new Set()).get(`user-${i}`)!).add(v);
    }
  }
  for (const [id, versions] of seen) assert.equal(versions.size, 1, `${id} saw ${[...versions]}`);
  const onCanary = [...seen.values()].filter((s) => s.has('canary')).length;
  assert.ok(onCanary >= 6 && onCanary <= 26, `${onCanary} of 40 consumers on canary at 40 %`);
});

test('sticky by cookie and by client address: the same key, the same version', T, async () => {
  const first: string[] = [];
  for (let i = 0; i < 200; i++) first.push(await servedBy('/by-cookie', { cookie: `theme=dark; sid=session-${i}; lang=en` }));
  for (let i = 0; i < 200; i += 7) assert.equal(await servedBy('/by-cookie', { cookie: `sid=session-${i}` }), first[i], `session-${i} moved`);
  const onCanary = first.filter((v) => v === 'canary').length;
  assert.ok(onCanary >= 40 && onCanary <= 80, `${onCanary} of 200 cookies on canary at 30 %`);
  // every request of this test comes from 127.0.0.1: one key, one version, where the schedule would alternate
  const byIp = new Set<string>();
  for (let i = 0; i < 20; i++) byIp.add(await servedBy('/by-ip'));
  assert.equal(byIp.size, 1, `127.0.0.1 saw ${[...byIp]}`);
});

function signed(version: string, exp: number, route = 'affine'): string {
  const sig = createHmac('sha256', SECRET).update(`${route}\n${version}\n${exp}`).digest('base64url');
  return `${version}.${exp}.${sig}`;
}

async function affine(cookie?: string, headers: Record<string, string> = {}) {
  const r = await send(gw.port, { path: '/affine', headers: cookie === undefined ? headers : { ...headers, cookie } });
  assert.equal(r.status, 200, r.text);
  return { version: String(r.headers['x-served-by']), setCookie: fieldValues(r.rawHeaders, 'set-cookie') };
}

test('affinity: the gateway sets a signed cookie on assignment and honours it, without setting it again', T, async () => {
  const first = await affine();
  assert.equal(first.setCookie.length, 1);
  const [pair, ...attrs] = first.setCookie[0].split('; ');
  assert.deepEqual(attrs, ['Path=/', 'Max-Age=600', 'HttpOnly', 'SameSite=Lax']);
  const value = pair.slice('ng-version='.length);
  const [version, exp] = value.split('.');
  assert.equal(version, first.version);
  assert.ok(Math.abs(Number(exp) - (Date.now() / 1000 + 600)) < 5, 'expiry is now + ttlSeconds');
  assert.equal(value, signed(version, Number(exp)), 'value = version.expiry.HMAC-SHA256');
  for (let i = 0; i < 20; i++) {
    const r = await affine(`other=1; ng-version=${value}`);
    assert.equal(r.version, first.version);
    assert.deepEqual(r.setCookie, [], 'a valid cookie is not signed again');
  }
});

test('affinity: a forged, expired, other-route or unknown-version cookie is ignored, never an error', T, async () => {
  const exp = Math.floor(Date.now() / 1000) + 300;
  const good = signed('canary', exp);
  const forged = good.slice(0, -2) + (good.endsWith('AA') ? 'BB' : 'AA');
  for (const bad of [forged, signed('canary', Math.floor(Date.now() / 1000) - 10), signed('canary', exp, 'another-route'), signed('beta', exp), 'canary', 'canary.x.y', '']) {
    const r = await affine(`ng-version=${bad}`);
    assert.equal(r.setCookie.length, 1, `"${bad}" was not replaced by a new assignment`);
    assert.match(r.setCookie[0], new RegExp(`^ng-version=${r.version}\\.`));
  }
});

test('affinity wins over the weights, targeting wins over affinity, and a version at weight 0 loses its clients', T, async () => {
  const exp = Math.floor(Date.now() / 1000) + 300;
  let r = await admin(gw.adminUrl, 'PUT', '/routes/affine/traffic', { body: JSON.stringify({ weights: { stable: 99.9, canary: 0.1 } }) });
  assert.equal(r.status, 200);
  for (let i = 0; i < 10; i++) assert.equal((await affine(`ng-version=${signed('canary', exp)}`)).version, 'canary');
  const targeted = await affine(`ng-version=${signed('stable', exp)}`, { 'x-canary-version': 'v2.1.0' });
  assert.equal(targeted.version, 'canary');
  assert.deepEqual(targeted.setCookie, [], 'a targeted request gets no affinity cookie');
  r = await admin(gw.adminUrl, 'PUT', '/routes/affine/traffic', { body: JSON.stringify({ weights: { stable: 100, canary: 0 } }) });
  assert.equal(r.status, 200);
  const back = await affine(`ng-version=${signed('canary', exp)}`);
  assert.equal(back.version, 'stable');
  assert.match(back.setCookie[0], /^ng-version=stable\./);
});

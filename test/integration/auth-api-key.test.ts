import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

let up: TestUpstream;
let gw: TestGateway;

const ALICE = 'alice-key-0123456789abcdef';
const BOB = 'bob-key-0123456789abcdef';
const bobDigest = createHash('sha256').update(BOB).digest('hex');

before(async () => {
  up = await startUpstream();
  gw = await startGateway(`
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
consumers:
  - id: alice
    plan: gold
    keys: [{ key: ${ALICE} }]
    scopes: [orders:read, orders:write]
    roles: [admin, ops]
  - id: bob
    keys: [{ keySha256: ${bobDigest} }]
policies:
  auth:
    methods: { apiKey: {} }
    identityHeaders: { consumerId: X-Consumer-Id, plan: X-Consumer-Plan, scopes: X-Scopes, roles: X-Roles }
routes:
  - name: keyed
    match: { prefix: /keyed }
    upstream: app
  - name: query-key
    match: { prefix: /query }
    upstream: app
    policies:
      auth:
        methods: { apiKey: { query: api_key } }
        hideCredentials: true
        identityHeaders: { consumerId: X-Consumer-Id }
  - name: both-hidden
    match: { prefix: /hidden }
    upstream: app
    policies:
      auth:
        methods: { apiKey: { header: X-Key, query: key } }
        hideCredentials: true
  - name: open
    match: { prefix: /open }
    upstream: app
    policies:
      auth:
        methods: { apiKey: {} }
        anonymous: true
        identityHeaders: { consumerId: X-Consumer-Id }
  - { name: no-auth, match: { prefix: /plain }, upstream: app }
`);
});
after(async () => {
  await gw.stop();
  await up.close();
});

async function problem(res: Response) {
  assert.equal(res.headers.get('content-type'), 'application/problem+json');
  return (await res.json()) as { code: string; status: number };
}

test('a key in the header identifies its consumer; identity headers reach the upstream', async () => {
  const res = await fetch(`${gw.url}/keyed/a`, { headers: { 'x-api-key': ALICE } });
  assert.equal(res.status, 200);
  const seen = up.received.at(-1)!;
  assert.equal(seen.headers['x-consumer-id'], 'alice');
  assert.equal(seen.headers['x-consumer-plan'], 'gold');
  assert.equal(seen.headers['x-scopes'], 'orders:read orders:write');
  assert.equal(seen.headers['x-roles'], 'admin,ops');
  assert.equal(seen.headers['x-api-key'], ALICE, 'credentials pass unless hidden');
});

test('a key configured as keySha256 works, and a repeat (cached) still identifies the same consumer', async () => {
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`${gw.url}/keyed/b`, { headers: { 'x-api-key': BOB } });
    assert.equal(res.status, 200);
    assert.equal(up.received.at(-1)!.headers['x-consumer-id'], 'bob');
    assert.equal(up.received.at(-1)!.headers['x-consumer-plan'], undefined, 'no plan, no header');
  }
});

test('a wrong key is 401 NG_ERR_AUTH_UNKNOWN_KEY with a challenge; a missing key is NG_ERR_AUTH_MISSING', async () => {
  const before = up.received.length;
  let res = await fetch(`${gw.url}/keyed/a`, { headers: { 'x-api-key': 'wrong-key-0123456789abcdef' } });
  assert.equal(res.status, 401);
  assert.equal((await problem(res)).code, 'NG_ERR_AUTH_UNKNOWN_KEY');
  assert.match(res.headers.get('www-authenticate')!, /^ApiKey realm="nanogate", header="x-api-key"/);
  res = await fetch(`${gw.url}/keyed/a`);
  assert.equal(res.status, 401);
  assert.equal((await problem(res)).code, 'NG_ERR_AUTH_MISSING');
  assert.ok(res.headers.get('www-authenticate'));
  res = await fetch(`${gw.url}/keyed/a`, { headers: { 'x-api-key': 'x'.repeat(600) } });
  assert.equal((await problem(res)).code, 'NG_ERR_AUTH_MALFORMED');
  assert.equal(up.received.length, before, 'nothing reached the upstream');
});

test('a key in the query is accepted and, with hideCredentials, removed from the forwarded target', async () => {
  const res = await fetch(`${gw.url}/query/x?a=1&api_key=${ALICE}&b=2`);
  assert.equal(res.status, 200);
  const seen = up.received.at(-1)!;
  assert.equal(seen.url, '/query/x?a=1&b=2');
  assert.equal(seen.headers['x-consumer-id'], 'alice');
  const only = await fetch(`${gw.url}/query/y?api_key=${encodeURIComponent(BOB)}`);
  assert.equal(only.status, 200);
  assert.equal(up.received.at(-1)!.url, '/query/y');
  // This route reads the query only: a header key is not a credential here.
  const header = await fetch(`${gw.url}/query/z`, { headers: { 'x-api-key': ALICE } });
  assert.equal((await problem(header)).code, 'NG_ERR_AUTH_MISSING');
});

test('hideCredentials removes the credential header (and query) before forwarding', async () => {
  const res = await fetch(`${gw.url}/hidden/1?key=nothing-here&keep=1`, { headers: { 'x-key': ALICE } });
  assert.equal(res.status, 200);
  const seen = up.received.at(-1)!;
  assert.equal(seen.headers['x-key'], undefined);
  assert.equal(seen.url, '/hidden/1?keep=1');
});

test('client-sent identity headers are removed: with a key, anonymously, and repeated', async () => {
  const spoof = { 'x-consumer-id': 'root', 'x-consumer-plan': 'platinum', 'x-scopes': 'everything', 'x-roles': 'god' };
  let res = await fetch(`${gw.url}/keyed/s`, { headers: { ...spoof, 'x-api-key': BOB } });
  assert.equal(res.status, 200);
  let seen = up.received.at(-1)!;
  assert.equal(seen.headers['x-consumer-id'], 'bob');
  assert.equal(seen.headers['x-consumer-plan'], undefined);
  assert.equal(seen.headers['x-scopes'], undefined, 'bob has no scopes: the spoofed header must not survive');
  assert.equal(seen.headers['x-roles'], undefined);
  assert.equal(seen.rawHeaders.filter((h) => h.toLowerCase() === 'x-consumer-id').length, 1);

  res = await fetch(`${gw.url}/open/a`, { headers: spoof });
  assert.equal(res.status, 200, 'anonymous access allowed on this route');
  seen = up.received.at(-1)!;
  assert.equal(seen.headers['x-consumer-id'], undefined, 'anonymous: no identity, and the spoofed one is gone');
  assert.equal(seen.headers['x-scopes'], 'everything', 'headers not configured on this route pass through');
});

test('anonymous routes: no key passes, a valid key identifies, a wrong key is still refused', async () => {
  assert.equal((await fetch(`${gw.url}/open/1`)).status, 200);
  const res = await fetch(`${gw.url}/open/2`, { headers: { 'x-api-key': ALICE } });
  assert.equal(res.status, 200);
  assert.equal(up.received.at(-1)!.headers['x-consumer-id'], 'alice');
  const bad = await fetch(`${gw.url}/open/3`, { headers: { 'x-api-key': 'not-a-key-0123456789' } });
  assert.equal(bad.status, 401);
  assert.equal((await problem(bad)).code, 'NG_ERR_AUTH_UNKNOWN_KEY');
});

test('the plain key never stays in the control plane\'s config (only its digest)', async () => {
  const text = JSON.stringify(gw.gateway.config);
  assert.ok(!text.includes(ALICE));
  assert.ok(text.includes(createHash('sha256').update(ALICE).digest('hex')));
});

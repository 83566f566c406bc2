import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { assertNothingInternal, assertProblem, send } from '../helpers/http.js';
import { signToken } from '../helpers/idp.js';

/**
 * Response bodies through a real gateway from a real upstream: each JSON operation, scope filtering with JWT
 * consumers, version mappings, PII masking of each kind (and look-alikes left alone), and every refusal (too large,
 * not JSON, encoded) as a 502 with nothing of the body sent.
 */
const SECRET = 'a-shared-secret-of-at-least-32-bytes!';
const hs = { privateKey: new TextEncoder().encode(SECRET), alg: 'HS256' };
const ISS = 'https://issuer.test';

/** What the upstream answers, by path: [content-type, body, extra headers]. */
const BODIES: Record<string, [string, string, Record<string, string>?]> = {
  '/user': ['application/json', JSON.stringify({ id: 7, name: 'Ada', password: 'x', internal: { cost: 3 }, items: [{ id: 1, sku: 'a', cost: 9 }, { id: 2, sku: 'b', cost: 8 }] })],
  '/hr': ['application/json; charset=utf-8', JSON.stringify({ name: 'Ada', salary: 100, team: [{ name: 'Bob', salary: 90 }] })],
  '/pii': [
    'application/json',
    JSON.stringify({
      card: '4111 1111 1111 1111',
      cardNumber: 5500005555555559,
      notCard: '4111111111111112',
      order: 'order 1234567812345678 shipped',
      iban: 'DE89 3704 0044 0532 0130 00',
      badIban: 'DE00370400440532013000',
      email: 'ada@example.com',
      handle: 'ada@home',
      phone: '+44 20 7946 0958',
      room: '+12',
      date: '2024-01-15',
      ssn: '078-05-1120',
      nested: [{ note: 'mail bob@example.org or call +1 415 555 2671' }],
      secret: { token: 'abc' },
    }),
  ],
  '/text': ['text/plain', 'contact ada@example.com, card 4111111111111111'],
  '/html': ['text/html', '<p>ada@example.com</p>'],
  '/binary': ['application/octet-stream', 'ada@example.com 4111111111111111'],
  '/broken': ['application/json', '{"card":"4111111111111111","rest":'],
  '/big': ['application/json', JSON.stringify({ pad: 'x'.repeat(3000) })],
  '/gz': ['application/json', 'not really gzip', { 'content-encoding': 'gzip' }],
  '/v': ['application/json', JSON.stringify({ fullName: 'Ada', contact: { email: 'ada@example.com' } })],
  '/large': ['application/json', JSON.stringify({ rows: Array.from({ length: 400 }, (_, i) => ({ i, email: `u${i}@example.com`, card: '4111111111111111' })) })],
};

let up: TestUpstream;
let gw: TestGateway;
let chunked = false;

before(async () => {
  up = await startUpstream((req, res) => {
    const path = req.url!.split('?')[0];
    const found = BODIES[path];
    if (!found) return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"none"}');
    const [type, body, extra] = found;
    const headers: Record<string, string> = { 'content-type': type, 'x-upstream': 'yes', ...extra };
    if (!chunked) headers['content-length'] = String(Buffer.byteLength(body));
    res.writeHead(200, headers);
    // in two writes, so a transform sees the body arrive in pieces
    const half = Math.floor(body.length / 2);
    res.write(body.slice(0, half));
    setTimeout(() => res.end(body.slice(half)), 5);
  });
  gw = await startGateway(`
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
policies:
  auth:
    methods:
      jwt: { keys: [{ alg: HS256, secret: "${SECRET}" }], issuer: ${ISS} }
    anonymous: true
routes:
  - name: ops
    match: { prefix: /ops }
    upstream: app
    stripPrefix: true
    policies:
      transform:
        response:
          body:
            operations:
              - remove: [password, "items[*].cost"]
              - rename: { from: name, to: profile.displayName }
              - rename: { from: "items[*].sku", to: "items[*].code" }
              - set: { path: apiVersion, value: 2 }
              - add: { path: id, value: 999 }
              - add: { path: profile.tier, value: basic }
  - name: keep
    match: { prefix: /keep }
    upstream: app
    stripPrefix: true
    policies:
      transform:
        response: { body: { operations: [{ keep: [id, "items[*].id"] }] } }
  - name: scoped
    match: { prefix: /scoped }
    upstream: app
    stripPrefix: true
    policies:
      transform:
        response:
          body:
            scopes:
              - { path: salary, anyOf: ["hr:read", admin] }
              - { path: "team[*].salary", anyOf: [admin] }
  - name: masked
    match: { prefix: /masked }
    upstream: app
    stripPrefix: true
    policies:
      transform:
        response:
          body:
            maxBytes: 2048
            mask:
              detect: [{ type: card, style: last4 }, iban, email, phone]
              patterns: [{ name: us-ssn, regex: '\\b\\d{3}-\\d{2}-\\d{4}\\b', style: hash }]
              keys: [token]
              hashKey: a-hash-key-of-enough-length
  - name: versioned
    match: { prefix: /versioned }
    upstream: app
    stripPrefix: true
    policies:
      transform:
        versions:
          header: api-version
          mappings:
            "1": { response: [{ rename: { from: fullName, to: name } }, { rename: { from: contact.email, to: email } }, { remove: [contact] }] }
        response: { body: { mask: { detect: [email], style: last4 } } }
  - name: pooled
    match: { prefix: /pooled }
    upstream: app
    stripPrefix: true
    policies:
      transform:
        pool: { thresholdBytes: 1024 }
        response: { body: { mask: { detect: [card, email] } } }
`);
});
after(async () => {
  await gw.stop();
  await up.close();
});

const json = (r: { text: string }) => JSON.parse(r.text);

test('operations apply in order: remove, rename (also within array elements), set, add only when absent', async () => {
  const r = await send(gw.port, { path: '/ops/user' });
  assert.equal(r.status, 200);
  assert.deepEqual(json(r), { id: 7, internal: { cost: 3 }, items: [{ id: 1, code: 'a' }, { id: 2, code: 'b' }], profile: { displayName: 'Ada', tier: 'basic' }, apiVersion: 2 });
  // the transformed body has its own Content-Length, and the upstream's other headers come through
  assert.equal(Number(r.headers['content-length']), r.body.length);
  assert.equal(r.headers['transfer-encoding'], undefined);
  assert.equal(r.headers['x-upstream'], 'yes');
  // the gateway asked for an unencoded body: a body it transforms must be readable
  assert.equal(up.received.at(-1)!.headers['accept-encoding'], undefined);
});

test('a chunked upstream body is transformed the same and gets a Content-Length', async () => {
  chunked = true;
  try {
    const r = await send(gw.port, { path: '/keep/user', headers: { 'accept-encoding': 'gzip' } });
    assert.deepEqual(json(r), { id: 7, items: [{ id: 1 }, { id: 2 }] });
    assert.equal(Number(r.headers['content-length']), r.body.length);
  } finally {
    chunked = false;
  }
});

test('scope filtering: a field is visible only to consumers holding one of its scopes', async () => {
  const token = async (scope?: string) => 'Bearer ' + (await signToken({ sub: 'ada', iss: ISS, ...(scope ? { scope } : {}) }, hs));
  const hr = json(await send(gw.port, { path: '/scoped/hr', headers: { authorization: await token('hr:read') } }));
  assert.deepEqual(hr, { name: 'Ada', salary: 100, team: [{ name: 'Bob' }] });
  const admin = json(await send(gw.port, { path: '/scoped/hr', headers: { authorization: await token('admin other') } }));
  assert.deepEqual(admin, { name: 'Ada', salary: 100, team: [{ name: 'Bob', salary: 90 }] });
  const none = json(await send(gw.port, { path: '/scoped/hr', headers: { authorization: await token() } }));
  assert.deepEqual(none, { name: 'Ada', team: [{ name: 'Bob' }] });
  const anonymous = json(await send(gw.port, { path: '/scoped/hr' }));
  assert.deepEqual(anonymous, { name: 'Ada', team: [{ name: 'Bob' }] });
});

test('PII masking of each kind; look-alikes stay as they are', async () => {
  const r = await send(gw.port, { path: '/masked/pii' });
  assert.equal(r.status, 200);
  const b = json(r);
  assert.equal(b.card, '************1111');
  assert.equal(b.cardNumber, '************5559', 'a card sent as a JSON number');
  assert.equal(b.notCard, '4111111111111112', 'a 16-digit number failing Luhn is not a card');
  assert.equal(b.order, 'order 1234567812345678 shipped', 'fails Luhn too');
  assert.equal(b.iban, '[redacted]');
  assert.equal(b.badIban, 'DE00370400440532013000', 'wrong IBAN check digits');
  assert.equal(b.email, '[redacted]');
  assert.equal(b.handle, 'ada@home');
  assert.equal(b.phone, '[redacted]');
  assert.equal(b.room, '+12');
  assert.equal(b.date, '2024-01-15');
  assert.match(b.ssn, /^sha256:[0-9a-f]{16}$/);
  assert.deepEqual(b.nested, [{ note: 'mail [redacted] or call [redacted]' }]);
  assert.deepEqual(b.secret, { token: '[redacted]' });
  assert.ok(!r.text.includes('4111 1111') && !r.text.includes('55000055'), 'no card digits beyond the last four');
  assert.ok(!r.text.includes('example.com'));
});

test('text bodies get the detectors; other types pass untouched and unbuffered', async () => {
  assert.equal((await send(gw.port, { path: '/masked/text' })).text, 'contact [redacted], card ************1111');
  assert.equal((await send(gw.port, { path: '/masked/html' })).text, '<p>[redacted]</p>');
  assert.equal((await send(gw.port, { path: '/masked/binary' })).text, 'ada@example.com 4111111111111111');
});

test('malformed upstream JSON is a 502 with its own code and nothing of the body', async () => {
  const r = await send(gw.port, { path: '/masked/broken' });
  assertProblem(r, 502, 'NG_ERR_TRANSFORM_UPSTREAM_BAD_JSON');
  assert.ok(!r.text.includes('4111'));
  assert.equal(r.headers['x-upstream'], undefined, 'not the upstream head either');
  assertNothingInternal(r.text);
  // the gateway goes on serving
  assert.equal((await send(gw.port, { path: '/masked/text' })).status, 200);
});

test('a body over the limit is a 502, announced by Content-Length or found while reading a chunked one', async () => {
  const r = await send(gw.port, { path: '/masked/big' });
  assertProblem(r, 502, 'NG_ERR_TRANSFORM_UPSTREAM_TOO_LARGE');
  assert.ok(!r.text.includes('xxxx'));
  chunked = true;
  try {
    const c = await send(gw.port, { path: '/masked/big' });
    assertProblem(c, 502, 'NG_ERR_TRANSFORM_UPSTREAM_TOO_LARGE');
    assert.ok(!c.text.includes('xxxx'));
  } finally {
    chunked = false;
  }
  assert.equal((await send(gw.port, { path: '/masked/pii' })).status, 200);
});

test('an encoded upstream body the gateway cannot read is refused, not passed on unmasked', async () => {
  const r = await send(gw.port, { path: '/masked/gz' });
  assertProblem(r, 502, 'NG_ERR_TRANSFORM_UPSTREAM_ENCODING');
});

test('version mappings: a v1 client gets the v1 shape, others the upstream one; masking names the upstream shape', async () => {
  const v1 = json(await send(gw.port, { path: '/versioned/v', headers: { 'api-version': '1' } }));
  // last4 keeps the last four letters or digits of "adaexamplecom"
  assert.deepEqual(v1, { name: 'Ada', email: '*********ecom' });
  const v2 = json(await send(gw.port, { path: '/versioned/v' }));
  assert.deepEqual(Object.keys(v2), ['fullName', 'contact']);
  assert.equal(v2.contact.email, v1.email);
});

test('large bodies are transformed in the worker pool with the same result', async () => {
  const r = await send(gw.port, { path: '/pooled/large' });
  assert.equal(r.status, 200);
  const b = json(r);
  assert.equal(b.rows.length, 400);
  assert.deepEqual(b.rows[399], { i: 399, email: '[redacted]', card: '[redacted]' });
  assert.equal(Number(r.headers['content-length']), r.body.length);
  const small = json(await send(gw.port, { path: '/pooled/user' }));
  assert.equal(small.name, 'Ada');
});

test('the upstream error JSON is masked as well; HEAD has no body to transform', async () => {
  const r = await send(gw.port, { path: '/masked/none' });
  assert.equal(r.status, 404);
  assert.equal(r.text, '{"error":"none"}');
  const h = await send(gw.port, { method: 'HEAD', path: '/masked/pii' });
  assert.equal(h.status, 200);
  assert.equal(h.body.length, 0);
});

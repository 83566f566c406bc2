/**
 * The cache with the policies that change a response body, through a real gateway and a real origin: the cache
 * holds the upstream's representation, and transform (renames, scope filtering) and compression run once on every
 * answer, hit or miss, with the requesting consumer's scopes. Regression for a cache whose store filter sat after
 * the transform: it stored the transformed body and transformed it again on each hit.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startCacheOrigin, type CacheOrigin } from '../helpers/cache-origin.js';
import { send } from '../helpers/http.js';

const ALICE = 'alice-key-0123456789abcdef';
const BOB = 'bob-key-0123456789abcdef';

let origin: CacheOrigin;
let gw: TestGateway;

/**
 * `name` -> `displayName`, then `nick` -> `name`: applied once, displayName is the full name; applied twice, the
 * second pass would move the nick into displayName. `salary` is visible with the hr:read scope only.
 */
const UPSTREAM = JSON.stringify({ id: 7, name: 'Ada Lovelace', nick: 'Ada', salary: 100, pad: 'x'.repeat(2048) });
const ONCE_FULL = { id: 7, displayName: 'Ada Lovelace', name: 'Ada', salary: 100, pad: 'x'.repeat(2048) };
const { salary: _s, ...ONCE_FILTERED } = ONCE_FULL;

before(async () => {
  origin = await startCacheOrigin();
  const json = (_req: unknown, res: import('node:http').ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=600', etag: '"u1"', 'content-length': String(Buffer.byteLength(UPSTREAM)) });
    res.end(UPSTREAM);
  };
  origin.on('/t/user', json);
  origin.on('/tc/user', json);
  const transform = `
      transform:
        response:
          body:
            operations:
              - rename: { from: name, to: displayName }
              - rename: { from: nick, to: name }
            scopes:
              - { path: salary, anyOf: ["hr:read"] }`;
  gw = await startGateway(`
upstreams:
  origin: { nodes: [{ url: ${origin.url} }] }
consumers:
  - { id: alice, keys: [{ key: ${ALICE} }], scopes: ["hr:read"] }
  - { id: bob, keys: [{ key: ${BOB} }] }
policies:
  auth: { methods: { apiKey: {} } }
routes:
  - name: transformed
    match: { prefix: /t/ }
    upstream: origin
    policies:
      cache: {}${transform}
  - name: transformed-compressed
    match: { prefix: /tc/ }
    upstream: origin
    policies:
      cache: {}
      compression: { encodings: [gzip], minBytes: 0 }${transform}
`);
});
after(async () => {
  await gw.stop();
  await origin.close();
});

const get = (path: string, key: string, headers: Record<string, string> = {}) => send(gw.port, { path, headers: { 'x-api-key': key, ...headers } });

test('cache + transform: a hit is transformed exactly once, like the miss, and both answers are identical', async () => {
  const miss = await get('/t/user', ALICE);
  const hit = await get('/t/user', ALICE);
  assert.equal(origin.count('/t/user'), 1, 'the second request is a hit');
  assert.match(String(miss.headers['cache-status']), /fwd=uri-miss; fwd-status=200; stored/);
  assert.match(String(hit.headers['cache-status']), /; hit; /);
  assert.deepEqual(JSON.parse(miss.text), ONCE_FULL, 'the miss: renamed once');
  assert.deepEqual(JSON.parse(hit.text), ONCE_FULL, 'the hit: renamed once, not twice');
  assert.equal(hit.text, miss.text);
  assert.equal(hit.headers['content-length'], String(Buffer.byteLength(hit.text)), 'the framing is the transformed body\'s');
});

test('cache + transform: two consumers with different scopes get their own view of one stored entry', async () => {
  // bob (no hr:read) first: the stored entry must not be his filtered view
  const bob1 = await get('/t/user', BOB, { 'x-case': 'scopes' });
  const alice = await get('/t/user', ALICE);
  const bob2 = await get('/t/user', BOB);
  assert.equal(origin.count('/t/user'), 1, 'one entry answers both consumers (the key does not hold the consumer)');
  assert.deepEqual(JSON.parse(bob1.text), ONCE_FILTERED);
  assert.deepEqual(JSON.parse(bob2.text), ONCE_FILTERED, 'bob on a hit: salary filtered out');
  assert.deepEqual(JSON.parse(alice.text), ONCE_FULL, 'alice on a hit: salary kept (hr:read), not bob\'s view');
});

test('cache + transform + compression: the upstream body is stored once; each hit is transformed, then compressed or not per client', async () => {
  const gz = await get('/tc/user', BOB, { 'accept-encoding': 'gzip' });
  assert.equal(gz.headers['content-encoding'], 'gzip');
  assert.match(String(gz.headers['cache-status']), /stored/);
  const plain = await get('/tc/user', ALICE);
  const gzHit = await get('/tc/user', ALICE, { 'accept-encoding': 'gzip' });
  assert.equal(origin.count('/tc/user'), 1, 'one stored entry answers every encoding');
  assert.equal(plain.headers['content-encoding'], undefined);
  assert.match(String(plain.headers['cache-status']), /; hit; /);
  assert.match(String(gzHit.headers['cache-status']), /; hit; /);
  assert.equal(gzHit.headers['content-encoding'], 'gzip');
  assert.match(String(gzHit.headers.vary), /accept-encoding/i);
  assert.deepEqual(JSON.parse(gunzipSync(gz.body).toString()), ONCE_FILTERED, 'miss: bob\'s view, compressed');
  assert.deepEqual(JSON.parse(plain.text), ONCE_FULL, 'hit, identity: alice\'s view');
  assert.deepEqual(JSON.parse(gunzipSync(gzHit.body).toString()), ONCE_FULL, 'hit, gzip: alice\'s view, transformed once, then compressed');
});

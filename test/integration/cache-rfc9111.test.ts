/**
 * RFC 9111 behaviour of the cache policy through a real gateway and a real origin whose responses set each header
 * case. One test per rule; docs/caching.md lists them with their RFC sections.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { answer, startCacheOrigin, type CacheOrigin } from '../helpers/cache-origin.js';
import { send, fieldValues } from '../helpers/http.js';

const fieldCount = (raw: string[], name: string) => fieldValues(raw, name).length;
import { eventually } from '../helpers/admin.js';

let origin: CacheOrigin;
let gw: TestGateway;

before(async () => {
  origin = await startCacheOrigin();
  gw = await startGateway(`
upstreams:
  origin: { nodes: [{ url: ${origin.url} }] }
routes:
  - name: cached
    match: { prefix: /c }
    upstream: origin
    policies:
      cache: { heuristic: { enabled: true } }
  - name: ttl
    match: { prefix: /ttl }
    upstream: origin
    policies:
      cache: { ttl: 60, heuristic: { enabled: false } }
  - name: noheuristic
    match: { prefix: /nh }
    upstream: origin
    policies:
      cache: { heuristic: { enabled: false } }
  - name: defaults
    match: { prefix: /d/ }
    upstream: origin
    policies:
      cache: {}
  - name: cookies-default
    match: { prefix: /cp/ }
    upstream: origin
    policies:
      cache: {}
  - name: cookies-store
    match: { prefix: /sc/ }
    upstream: origin
    policies:
      cache: { setCookie: store }
  - name: transformed
    match: { prefix: /tr/ }
    upstream: origin
    policies:
      cache: {}
      transform: { response: { body: { operations: [{ set: { path: t, value: 1 } }] } } }
  - name: keyed
    match: { prefix: /k }
    upstream: origin
    policies:
      cache: { key: { query: exclude, params: [utm_source], headers: [x-tenant] } }
`);
});
after(async () => {
  await gw.stop();
  await origin.close();
});

const get = (path: string, headers: Record<string, string> = {}, method = 'GET') => send(gw.port, { path, headers, method });

test('the issue: two GETs answered "Cache-Control: public, max-age=60" reach the origin once (RFC 9111 4.2)', async () => {
  origin.on('/c/issue', answer({ 'cache-control': 'public, max-age=60' }));
  const a = await get('/c/issue');
  const b = await get('/c/issue');
  assert.equal(origin.count('/c/issue'), 1);
  assert.equal(a.text, 'ok 1');
  assert.equal(b.text, 'ok 1');
  assert.match(String(a.headers['cache-status']), /^nanogate; fwd=uri-miss; fwd-status=200; stored/);
  assert.match(String(b.headers['cache-status']), /^nanogate; hit; ttl=\d+/);
  assert.equal(b.headers['content-type'], 'text/plain');
});

test('Age is generated on a hit and includes the Age the origin sent (RFC 9111 4.2.3, 5.1)', async () => {
  origin.on('/c/age', answer({ 'cache-control': 'max-age=600', age: '100' }));
  await get('/c/age');
  const b = await get('/c/age');
  assert.ok(Number(b.headers.age) >= 100 && Number(b.headers.age) < 110, `age ${b.headers.age}`);
});

test('Date: the apparent age counts; a response older than its max-age by its Date is stale (RFC 9111 4.2.3)', async () => {
  origin.on('/c/olddate', answer({ 'cache-control': 'max-age=60', date: new Date(Date.now() - 120_000).toUTCString() }));
  await get('/c/olddate');
  await get('/c/olddate');
  assert.equal(origin.count('/c/olddate'), 2);
});

test('Date: Expires is measured from the Date, and the Age of a hit includes the apparent age (RFC 9111 4.2.1, 4.2.3)', async () => {
  const date = Date.now() - 3_600_000;
  origin.on('/c/expdate', answer({ date: new Date(date).toUTCString(), expires: new Date(date + 3_660_000).toUTCString() }));
  await get('/c/expdate');
  const b = await get('/c/expdate');
  assert.equal(origin.count('/c/expdate'), 1);
  assert.ok(Number(b.headers.age) >= 3600 && Number(b.headers.age) < 3610, `age ${b.headers.age}`);
  assert.equal(fieldCount(b.rawHeaders, 'date'), 1, 'one Date: the gateway\'s');
});

test('an expired response is not served without validation (RFC 9111 4.2)', async () => {
  origin.on('/c/expired', answer({ 'cache-control': 'max-age=0' }));
  await get('/c/expired');
  await get('/c/expired');
  assert.equal(origin.count('/c/expired'), 2);
});

test('s-maxage overrides max-age for a shared cache (RFC 9111 5.2.2.10)', async () => {
  origin.on('/c/smaxage', answer({ 'cache-control': 'max-age=0, s-maxage=60' }));
  await get('/c/smaxage');
  await get('/c/smaxage');
  assert.equal(origin.count('/c/smaxage'), 1);
});

test('Expires minus the response time gives the freshness when there is no max-age (RFC 9111 4.2.1, 5.3)', async () => {
  origin.on('/c/expires', answer({ expires: new Date(Date.now() + 60_000).toUTCString() }));
  await get('/c/expires');
  await get('/c/expires');
  assert.equal(origin.count('/c/expires'), 1);
});

test('an invalid Expires ("0") means already expired (RFC 9111 5.3)', async () => {
  origin.on('/c/expires0', answer({ expires: '0' }));
  await get('/c/expires0');
  await get('/c/expires0');
  assert.equal(origin.count('/c/expires0'), 2);
});

test('max-age wins over Expires (RFC 9111 5.3)', async () => {
  origin.on('/c/maxage-expires', answer({ 'cache-control': 'max-age=60', expires: new Date(Date.now() - 60_000).toUTCString() }));
  await get('/c/maxage-expires');
  await get('/c/maxage-expires');
  assert.equal(origin.count('/c/maxage-expires'), 1);
});

test('no-store is never stored (RFC 9111 5.2.2.5)', async () => {
  origin.on('/c/nostore', answer({ 'cache-control': 'no-store, max-age=60' }));
  const a = await get('/c/nostore');
  await get('/c/nostore');
  assert.equal(origin.count('/c/nostore'), 2);
  assert.match(String(a.headers['cache-status']), /detail=no-store/);
});

test('private is not stored by a shared cache (RFC 9111 5.2.2.7)', async () => {
  origin.on('/c/private', answer({ 'cache-control': 'private, max-age=60' }));
  await get('/c/private');
  await get('/c/private');
  assert.equal(origin.count('/c/private'), 2);
});

test('no-cache is stored but validated before every use (RFC 9111 5.2.2.4)', async () => {
  origin.on('/c/nocache', (req, res, n) => {
    if (req.headers['if-none-match'] === '"nc"') return void res.writeHead(304, { etag: '"nc"', 'cache-control': 'no-cache' }).end();
    res.writeHead(200, { etag: '"nc"', 'cache-control': 'no-cache', 'content-type': 'text/plain' }).end(`body ${n}`);
  });
  await get('/c/nocache');
  const b = await get('/c/nocache');
  assert.equal(origin.count('/c/nocache'), 2);
  assert.equal(origin.seen('/c/nocache')[1].headers['if-none-match'], '"nc"');
  assert.equal(b.status, 200);
  assert.equal(b.text, 'body 1', 'the 304 is answered with the stored body');
  assert.match(String(b.headers['cache-status']), /fwd=stale; fwd-status=304/);
});

test('a 304 from the origin updates the stored headers (RFC 9111 3.2, 4.3.4)', async () => {
  origin.on('/c/update', (req, res, n) => {
    if (req.headers['if-none-match'] === '"u1"') return void res.writeHead(304, { etag: '"u1"', 'cache-control': 'max-age=60', 'x-version': 'fresh' }).end();
    res.writeHead(200, { etag: '"u1"', 'cache-control': 'max-age=0', 'x-version': 'old', 'content-type': 'text/plain' }).end(`body ${n}`);
  });
  await get('/c/update');
  const b = await get('/c/update');
  assert.equal(b.headers['x-version'], 'fresh');
  const c = await get('/c/update');
  assert.equal(origin.count('/c/update'), 2, 'fresh again after the 304 (its max-age=60)');
  assert.equal(c.headers['x-version'], 'fresh');
  assert.equal(c.text, 'body 1');
});

test('revalidation uses Last-Modified when there is no ETag (RFC 9111 4.3.1)', async () => {
  const lm = new Date(Date.now() - 3_600_000).toUTCString();
  origin.on('/c/lm', (req, res, n) => {
    if (req.headers['if-modified-since'] === lm) return void res.writeHead(304, { 'cache-control': 'max-age=0' }).end();
    res.writeHead(200, { 'last-modified': lm, 'cache-control': 'max-age=0', 'content-type': 'text/plain' }).end(`body ${n}`);
  });
  await get('/c/lm');
  const b = await get('/c/lm');
  assert.equal(origin.seen('/c/lm')[1].headers['if-modified-since'], lm);
  assert.equal(b.text, 'body 1');
});

test('must-revalidate: a stale response is validated, never served stale (RFC 9111 5.2.2.2)', async () => {
  origin.on('/c/mustreval', answer({ 'cache-control': 'max-age=0, must-revalidate, stale-while-revalidate=60' }));
  await get('/c/mustreval');
  await get('/c/mustreval', { 'cache-control': 'max-stale=600' });
  assert.equal(origin.count('/c/mustreval'), 2);
});

test('proxy-revalidate applies to a shared cache like must-revalidate (RFC 9111 5.2.2.8)', async () => {
  origin.on('/c/proxyreval', answer({ 'cache-control': 'max-age=0, proxy-revalidate' }));
  await get('/c/proxyreval');
  await get('/c/proxyreval', { 'cache-control': 'max-stale=600' });
  assert.equal(origin.count('/c/proxyreval'), 2);
});

test('request max-stale allows a stale response without must-revalidate (RFC 9111 5.2.1.2)', async () => {
  origin.on('/c/maxstale', answer({ 'cache-control': 'max-age=0', etag: '"m"' }));
  await get('/c/maxstale');
  const b = await get('/c/maxstale', { 'cache-control': 'max-stale=600' });
  assert.equal(origin.count('/c/maxstale'), 1);
  assert.equal(b.text, 'ok 1');
});

test('request no-cache and max-age=0 go to the origin even for a fresh response (RFC 9111 5.2.1.4, 5.2.1.1)', async () => {
  origin.on('/c/reqnocache', answer({ 'cache-control': 'max-age=60' }));
  await get('/c/reqnocache');
  await get('/c/reqnocache', { 'cache-control': 'no-cache' });
  await get('/c/reqnocache', { 'cache-control': 'max-age=0' });
  await get('/c/reqnocache', { pragma: 'no-cache' });
  assert.equal(origin.count('/c/reqnocache'), 4);
});

test('immutable: a fresh response answers a reload (max-age=0) from the cache (RFC 8246)', async () => {
  origin.on('/c/immutable', answer({ 'cache-control': 'max-age=600, immutable' }));
  await get('/c/immutable');
  await get('/c/immutable', { 'cache-control': 'max-age=0' });
  assert.equal(origin.count('/c/immutable'), 1);
});

test('request no-store: the response is not stored (RFC 9111 5.2.1.5)', async () => {
  origin.on('/c/reqnostore', answer({ 'cache-control': 'max-age=60' }));
  await get('/c/reqnostore', { 'cache-control': 'no-store' });
  await get('/c/reqnostore');
  assert.equal(origin.count('/c/reqnostore'), 2);
});

test('only-if-cached with nothing stored: 504 problem+json, the origin is not asked (RFC 9111 5.2.1.7)', async () => {
  origin.on('/c/oic', answer({ 'cache-control': 'max-age=60' }));
  const r = await get('/c/oic', { 'cache-control': 'only-if-cached' });
  assert.equal(r.status, 504);
  assert.equal(JSON.parse(r.text).code, 'NG_ERR_CACHE_NOT_CACHED');
  assert.equal(origin.count('/c/oic'), 0);
  await get('/c/oic');
  const hit = await get('/c/oic', { 'cache-control': 'only-if-cached' });
  assert.equal(hit.status, 200);
});

test('stale-while-revalidate: a stale response answers at once and is refreshed in the background (RFC 5861 3)', async () => {
  origin.on('/c/swr', (req, res, n) => {
    if (n === 1) return void res.writeHead(200, { 'cache-control': 'max-age=0, stale-while-revalidate=60', etag: '"s1"', 'content-type': 'text/plain' }).end('v1');
    assert.equal(req.headers['if-none-match'], '"s1"', 'the refresh is conditional on the stored ETag');
    res.writeHead(200, { 'cache-control': 'max-age=60', etag: '"s2"', 'content-type': 'text/plain' }).end('v2');
  });
  await get('/c/swr');
  const stale = await get('/c/swr');
  assert.equal(stale.text, 'v1');
  assert.match(String(stale.headers['cache-status']), /hit; ttl=-?\d+/);
  assert.ok(await eventually(() => origin.count('/c/swr') === 2), 'one background refresh');
  let fresh = await get('/c/swr');
  for (let i = 0; i < 50 && fresh.text !== 'v2'; i++) fresh = await get('/c/swr');
  assert.equal(fresh.text, 'v2');
  assert.equal(origin.count('/c/swr'), 2, 'the refreshed entry is fresh: no more requests');
});

test('stale-while-revalidate: a 304 to the background refresh makes the stored response fresh again', async () => {
  origin.on('/c/swr304', (req, res, n) => {
    if (req.headers['if-none-match'] === '"k"') return void res.writeHead(304, { 'cache-control': 'max-age=60', etag: '"k"' }).end();
    res.writeHead(200, { 'cache-control': 'max-age=0, stale-while-revalidate=60', etag: '"k"', 'content-type': 'text/plain' }).end(`body ${n}`);
  });
  await get('/c/swr304');
  await get('/c/swr304');
  assert.ok(await eventually(() => origin.count('/c/swr304') === 2));
  let r = await get('/c/swr304');
  for (let i = 0; i < 50 && !/; hit; ttl=[1-9]/.test(String(r.headers['cache-status'])); i++) r = await get('/c/swr304');
  assert.match(String(r.headers['cache-status']), /; hit; ttl=[1-9]/);
  assert.equal(r.text, 'body 1');
  assert.equal(origin.count('/c/swr304'), 2);
});

test('Vary: each variant is stored apart and selected by the request fields it names (RFC 9111 4.1)', async () => {
  origin.on('/c/vary', (req, res, n) => {
    res.writeHead(200, { vary: 'Accept-Language', 'cache-control': 'max-age=60', 'content-type': 'text/plain' }).end(`${req.headers['accept-language']} ${n}`);
  });
  const de1 = await get('/c/vary', { 'accept-language': 'de' });
  const fr1 = await get('/c/vary', { 'accept-language': 'fr' });
  const de2 = await get('/c/vary', { 'accept-language': 'de' });
  const fr2 = await get('/c/vary', { 'accept-language': 'fr' });
  assert.equal(origin.count('/c/vary'), 2);
  assert.equal(de2.text, de1.text);
  assert.equal(fr2.text, fr1.text);
  assert.notEqual(de1.text, fr1.text);
  const other = await get('/c/vary', { 'accept-language': 'it' });
  assert.match(String(other.headers['cache-status']), /fwd=vary-miss/);
});

test('Vary: * is never stored (RFC 9111 4.1)', async () => {
  origin.on('/c/varystar', answer({ vary: '*', 'cache-control': 'max-age=60' }));
  await get('/c/varystar');
  await get('/c/varystar');
  assert.equal(origin.count('/c/varystar'), 2);
});

test('Authorization: stored only when the response says public, s-maxage or must-revalidate (RFC 9111 3.5)', async () => {
  origin.on('/c/auth-plain', answer({ 'cache-control': 'max-age=60' }));
  origin.on('/c/auth-public', answer({ 'cache-control': 'public, max-age=60' }));
  for (const p of ['/c/auth-plain', '/c/auth-public']) {
    await get(p, { authorization: 'Bearer a' });
    await get(p, { authorization: 'Bearer a' });
  }
  assert.equal(origin.count('/c/auth-plain'), 2);
  assert.equal(origin.count('/c/auth-public'), 1);
});

test('headers named in Connection are not stored nor served (RFC 9111 3.1)', async () => {
  origin.on('/c/connection', answer({ 'cache-control': 'max-age=60', connection: 'x-hop', 'x-hop': 'secret', 'x-end': 'kept' }));
  await get('/c/connection');
  const b = await get('/c/connection');
  assert.match(String(b.headers['cache-status']), /hit/);
  assert.equal(b.headers['x-hop'], undefined);
  assert.equal(b.headers['x-end'], 'kept');
});

test('Set-Cookie: with setCookie: store a response with it is stored and served with it, as every other field (RFC 9111 3.1)', async () => {
  origin.on('/sc/cookie', answer({ 'cache-control': 'max-age=60', 'set-cookie': 'shared=1' }));
  await get('/sc/cookie');
  const b = await get('/sc/cookie');
  assert.equal(origin.count('/sc/cookie'), 1);
  assert.match(String(b.headers['cache-status']), /; hit; /);
  assert.deepEqual(b.headers['set-cookie'], ['shared=1']);
});

test('Set-Cookie: with setCookie: store, private="set-cookie" and no-cache="set-cookie" store the response without the cookie (RFC 9111 5.2.2.7, 5.2.2.4)', async () => {
  origin.on('/sc/cookie-private', answer({ 'cache-control': 'private="set-cookie", max-age=60', 'set-cookie': 'sid=alice', 'x-kept': 'yes' }));
  origin.on('/sc/cookie-nocache', answer({ 'cache-control': 'no-cache="Set-Cookie", max-age=60', 'set-cookie': 'sid=alice' }));
  for (const p of ['/sc/cookie-private', '/sc/cookie-nocache']) {
    const a = await get(p);
    assert.deepEqual(a.headers['set-cookie'], ['sid=alice'], 'the first client gets its cookie');
    const b = await get(p);
    assert.equal(origin.count(p), 1, `${p}: stored, fresh, answered without validation`);
    assert.match(String(b.headers['cache-status']), /; hit; /);
    assert.equal(b.headers['set-cookie'], undefined, `${p}: the cookie is not served to another client`);
  }
  assert.equal((await get('/sc/cookie-private')).headers['x-kept'], 'yes', 'the fields not named are stored');
});

test('Set-Cookie: by default (setCookie: pass) a response carrying one is never stored', async () => {
  origin.on('/cp/cookie', answer({ 'cache-control': 'max-age=60', 'set-cookie': 'sid=1' }));
  const a = await get('/cp/cookie');
  await get('/cp/cookie');
  assert.equal(origin.count('/cp/cookie'), 2);
  assert.match(String(a.headers['cache-status']), /detail=set-cookie/);
  origin.on('/cp/plain', answer({ 'cache-control': 'max-age=60' }));
  await get('/cp/plain');
  await get('/cp/plain');
  assert.equal(origin.count('/cp/plain'), 1, 'responses without a cookie are stored as usual');
});

test('Set-Cookie: with setCookie: store, a 304 to a revalidation replaces the stored cookie (RFC 9111 4.3.4)', async () => {
  origin.on('/sc/cookie304', (req, res, n) => {
    if (req.headers['if-none-match'] === '"k"') return void res.writeHead(304, { etag: '"k"', 'cache-control': 'max-age=60', 'set-cookie': 'v=2' }).end();
    res.writeHead(200, { etag: '"k"', 'cache-control': 'max-age=0', 'set-cookie': 'v=1', 'content-type': 'text/plain' }).end(`body ${n}`);
  });
  await get('/sc/cookie304');
  const b = await get('/sc/cookie304');
  assert.deepEqual(b.headers['set-cookie'], ['v=2']);
  const c = await get('/sc/cookie304');
  assert.match(String(c.headers['cache-status']), /; hit; /);
  assert.deepEqual(c.headers['set-cookie'], ['v=2'], 'the updated cookie is what is stored');
});

test('no-cache="field": the response is reused without validation, without the named field (RFC 9111 5.2.2.4)', async () => {
  origin.on('/c/nocache-field', answer({ 'cache-control': 'no-cache="x-a, x-b", max-age=60', 'x-a': '1', 'x-b': '2', 'x-c': '3' }));
  await get('/c/nocache-field');
  const b = await get('/c/nocache-field');
  assert.equal(origin.count('/c/nocache-field'), 1);
  assert.equal(b.headers['x-a'], undefined);
  assert.equal(b.headers['x-b'], undefined);
  assert.equal(b.headers['x-c'], '3');
});

test('Age: a list uses its first member, and an invalid Age is ignored (RFC 9111 5.1)', async () => {
  origin.on('/c/age-list', answer({ 'cache-control': 'max-age=3600', age: '0, 7200' }));
  origin.on('/c/age-old-first', answer({ 'cache-control': 'max-age=3600', age: '7200, 0' }));
  origin.on('/c/age-bad', answer({ 'cache-control': 'max-age=3600', age: '-7200' }));
  for (const p of ['/c/age-list', '/c/age-list', '/c/age-old-first', '/c/age-old-first', '/c/age-bad', '/c/age-bad']) await get(p);
  assert.equal(origin.count('/c/age-list'), 1, '"0, 7200" is 0: fresh');
  assert.equal(origin.count('/c/age-old-first'), 2, '"7200, 0" is 7200: stale');
  assert.equal(origin.count('/c/age-bad'), 1, 'a negative Age is ignored: fresh');
});

test('heuristic freshness is off by default: Last-Modified alone is stored for validation, not served unvalidated (RFC 9111 4.2.2)', async () => {
  const lm = new Date(Date.now() - 86_400_000).toUTCString();
  origin.on('/d/heur', (req, res, n) => {
    if (req.headers['if-modified-since'] === lm) return void res.writeHead(304, { 'last-modified': lm }).end();
    res.writeHead(200, { 'last-modified': lm, 'content-type': 'text/plain' }).end(`v${n}`);
  });
  await get('/d/heur');
  const b = await get('/d/heur');
  assert.equal(origin.count('/d/heur'), 2, 'the second request goes to the origin');
  assert.equal(origin.seen('/d/heur')[1].headers['if-modified-since'], lm, '... conditional, with the stored validator');
  assert.equal(b.text, 'v1');
});

test('status codes: 404 with max-age is stored, 206 and unknown statuses are not (RFC 9111 3)', async () => {
  origin.on('/c/404', answer({ 'cache-control': 'max-age=60' }, 'missing', 404));
  origin.on('/c/299', answer({ 'cache-control': 'max-age=60' }, 'odd', 299));
  await get('/c/404');
  const b = await get('/c/404');
  assert.equal(b.status, 404);
  await get('/c/299');
  await get('/c/299');
  assert.equal(origin.count('/c/404'), 1);
  assert.equal(origin.count('/c/299'), 2);
});

test('heuristic freshness from Last-Modified, and none when it is configured off (RFC 9111 4.2.2)', async () => {
  const lm = new Date(Date.now() - 86_400_000).toUTCString();
  origin.on('/c/heur', answer({ 'last-modified': lm }));
  origin.on('/nh/heur', answer({ 'last-modified': lm }));
  await get('/c/heur');
  await get('/c/heur');
  await get('/nh/heur');
  await get('/nh/heur');
  assert.equal(origin.count('/c/heur'), 1);
  assert.equal(origin.count('/nh/heur'), 2);
});

test('a route TTL applies to responses without caching headers only (off by default)', async () => {
  origin.on('/ttl/none', answer({}));
  origin.on('/ttl/nostore', answer({ 'cache-control': 'no-store' }));
  origin.on('/c/none', answer({}));
  for (const p of ['/ttl/none', '/ttl/none', '/ttl/nostore', '/ttl/nostore', '/c/none', '/c/none']) await get(p);
  assert.equal(origin.count('/ttl/none'), 1);
  assert.equal(origin.count('/ttl/nostore'), 2);
  assert.equal(origin.count('/c/none'), 2);
});

test('client conditional requests are answered from the cache: If-None-Match over If-Modified-Since (RFC 9110 13.2.2)', async () => {
  const lm = new Date(Date.now() - 3_600_000).toUTCString();
  origin.on('/c/cond', answer({ 'cache-control': 'max-age=60', etag: '"c1"', 'last-modified': lm }));
  await get('/c/cond');
  const inm = await get('/c/cond', { 'if-none-match': '"c1"' });
  assert.equal(inm.status, 304);
  assert.equal(inm.headers.etag, '"c1"');
  assert.equal(inm.text, '');
  // If-None-Match that does not match wins over a matching If-Modified-Since
  const both = await get('/c/cond', { 'if-none-match': '"other"', 'if-modified-since': new Date().toUTCString() });
  assert.equal(both.status, 200);
  const ims = await get('/c/cond', { 'if-modified-since': new Date().toUTCString() });
  assert.equal(ims.status, 304);
  assert.equal(origin.count('/c/cond'), 1);
});

test('HEAD is answered from a stored GET response, without a body (RFC 9110 9.3.2)', async () => {
  origin.on('/c/head', answer({ 'cache-control': 'max-age=60' }));
  await get('/c/head');
  const h = await get('/c/head', {}, 'HEAD');
  assert.equal(h.status, 200);
  assert.equal(h.body.length, 0);
  assert.equal(h.headers['content-length'], '4');
  assert.equal(origin.count('/c/head'), 1);
});

test('unsafe methods invalidate the target and same-origin Location / Content-Location (RFC 9111 4.4)', async () => {
  origin.on('/c/inv', (req, res, n) => {
    if (req.method === 'POST') return void res.writeHead(201, { location: '/c/inv-loc', 'content-location': 'http://elsewhere.example/c/inv-other' }).end('made');
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' }).end(`v${n}`);
  });
  origin.on('/c/inv-loc', answer({ 'cache-control': 'max-age=60' }));
  await get('/c/inv');
  await get('/c/inv-loc');
  assert.match(String((await get('/c/inv')).headers['cache-status']), /hit/);
  const post = await get('/c/inv', {}, 'POST');
  assert.equal(post.status, 201);
  assert.match(String(post.headers['cache-status']), /fwd=method/);
  const after = await get('/c/inv');
  assert.equal(after.text, 'v3');
  await get('/c/inv-loc');
  assert.equal(origin.count('/c/inv-loc'), 2);
});

test('an unsafe request that fails does not invalidate (RFC 9111 4.4: non-error status only)', async () => {
  origin.on('/c/inv-fail', (req, res, n) => {
    if (req.method === 'DELETE') return void res.writeHead(500).end('no');
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' }).end(`v${n}`);
  });
  await get('/c/inv-fail');
  await get('/c/inv-fail', {}, 'DELETE');
  const b = await get('/c/inv-fail');
  assert.equal(b.text, 'v1');
});

test('Range: a request for a part is passed through on a miss and its 206 never stored; a full request gets the full 200 (RFC 9111 3.3, 3.4)', async () => {
  origin.on('/c/range', (req, res) => {
    const full = '0123456789';
    if (req.headers.range === 'bytes=0-3') return void res.writeHead(206, { 'content-range': 'bytes 0-3/10', 'cache-control': 'max-age=60', 'content-type': 'text/plain' }).end(full.slice(0, 4));
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' }).end(full);
  });
  const part = await get('/c/range', { range: 'bytes=0-3' });
  assert.equal(part.status, 206);
  assert.equal(part.text, '0123');
  assert.match(String(part.headers['cache-status']), /detail=range/);
  const full = await get('/c/range');
  assert.equal(full.status, 200);
  assert.equal(full.text, '0123456789', 'the 206 was not stored as the full response');
  const again = await get('/c/range');
  assert.equal(again.status, 200, 'a hit for a full request is never a 206');
  assert.equal(again.text, '0123456789');
  assert.equal(origin.count('/c/range'), 2);
});

test('Range: a stored full response answers one byte range with a 206 cut from it, and 416 past its end (RFC 9110 14.1.2, 14.4, 15.3.7)', async () => {
  origin.on('/c/range-hit', (_req, res) => void res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain', etag: '"r1"', 'x-a': '1' }).end('0123456789A'));
  await get('/c/range-hit');
  const cases: [string, number, string, string | undefined][] = [
    ['bytes=0-1', 206, '01', 'bytes 0-1/11'],
    ['bytes=1-', 206, '123456789A', 'bytes 1-10/11'],
    ['bytes=-1', 206, 'A', 'bytes 10-10/11'],
    ['bytes=5-100', 206, '56789A', 'bytes 5-10/11'],
    ['bytes=20-30', 416, '', 'bytes */11'],
    ['bytes=0-1, 3-4', 200, '0123456789A', undefined],
    ['bytes=3-1', 200, '0123456789A', undefined],
    ['items=0-1', 200, '0123456789A', undefined],
  ];
  for (const [range, status, text, contentRange] of cases) {
    const r = await get('/c/range-hit', { range });
    assert.equal(r.status, status, range);
    assert.equal(r.text, text, range);
    assert.equal(r.headers['content-range'], contentRange, range);
    assert.match(String(r.headers['cache-status']), /; hit; /, range);
    if (status === 206) {
      assert.equal(r.headers['content-length'], String(text.length), range);
      assert.equal(r.headers['x-a'], '1', 'the stored fields come with the part');
    }
  }
  const match = await get('/c/range-hit', { range: 'bytes=0-1', 'if-range': '"r1"' });
  assert.equal(match.status, 206);
  const other = await get('/c/range-hit', { range: 'bytes=0-1', 'if-range': '"changed"' });
  assert.equal(other.status, 200, 'If-Range naming another representation: the whole response (RFC 9110 13.1.5)');
  assert.equal(other.text, '0123456789A');
  assert.equal(origin.count('/c/range-hit'), 1);
});

test('Range: on a route that transforms response bodies a hit answers the whole (transformed) response', async () => {
  origin.on('/tr/range', (_req, res) => void res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'application/json' }).end('{"a":1}'));
  await get('/tr/range');
  const r = await get('/tr/range', { range: 'bytes=0-1' });
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.text), { a: 1, t: 1 });
  assert.match(String(r.headers['cache-status']), /; hit; /);
});

test('an interim 1xx (103 Early Hints) is never stored: the final response is, and a hit carries no 1xx (RFC 9111 3)', async () => {
  origin.on('/c/early', (_req, res, n) => {
    res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' }).end(`final ${n}`);
  });
  const a = await get('/c/early');
  assert.equal(a.status, 200);
  const b = await get('/c/early');
  assert.equal(b.status, 200);
  assert.equal(b.text, 'final 1');
  assert.match(String(b.headers['cache-status']), /; hit/);
  assert.equal(origin.count('/c/early'), 1);
});

test('keys: the host is part of the key; ignored query parameters share an entry and are not sent upstream', async () => {
  origin.on('/k/q', answer({ 'cache-control': 'max-age=60' }));
  await get('/k/q?id=1&utm_source=a');
  const b = await get('/k/q?id=1&utm_source=b');
  assert.match(String(b.headers['cache-status']), /hit/);
  assert.equal(origin.seen('/k/q')[0].url, '/k/q?id=1');
  await get('/k/q?id=2');
  assert.equal(origin.count('/k/q'), 2);
  await get('/k/q?id=1', { host: 'other.example' });
  assert.equal(origin.count('/k/q'), 3);
});

test('keys: a configured header is part of the key', async () => {
  origin.on('/k/tenant', (req, res, n) => void res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' }).end(`${req.headers['x-tenant']} ${n}`));
  const a = await get('/k/tenant', { 'x-tenant': 'a' });
  const b = await get('/k/tenant', { 'x-tenant': 'b' });
  const a2 = await get('/k/tenant', { 'x-tenant': 'a' });
  assert.equal(a2.text, a.text);
  assert.notEqual(a.text, b.text);
});

test('poisoning: a request with an unkeyed header the origin may act on bypasses the cache', async () => {
  origin.on('/c/poison', (req, res, n) => void res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' }).end(`${req.headers['x-original-url'] ?? 'real'} ${n}`));
  const evil = await get('/c/poison', { 'x-original-url': '/admin' });
  assert.match(String(evil.headers['cache-status']), /fwd=bypass;.*detail=header/);
  const victim = await get('/c/poison');
  assert.equal(victim.text, 'real 2');
});

test('a GET with a body bypasses the cache (the body could change the answer without being in the key)', async () => {
  origin.on('/c/fatget', answer({ 'cache-control': 'max-age=60' }));
  const r = await send(gw.port, { path: '/c/fatget', body: 'x=1', headers: { 'content-type': 'text/plain', 'content-length': '3' } });
  assert.match(String(r.headers['cache-status']), /bypass/);
  await get('/c/fatget');
  assert.equal(origin.count('/c/fatget'), 2);
});

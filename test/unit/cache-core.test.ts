import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCacheControl } from '../../src/policies/cache/directives.js';
import { notModified, reuse, storable, unstoredFields, updatedHeaders, USE_FRESH, USE_STALE, USE_STALE_REVALIDATE, VALIDATE, type FreshnessSettings } from '../../src/policies/cache/rfc9111.js';
import { normalizeEscapes, normalizeHost, normalizeQuery, primaryKey, unkeyedParams, type KeySpec } from '../../src/policies/cache/key.js';
import { L1Store } from '../../src/policies/cache/store.js';
import { freshUntil, type CacheMeta, type StoredEntry } from '../../src/policies/cache/entry.js';
import { Flights } from '../../src/policies/cache/coalesce.js';

const S: FreshnessSettings = { heuristic: true, heuristicFraction: 0.1, heuristicMaxMs: 86_400_000, defaultTtlMs: 0, staleIfErrorMs: 0, staleWhileRevalidateMs: 0, tagHeader: 'surrogate-key', storeSetCookie: true };
const GET = { method: 'GET', cc: parseCacheControl(undefined), authorized: false };
const NOW = Date.parse('2026-01-01T00:00:00Z');
const noVary = () => '';

function decide(headers: string[], status = 200, req = GET, s = S) {
  return storable(s, req, status, headers, NOW, NOW, NaN, noVary);
}
function meta(headers: string[], status = 200): CacheMeta {
  const m = decide(headers, status);
  assert.equal(typeof m, 'object', `expected storable, got ${m}`);
  return m as CacheMeta;
}

test('Cache-Control parses directives case-insensitively, with quoted values and repeated or malformed numbers marked invalid', () => {
  const cc = parseCacheControl('Public, MAX-AGE=60, s-maxage="30", stale-while-revalidate=5, private="set-cookie, x", immutable');
  assert.equal(cc.public, true);
  assert.equal(cc.maxAge, 60);
  assert.equal(cc.sMaxAge, 30);
  assert.equal(cc.staleWhileRevalidate, 5);
  assert.equal(cc.private, false, 'a qualified private is not the unqualified one');
  assert.deepEqual(cc.privateFields, ['set-cookie', 'x']);
  assert.deepEqual(parseCacheControl('no-cache="Set-Cookie", max-age=60').noCacheFields, ['set-cookie']);
  assert.equal(parseCacheControl('no-cache="Set-Cookie", max-age=60').noCache, false);
  assert.equal(parseCacheControl('no-cache=""').noCache, true, 'a qualified form naming nothing is taken as unqualified');
  assert.equal(cc.immutable, true);
  assert.equal(cc.invalid, false);
  assert.equal(parseCacheControl('max-age=60, max-age=120').invalid, true);
  assert.equal(parseCacheControl('max-age=abc').invalid, true);
  assert.equal(parseCacheControl('max-age=99999999999').maxAge, 2147483648);
  assert.equal(parseCacheControl('max-stale').maxStale, Infinity);
  assert.equal(parseCacheControl('unknown-directive=1, no-store').noStore, true);
});

test('storable: explicit freshness, in the shared-cache order s-maxage > max-age > Expires', () => {
  assert.equal(meta(['cache-control', 'public, max-age=60']).lifetimeMs, 60_000);
  assert.equal(meta(['Cache-Control', 'max-age=60, s-maxage=10']).lifetimeMs, 10_000);
  const exp = new Date(NOW + 30_000).toUTCString();
  assert.equal(meta(['expires', exp]).lifetimeMs, 30_000);
  // max-age wins over Expires
  assert.equal(meta(['expires', exp, 'cache-control', 'max-age=5']).lifetimeMs, 5_000);
  // an invalid Expires means already expired: stored (it has a validator) but stale at once
  assert.equal(meta(['expires', '0', 'etag', '"a"']).lifetimeMs, 0);
  // s-maxage implies proxy-revalidate for a shared cache
  assert.equal(meta(['cache-control', 's-maxage=10']).mustRevalidate, true);
});

test('storable: what a shared cache must not store', () => {
  assert.equal(decide(['cache-control', 'no-store, max-age=60']), 'no-store');
  assert.equal(decide(['cache-control', 'private, max-age=60']), 'private');
  assert.equal(decide(['cache-control', 'max-age=60', 'vary', 'accept, *']), 'vary-star');
  assert.equal(typeof decide(['cache-control', 'max-age=60', 'set-cookie', 'a=b']), 'object', 'Set-Cookie alone does not prevent storing (RFC 9111 3.1)');
  assert.equal(decide(['cache-control', 'max-age=60', 'set-cookie', 'a=b'], 200, GET, { ...S, storeSetCookie: false }), 'set-cookie');
  assert.equal(typeof decide(['cache-control', 'private="set-cookie", max-age=60', 'set-cookie', 'a=b']), 'object');
  assert.deepEqual(unstoredFields(['cache-control', 'no-cache="a, B"', 'cache-control', 'private=c, max-age=60']), ['a', 'b', 'c']);
  assert.equal(unstoredFields(['cache-control', 'max-age=60']), null);
  assert.equal(decide(['cache-control', 'max-age=60'], 206), 'status');
  assert.equal(decide(['cache-control', 'max-age=60'], 599), 'status');
  assert.equal(decide(['cache-control', 'max-age=60'], 200, { ...GET, method: 'POST' }), 'method');
  assert.equal(decide(['cache-control', 'max-age=60'], 200, { ...GET, cc: parseCacheControl('no-store') }), 'request-no-store');
  assert.equal(decide([]), 'no-freshness');
});

test('storable: Authorization requests only with public, s-maxage or must-revalidate (RFC 9111 3.5)', () => {
  const auth = { ...GET, authorized: true };
  assert.equal(decide(['cache-control', 'max-age=60'], 200, auth), 'authorization');
  for (const cc of ['public, max-age=60', 's-maxage=60', 'must-revalidate, max-age=60']) assert.equal(typeof decide(['cache-control', cc], 200, auth), 'object', cc);
});

test('storable: heuristic freshness from Last-Modified only for heuristically cacheable statuses, and off when configured off', () => {
  const lm = new Date(NOW - 100_000_000).toUTCString();
  assert.equal(meta(['last-modified', lm]).lifetimeMs, 10_000_000);
  assert.equal(meta(['last-modified', lm]).heuristic, true);
  // 302 is not heuristically cacheable: stored only to be revalidated
  assert.equal(meta(['last-modified', lm], 302).lifetimeMs, 0);
  const off = storable({ ...S, heuristic: false }, GET, 200, ['last-modified', lm], NOW, NOW, NaN, noVary) as CacheMeta;
  assert.equal(off.lifetimeMs, 0);
  assert.equal(decide([], 200, GET, { ...S, heuristic: false }), 'no-freshness');
});

test('storable: a route TTL applies only to responses with no Cache-Control and no Expires', () => {
  const s = { ...S, defaultTtlMs: 5000 };
  assert.equal((storable(s, GET, 200, [], NOW, NOW, NaN, noVary) as CacheMeta).lifetimeMs, 5000);
  assert.equal((storable(s, GET, 200, ['cache-control', 'max-age=1'], NOW, NOW, NaN, noVary) as CacheMeta).lifetimeMs, 1000);
  assert.equal(storable(s, GET, 200, ['cache-control', 'no-store'], NOW, NOW, NaN, noVary), 'no-store');
});

test('Age: a list uses its first member, an invalid value is ignored, a huge one makes the response stale (RFC 9111 5.1)', () => {
  for (const age of ['-1', '1.5', 'abc', '3600;a=1', '-7200']) assert.equal(meta(['cache-control', 'max-age=3600', 'age', age]).initialAgeMs, 0, age);
  assert.equal(meta(['cache-control', 'max-age=3600', 'age', '0, 7200']).initialAgeMs, 0);
  assert.equal(meta(['cache-control', 'max-age=3600', 'age', '7200', 'age', '0']).initialAgeMs, 7_200_000, 'two lines: the first');
  assert.equal(meta(['cache-control', 'max-age=3600', 'age', ' 10 ']).initialAgeMs, 10_000);
  assert.equal(meta(['cache-control', 'max-age=3600', 'age', '99999999999', 'etag', '"a"']).initialAgeMs, 2_147_483_648_000);
  assert.equal(meta(['cache-control', 'max-age=3600', 'age', ' 10 ']).lifetimeMs, 3_600_000);
});

test('Age: the initial age is the larger of the Age header plus the response delay and the apparent age', () => {
  const m = storable(S, GET, 200, ['cache-control', 'max-age=60', 'age', '10'], NOW - 2000, NOW, NaN, noVary) as CacheMeta;
  assert.equal(m.initialAgeMs, 12_000);
  const d = storable(S, GET, 200, ['cache-control', 'max-age=60'], NOW, NOW, NOW - 5000, noVary) as CacheMeta;
  assert.equal(d.initialAgeMs, 5000);
});

function entryOf(m: CacheMeta): StoredEntry {
  return { status: 200, headers: [], body: new Uint8Array(0), storedAt: NOW, meta: m as unknown as Record<string, unknown> };
}

test('reuse: fresh, stale-while-revalidate, must-revalidate and the request directives', () => {
  const m = meta(['cache-control', 'max-age=10, stale-while-revalidate=20']);
  const e = entryOf(m);
  const until = freshUntil(e, m);
  assert.equal(reuse(e, m, until, NOW + 5000, null), USE_FRESH);
  assert.equal(reuse(e, m, until, NOW + 15_000, null), USE_STALE_REVALIDATE);
  assert.equal(reuse(e, m, until, NOW + 31_000, null), VALIDATE);
  assert.equal(reuse(e, m, until, NOW + 5000, parseCacheControl('no-cache')), VALIDATE);
  assert.equal(reuse(e, m, until, NOW + 5000, parseCacheControl('max-age=2')), VALIDATE);
  assert.equal(reuse(e, m, until, NOW + 5000, parseCacheControl('min-fresh=8')), VALIDATE);
  assert.equal(reuse(e, m, until, NOW + 40_000, parseCacheControl('max-stale=60')), USE_STALE);
  const mr = meta(['cache-control', 'max-age=10, must-revalidate, stale-while-revalidate=20']);
  assert.equal(reuse(entryOf(mr), mr, freshUntil(entryOf(mr), mr), NOW + 15_000, null), VALIDATE);
  assert.equal(reuse(entryOf(mr), mr, freshUntil(entryOf(mr), mr), NOW + 15_000, parseCacheControl('max-stale')), VALIDATE);
  const im = meta(['cache-control', 'max-age=100, immutable']);
  assert.equal(reuse(entryOf(im), im, freshUntil(entryOf(im), im), NOW + 5000, parseCacheControl('max-age=0')), USE_FRESH);
  const nc = meta(['cache-control', 'no-cache, max-age=100', 'etag', '"x"']);
  assert.equal(reuse(entryOf(nc), nc, freshUntil(entryOf(nc), nc), NOW + 1, null), VALIDATE);
});

test('conditional requests: If-None-Match (weak comparison) takes precedence over If-Modified-Since', () => {
  const lm = new Date(NOW - 60_000).toUTCString();
  const m = meta(['cache-control', 'max-age=60', 'etag', 'W/"v1"', 'last-modified', lm]);
  const e = entryOf(m);
  assert.equal(notModified(m, '"v1"', undefined, e), true);
  assert.equal(notModified(m, '"a", W/"v1"', undefined, e), true);
  assert.equal(notModified(m, '*', undefined, e), true);
  assert.equal(notModified(m, '"v2"', new Date(NOW).toUTCString(), e), false);
  assert.equal(notModified(m, undefined, new Date(NOW).toUTCString(), e), true);
  assert.equal(notModified(m, undefined, new Date(NOW - 120_000).toUTCString(), e), false);
});

test('a 304 replaces the stored fields it carries (Content-Type too), never the ones bound to the stored bytes nor the ETag', () => {
  const out = updatedHeaders(['content-type', 'text/plain', 'etag', '"1"', 'content-md5', 'abc', 'x-a', 'old'], ['ETag', '"2"', 'X-A', 'new', 'Content-Type', 'text/html', 'Content-MD5', 'xyz']);
  assert.deepEqual(out, ['etag', '"1"', 'content-md5', 'abc', 'x-a', 'new', 'content-type', 'text/html']);
});

const SPEC: KeySpec = { consumer: false, plan: false, headers: [], queryMode: 'all', params: [], sortQuery: false };
const req = (path: string, query = '', host = 'Example.COM:80') => ({ method: 'GET', path, query, hostHeader: host, consumerId: 'alice', consumerPlan: 'gold', header: (n: string) => (n === 'accept-language' ? 'de' : undefined) });

test('keys: host lower-cased without the default port, unreserved escapes decoded, configured parts appended', () => {
  assert.equal(normalizeHost('Example.COM:80', false), 'example.com');
  assert.equal(normalizeHost('example.com:443', true), 'example.com');
  assert.equal(normalizeHost('example.com:8080', false), 'example.com:8080');
  assert.equal(normalizeEscapes('/a%7Eb/%2fc%41'), '/a~b/%2FcA');
  assert.equal(primaryKey(req('/a%7e', 'x=1'), SPEC, false), 'GET example.com/a~?x=1');
  assert.equal(primaryKey(req('/a'), { ...SPEC, consumer: true, plan: true, headers: ['accept-language'] }, false), 'GET example.com/a |consumer=alice|plan=gold|h:accept-language=de');
});

test('keys: query parameters kept, ignored or sorted; the ignored ones are named for removal upstream', () => {
  assert.equal(normalizeQuery('b=2&a=1', { ...SPEC, sortQuery: true }), 'a=1&b=2');
  assert.equal(normalizeQuery('utm_source=x&id=7', { ...SPEC, queryMode: 'exclude', params: ['utm_source'] }), 'id=7');
  assert.equal(normalizeQuery('utm_source=x&id=7&v=2', { ...SPEC, queryMode: 'include', params: ['id'] }), 'id=7');
  assert.deepEqual(unkeyedParams('utm_source=x&id=7', { ...SPEC, queryMode: 'exclude', params: ['utm_source'] }), ['utm_source']);
  assert.equal(unkeyedParams('id=7', SPEC), null);
  assert.equal(normalizeQuery('id=7', { ...SPEC, queryMode: 'none' }), '');
});

function stored(body: number, m: Partial<CacheMeta> = {}): [StoredEntry, CacheMeta] {
  const mm = { ...meta(['cache-control', 'max-age=60']), ...m };
  return [{ status: 200, headers: ['content-type', 'text/plain'], body: new Uint8Array(body), storedAt: NOW, meta: mm as unknown as Record<string, unknown> }, mm];
}

test('L1: bounded by bytes, least recently used leaves first', () => {
  const s = new L1Store(10_000);
  for (let i = 0; i < 5; i++) s.set(`k${i}`, ...stored(3000));
  assert.ok(s.bytes <= 10_000);
  assert.equal(s.get('k0'), undefined);
  assert.ok(s.get('k4'));
  assert.equal(s.set('huge', ...stored(20_000)), null);
});

test('L1: Vary variants under one primary key, purge by key, prefix and tag', () => {
  const s = new L1Store(1_000_000);
  s.set('GET a/x', ...stored(10, { vary: ['accept-language'], varyValues: ['de'], tags: ['t1'] }));
  s.set('GET a/x', ...stored(10, { vary: ['accept-language'], varyValues: ['fr'], tags: ['t1', 't2'] }));
  s.set('GET a/y', ...stored(10, { tags: ['t2'] }));
  s.set('GET b/z', ...stored(10));
  assert.deepEqual(s.varyOf('GET a/x'), ['accept-language']);
  assert.ok(s.get('GET a/x\0de'));
  assert.ok(s.get('GET a/x\0fr'));
  assert.equal(s.purgeTag('t2'), 2);
  assert.equal(s.get('GET a/x\0fr'), undefined);
  assert.equal(s.purgeKey('GET a/x'), 1);
  assert.equal(s.varyOf('GET a/x'), undefined);
  s.set('GET a/y', ...stored(10));
  assert.equal(s.purgePrefix('GET a/'), 1);
  assert.equal(s.size, 1);
});

test('L1: a response with a different Vary replaces the variants stored under the old one', () => {
  const s = new L1Store(1_000_000);
  s.set('GET a/x', ...stored(10, { vary: ['accept-language'], varyValues: ['de'] }));
  s.set('GET a/x', ...stored(10, { vary: ['accept-encoding'], varyValues: ['gzip'] }));
  assert.equal(s.get('GET a/x\0de'), undefined);
  assert.deepEqual(s.varyOf('GET a/x'), ['accept-encoding']);
});

test('coalescing: one leader; waiters wake together; an uncacheable answer turns the key into a pass for a while', async () => {
  const f = new Flights(1000, 5000);
  assert.equal(f.lead('k', 0), true);
  assert.equal(f.lead('k', 0), false);
  const woken: boolean[] = [];
  for (let i = 0; i < 3; i++) f.join('k', { wake: (s) => woken.push(s) });
  f.land('k', false, 0);
  assert.deepEqual(woken, [], 'waiters wake on the next turn, outside the leader\'s response');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(woken, [false, false, false]);
  assert.equal(f.lead('k', 100), null);
  assert.equal(f.lead('k', 6000), true);
  f.land('k', true, 6000);
  // a waiter's timeout releases it alone
  const g = new Flights(20, 0);
  g.lead('j', 0);
  const late = await new Promise<boolean>((resolve) => g.join('j', { wake: resolve }));
  assert.equal(late, false);
  g.land('j', true, 0);
});

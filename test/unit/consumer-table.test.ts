import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildConsumerTable, ConsumerTable, readSpecs, stampGeneration, type ConsumerSpec } from '../../src/identity/table.js';
import { keyDigest, mergeConsumers, normalizeConsumers } from '../../src/identity/normalize.js';
import { parseRegistryDocument, registryTable } from '../../src/identity/registry.js';
import { consumerLookup, CONSUMERS_SERVICE } from '../../src/identity/consumers.js';
import { parseCidr } from '../../src/shared/cidr.js';
import type { ConfigIssue } from '../../src/config/errors.js';
import { findQueryParam, requestLineWithoutQueryParam, withoutQueryParam } from '../../src/shared/query.js';

function spec(id: string, over: Partial<ConsumerSpec> = {}): ConsumerSpec {
  return { id, plan: null, keys: [], jwt: [], subscriptions: [], scopes: [], roles: [], allowIps: [], ...over };
}

test('keys, ids and JWT mappings resolve to the right consumer; unknown ones to -1', () => {
  const specs: ConsumerSpec[] = [];
  for (let i = 0; i < 1000; i++) {
    specs.push(
      spec(`c${i}`, {
        keys: [keyDigest(`key-${i}-aaaaaaaaaaaa`), keyDigest(`second-${i}-aaaaaaaaaa`)],
        jwt: [{ issuer: i % 2 ? 'https://a.example' : 'https://b.example', subject: `sub-${i}` }],
        plan: i % 3 ? 'gold' : null,
      }),
    );
  }
  const t = new ConsumerTable(buildConsumerTable(specs, 7));
  assert.equal(t.generation, 7);
  assert.equal(t.count, 1000);
  for (const i of [0, 1, 499, 999]) {
    assert.equal(t.byKeyDigest(keyDigest(`key-${i}-aaaaaaaaaaaa`)), i);
    assert.equal(t.byKeyDigest(keyDigest(`second-${i}-aaaaaaaaaa`)), i);
    assert.equal(t.byId(`c${i}`), i);
    assert.equal(t.byJwt(i % 2 ? 'https://a.example' : 'https://b.example', `sub-${i}`), i);
    assert.equal(t.id(i), `c${i}`);
    assert.equal(t.plan(i), i % 3 ? 'gold' : null);
  }
  assert.equal(t.byKeyDigest(keyDigest('nope-nope-nope-nope')), -1);
  assert.equal(t.byKeyDigest(new Uint8Array(31)), -1);
  assert.equal(t.byId('c1000'), -1);
  assert.equal(t.byJwt('https://a.example', 'sub-0'), -1, 'issuer is part of the mapping');
  assert.equal(t.byJwt('https://b.exampl', 'esub-0'), -1, 'issuer/subject boundary matters');
});

test('scopes and roles decode once and stay the same arrays; subscriptions honour API, "*" and environment', () => {
  const t = new ConsumerTable(
    buildConsumerTable([
      spec('a', { scopes: ['read', 'write'], roles: ['admin'], subscriptions: [{ api: 'orders', environment: null }, { api: 'billing', environment: 'prod' }] }),
      spec('b', { subscriptions: [{ api: '*', environment: 'staging' }] }),
      spec('c'),
    ]),
  );
  assert.deepEqual(t.scopes(0), ['read', 'write']);
  assert.equal(t.scopes(0), t.scopes(0));
  assert.deepEqual(t.roles(0), ['admin']);
  assert.deepEqual(t.scopes(2), []);
  assert.equal(t.subscribed(0, 'orders'), true);
  assert.equal(t.subscribed(0, 'orders', 'prod'), true, 'no environment on the subscription = every environment');
  assert.equal(t.subscribed(0, 'billing'), true, 'a route without environment accepts any subscription');
  assert.equal(t.subscribed(0, 'billing', 'prod'), true);
  assert.equal(t.subscribed(0, 'billing', 'staging'), false);
  assert.equal(t.subscribed(0, 'shipping'), false);
  assert.equal(t.subscribed(1, 'anything', 'staging'), true);
  assert.equal(t.subscribed(1, 'anything', 'prod'), false);
  assert.equal(t.subscribed(2, 'orders'), false);
});

test('a consumer allowlist admits its blocks only (IPv4, IPv6, mapped IPv4)', () => {
  const t = new ConsumerTable(
    buildConsumerTable([
      spec('net', { allowIps: ['10.0.0.0/8', '2001:db8::/32'].map((c) => parseCidr(c)!) }),
      spec('open'),
    ]),
  );
  assert.equal(t.allowsIp(0, '10.1.2.3'), true);
  assert.equal(t.allowsIp(0, '::ffff:10.9.9.9'), true);
  assert.equal(t.allowsIp(0, '11.0.0.1'), false);
  assert.equal(t.allowsIp(0, '2001:db8:1::5'), true);
  assert.equal(t.allowsIp(0, '2001:db9::1'), false);
  assert.equal(t.allowsIp(0, 'garbage'), false);
  assert.equal(t.allowsIp(1, '203.0.113.9'), true);
});

test('the builder refuses duplicate ids and keys; normalize reports them with paths', () => {
  assert.throws(() => buildConsumerTable([spec('x'), spec('x')]), /duplicate consumer id/);
  const k = keyDigest('same-key-same-key');
  assert.throws(() => buildConsumerTable([spec('x', { keys: [k] }), spec('y', { keys: [k] })]), /two consumers/);
  const issues: ConfigIssue[] = [];
  const list = [
    { id: 'a', keys: [{ key: 'same-key-same-key' }], jwt: [], subscriptions: [], scopes: [], roles: [], allowIps: ['10.0.0.0/33'] },
    { id: 'b', keys: [{ keySha256: k.toString('hex').toUpperCase() }], jwt: [], subscriptions: [], scopes: [], roles: [], allowIps: [] },
    { id: 'a', keys: [], jwt: [], subscriptions: [], scopes: [], roles: [], allowIps: [] },
  ];
  normalizeConsumers(list as never, 'consumers', issues, { redact: true });
  assert.deepEqual(
    issues.map((i) => i.path),
    ['consumers[0].allowIps[0]', 'consumers[1].keys[0]', 'consumers[2].id'],
  );
  assert.equal((list[0].keys[0] as { key?: string }).key, undefined, 'the plain key is gone from the config object');
  assert.equal((list[0].keys[0] as { keySha256?: string }).keySha256, k.toString('hex'));
});

test('a table reads back as the specs it was built from', () => {
  const specs = [
    spec('a', {
      plan: 'gold',
      keys: [keyDigest('k1-0123456789abcdef'), keyDigest('k2-0123456789abcdef')],
      jwt: [{ issuer: 'i', subject: 's' }],
      subscriptions: [{ api: 'orders', environment: null }, { api: 'billing', environment: 'prod' }],
      scopes: ['read'],
      roles: ['admin', 'ops'],
      allowIps: [parseCidr('10.0.0.0/8')!, parseCidr('2001:db8::/32')!],
    }),
    spec('b'),
  ];
  const back = readSpecs(buildConsumerTable(specs));
  assert.deepEqual(
    back.map((s) => ({ ...s, keys: s.keys.map((k) => Buffer.from(k).toString('hex')) })),
    specs.map((s) => ({ ...s, keys: s.keys.map((k) => Buffer.from(k).toString('hex')) })),
  );
});

test('config consumers win over clashing registry consumers', () => {
  const k = keyDigest('shared-key-shared-key');
  const { specs, skipped } = mergeConsumers([spec('a', { keys: [k] })], [spec('a'), spec('b', { keys: [k] }), spec('c')]);
  assert.deepEqual(specs.map((s) => s.id), ['a', 'c']);
  assert.deepEqual(skipped, ['a', 'b']);
});

test('registry documents: JSON, YAML and bare arrays parse; garbage throws with a reason', () => {
  assert.equal(parseRegistryDocument('{"consumers":[{"id":"a","keys":[{"key":"0123456789abcdef"}]}]}', 'r').length, 1);
  assert.equal(parseRegistryDocument('consumers:\n  - id: a\n  - id: b\n', 'r').length, 2);
  assert.equal(parseRegistryDocument('[{"id":"a"}]', 'r').length, 1);
  assert.throws(() => parseRegistryDocument('{"consumers":[{"id":"a",', 'r'), /not valid JSON/);
  assert.throws(() => parseRegistryDocument('{"consumers":[{"idx":"a"}]}', 'r'), /r: /);
  assert.throws(() => registryTable('{"consumers":[{"id":"a"},{"id":"a"}]}', 'r'), /^Error: r: duplicate consumer id "a"/);
  const key = { keys: [{ key: '0123456789abcdef' }] };
  assert.throws(() => registryTable(JSON.stringify({ consumers: [{ id: 'a', ...key }, { id: 'b', ...key }] }), 'r'), /used by two consumers/);
});

test('consumerLookup follows a swap of services.consumers from the next call on', () => {
  const services: Record<string, unknown> = { [CONSUMERS_SERVICE]: buildConsumerTable([spec('old', { keys: [keyDigest('k-0123456789abcdef')] })], 1) };
  const lookup = consumerLookup(services)!;
  assert.equal(consumerLookup(services), lookup, 'one view per plan');
  assert.equal(lookup.generation, 1);
  assert.equal(lookup.id(lookup.byKeyDigest(keyDigest('k-0123456789abcdef'))), 'old');
  const next = buildConsumerTable([spec('pad'), spec('new', { keys: [keyDigest('k-0123456789abcdef')] })]);
  stampGeneration(next, 2);
  services[CONSUMERS_SERVICE] = next;
  assert.equal(lookup.generation, 2);
  assert.equal(lookup.byKeyDigest(keyDigest('k-0123456789abcdef')), 1);
  assert.equal(lookup.id(1), 'new');
  assert.equal(consumerLookup({}), null);
});

test('query helpers find and drop one parameter without disturbing the others', () => {
  assert.equal(findQueryParam('a=1&api_key=abc&b=2', 'api_key'), 'abc');
  assert.equal(findQueryParam('api%5Fkey=a%2Bb+c', 'api_key'), 'a+b c');
  assert.equal(findQueryParam('api_key', 'api_key'), '');
  assert.equal(findQueryParam('xapi_key=1', 'api_key'), null);
  assert.equal(findQueryParam('api_key=%E0%A4%A', 'api_key'), null);
  assert.equal(findQueryParam('', 'api_key'), null);
  assert.equal(withoutQueryParam('a=1&api_key=abc&b=2&api_key=x', 'api_key'), 'a=1&b=2');
  assert.equal(requestLineWithoutQueryParam('GET /x?api_key=abc HTTP/1.1\r\n', 'api_key'), 'GET /x HTTP/1.1\r\n');
  assert.equal(requestLineWithoutQueryParam('GET /x?a=1&api_key=abc HTTP/1.1\r\n', 'api_key'), 'GET /x?a=1 HTTP/1.1\r\n');
  const same = 'GET /x?a=1 HTTP/1.1\r\n';
  assert.equal(requestLineWithoutQueryParam(same, 'api_key'), same);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ajv } from 'ajv';
import { ConfigError } from '../../src/config/errors.js';
import { createDiscoverySource, DiscoveryConfigSchema, discoveryIssues, parseDiscoveryConfig } from '../../src/discovery/index.js';
import { LoopPacer, NodeSetKeeper, normalizeNodes, type DiscoveredNode } from '../../src/discovery/source.js';
import { parseNodesDocument } from '../../src/discovery/file.js';
import { recorder } from '../helpers/discovery.js';

/**
 * What every source shares: the keeper of the last good set (never empty, never invalid, emitted only on a change,
 * order-independent, one log line per change of state), the loop pacer, and the config schemas with their checks.
 */

const n = (host: string, port: number, weight = 1): DiscoveredNode => ({ host, port, weight });

test('the keeper hands on a set once, whatever the order, and again only when it changes', () => {
  const rec = recorder();
  const keeper = new NodeSetKeeper('test:x', rec.logger);
  keeper.attach(rec.onNodes);
  assert.equal(keeper.accept([n('10.0.0.2', 80), n('10.0.0.1', 80)]), true);
  assert.equal(keeper.accept([n('10.0.0.1', 80), n('10.0.0.2', 80)]), false);
  assert.equal(keeper.accept([n('10.0.0.1', 80), n('10.0.0.2', 80), n('10.0.0.1', 80)]), false, 'a duplicate is the same set');
  assert.equal(keeper.accept([n('10.0.0.1', 80), n('10.0.0.2', 80, 2)]), true, 'a weight change is a change');
  assert.equal(keeper.accept([{ ...n('10.0.0.1', 80), zone: 'a' }, n('10.0.0.2', 80, 2)]), true, 'a zone change is a change');
  assert.equal(rec.sets.length, 3);
  assert.deepEqual(rec.latest(), ['10.0.0.1:80/1', '10.0.0.2:80/2']);
  assert.ok(Object.isFrozen(rec.sets[0]) && Object.isFrozen(rec.sets[0][0]), 'owners get frozen sets');
  const s = keeper.status();
  assert.equal(s.updates, 3);
  assert.equal(s.errors, 0);
  assert.equal(s.stale, false);
});

test('the keeper refuses an empty or invalid set, keeps the last one, and logs once per change of state', () => {
  const rec = recorder();
  const keeper = new NodeSetKeeper('test:y', rec.logger);
  keeper.attach(rec.onNodes);
  keeper.accept([n('10.0.0.1', 80)]);
  for (let i = 0; i < 5; i++) keeper.accept([]);
  keeper.accept([n('10.0.0.1', 0)]);
  keeper.accept([n('10.0.0.1', 80, 0)]);
  keeper.accept([n('not a host', 80)]);
  keeper.accept([n('', 80)]);
  assert.equal(rec.sets.length, 1);
  const s = keeper.status();
  assert.equal(s.nodes, 1);
  assert.equal(s.errors, 9);
  assert.equal(s.stale, true);
  assert.match(s.lastError!, /invalid host ""/);
  // 5 identical failures, then 4 different reasons: 5 warnings, not 9.
  assert.equal(rec.logged('keeping the last good node set').length, 5);
  keeper.accept([n('10.0.0.1', 80)]);
  assert.equal(keeper.status().stale, false);
  assert.equal(rec.logged('answers again').length, 1);
  assert.equal(rec.sets.length, 1, 'recovering to the same set is not a change');
});

test('normalizeNodes: IPv6 and host names are hosts, sorted output, reasons for what is refused', () => {
  // Sorted by "host:port" ("[::1]:2" first: "[" sorts before letters).
  assert.deepEqual(normalizeNodes([n('b.internal', 1), n('::1', 2), n('a.internal.', 3)]), [n('::1', 2), n('a.internal.', 3), n('b.internal', 1)]);
  assert.equal(normalizeNodes([]), 'the answer has no nodes');
  assert.match(normalizeNodes([n('10.0.0.1', 65536)]) as string, /invalid port 65536/);
  assert.match(normalizeNodes([n('10.0.0.1', 80, 1.5)]) as string, /invalid weight 1.5/);
  assert.match(normalizeNodes([n('-x', 80)]) as string, /invalid host/);
});

test('the loop pacer lets two calls through at once, then makes the next one wait about one interval', () => {
  const pacer = new LoopPacer(60_000);
  assert.equal(pacer.take(), 0);
  assert.equal(pacer.take(), 0);
  const wait = pacer.take();
  assert.ok(wait > 59_000 && wait <= 60_000, `third call waits ${wait} ms`);
  const next = pacer.take();
  assert.ok(next > 119_000 && next <= 120_000, `fourth call waits ${next} ms (one interval after the third)`);
});

test('parseDiscoveryConfig fills in defaults and freezes the result', () => {
  const c = parseDiscoveryConfig({ type: 'dns', name: 'api.internal', port: 8080 });
  assert.deepEqual(c, {
    type: 'dns',
    name: 'api.internal',
    port: 8080,
    recordType: 'A',
    srvTargets: 'A',
    weight: 1,
    timeoutMs: 2000,
    attempts: 2,
    minTtlSeconds: 5,
    maxTtlSeconds: 300,
    retrySeconds: 5,
  });
  assert.ok(Object.isFrozen(c));
  const k = parseDiscoveryConfig({ type: 'kubernetes', namespace: 'shop', service: 'web' });
  assert.equal(k.type === 'kubernetes' && k.apiServer, 'https://kubernetes.default.svc');
  const consul = parseDiscoveryConfig({ type: 'consul', service: 'web' });
  assert.equal(consul.type === 'consul' && consul.waitSeconds, 60);
  const file = parseDiscoveryConfig({ type: 'file', path: 'nodes.yaml' });
  assert.equal(file.type === 'file' && file.pollSeconds, 5);
});

test('zero and negative thresholds, and values that contradict each other, are refused with the path', () => {
  const issues = (v: unknown) => discoveryIssues(structuredClone(v), 'upstreams.users.discovery').map((i) => `${i.path}: ${i.message}`);
  assert.deepEqual(issues({ type: 'dns', name: 'a.internal', port: 80, minTtlSeconds: 0 }), ['upstreams.users.discovery.minTtlSeconds: must be >= 0.05']);
  assert.deepEqual(issues({ type: 'dns', name: 'a.internal', port: 80, timeoutMs: -1 }), ['upstreams.users.discovery.timeoutMs: must be >= 1']);
  assert.deepEqual(issues({ type: 'consul', service: 'web', minIntervalMs: 0 }), ['upstreams.users.discovery.minIntervalMs: must be >= 1']);
  assert.deepEqual(issues({ type: 'consul', service: 'web', waitSeconds: 0 }), ['upstreams.users.discovery.waitSeconds: must be >= 1']);
  assert.deepEqual(issues({ type: 'kubernetes', namespace: 'a', service: 'b', watchSeconds: -5 }), ['upstreams.users.discovery.watchSeconds: must be >= 1']);
  assert.deepEqual(issues({ type: 'file', path: 'x', debounceMs: 0 }), ['upstreams.users.discovery.debounceMs: must be >= 1']);
  assert.deepEqual(issues({ type: 'dns', name: 'a.internal' }), ['upstreams.users.discovery.port: required with recordType A']);
  assert.deepEqual(issues({ type: 'dns', name: '_h._tcp.a.internal', recordType: 'SRV', port: 80 }), ['upstreams.users.discovery.port: not allowed with recordType SRV']);
  assert.deepEqual(issues({ type: 'dns', name: 'a.internal', port: 80, minTtlSeconds: 60, maxTtlSeconds: 30 }), ['upstreams.users.discovery.minTtlSeconds: must not exceed maxTtlSeconds (30)']);
  assert.deepEqual(issues({ type: 'dns', name: 'a.internal', port: 80, recordType: 'MX' }), ['upstreams.users.discovery.recordType: must be one of "A", "AAAA", "A+AAAA", "SRV"']);
  assert.deepEqual(issues({ type: 'consul', service: 'web', token: 't', tokenFile: 'f' }), ['upstreams.users.discovery.token: give token or tokenFile, not both']);
  assert.deepEqual(issues({ type: 'consul', service: 'web', adress: 'http://x' }), ['upstreams.users.discovery.adress: unknown key']);
  assert.deepEqual(issues({ type: 'etcd' }), ['upstreams.users.discovery.type: must be one of "dns", "file", "consul", "kubernetes"']);
  assert.deepEqual(issues({ type: 'kubernetes', namespace: 'a', service: 'b', apiServer: 'http://127.0.0.1:1', caFile: 'ca.pem' }), [
    'upstreams.users.discovery.caFile: only used with an https apiServer',
  ]);
  assert.throws(() => parseDiscoveryConfig({ type: 'dns', name: 'a.internal' }, 'upstreams.users.discovery', 'gw.yaml'), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.message, 'gw.yaml: upstreams.users.discovery.port: required with recordType A (A and AAAA records carry no port)');
    return true;
  });
});

test('the union schema is plain JSON Schema (for config/schema.json): a discriminated oneOf that fills defaults in Ajv', () => {
  const json = JSON.parse(JSON.stringify(DiscoveryConfigSchema));
  assert.deepEqual(
    json.oneOf.map((b: { properties: { type: { const: string } } }) => b.properties.type.const),
    ['dns', 'file', 'consul', 'kubernetes'],
  );
  // Embedded in a bigger schema, as the upstream config will do.
  const validate = new Ajv({ discriminator: true, useDefaults: true, strict: false }).compile({
    type: 'object',
    properties: { discovery: DiscoveryConfigSchema },
  });
  const value = { discovery: { type: 'consul', service: 'web' } };
  assert.equal(validate(value), true);
  assert.equal((value.discovery as { waitSeconds?: number }).waitSeconds, 60);
  assert.equal(validate({ discovery: { type: 'consul', service: 'web', waitSeconds: 0 } }), false);
  assert.equal(validate.errors![0].instancePath, '/discovery/waitSeconds');
});

test('createDiscoverySource returns a stopped-cleanly source of each kind', async () => {
  const rec = recorder();
  for (const c of [
    { type: 'dns', name: 'a.test', port: 80, servers: ['127.0.0.1:9'] },
    { type: 'file', path: '/nonexistent/nodes.json' },
    { type: 'consul', service: 'web', address: 'http://127.0.0.1:9' },
    { type: 'kubernetes', namespace: 'a', service: 'b', apiServer: 'http://127.0.0.1:9' },
  ]) {
    const source = createDiscoverySource(parseDiscoveryConfig(c), rec.logger);
    assert.equal(source.status().stale, true, 'no set yet');
    source.start(rec.onNodes);
    assert.throws(() => source.start(rec.onNodes), /starts once/);
    await source.stop();
  }
  assert.equal(rec.sets.length, 0);
});

test('parseNodesDocument: the object and bare-list forms, weights defaulting to 1', () => {
  assert.deepEqual(parseNodesDocument('{"nodes":[{"host":"10.0.0.1","port":80}]}'), [n('10.0.0.1', 80)]);
  assert.deepEqual(parseNodesDocument('- {host: 10.0.0.1, port: 80, weight: 4, zone: b}\n'), [{ ...n('10.0.0.1', 80, 4), zone: 'b' }]);
  assert.throws(() => parseNodesDocument('nodes: 3'), /\/nodes must be array/);
});

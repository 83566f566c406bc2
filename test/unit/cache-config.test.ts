import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/load.js';
import { compileConfig } from '../../src/config/compile.js';
import { ConfigError } from '../../src/config/errors.js';

const UPSTREAMS = 'upstreams:\n  app: { nodes: [{ url: "http://127.0.0.1:9001" }] }\n';

function issues(yaml: string): { path: string; message: string }[] {
  try {
    compileConfig(loadConfigText(UPSTREAMS + yaml, 'gw.yaml', {}), 'gw.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => ({ path: i.path, message: i.message }));
    throw err;
  }
  return [];
}

const route = (cache: string) => `routes:\n  - { name: r, match: { prefix: /r }, upstream: app, policies: { cache: ${cache} } }\n`;

test('cache config errors are named with their path: a zero or tiny size, an object larger than the zone', () => {
  assert.deepEqual(issues(route('{ maxBytes: 0 }')).map((i) => i.path), ['routes[0].policies.cache.maxBytes']);
  assert.deepEqual(issues(route('{ maxBytes: 100 }')).map((i) => i.path), ['routes[0].policies.cache.maxBytes']);
  const big = issues(route('{ maxBytes: 1000000, maxObjectBytes: 2000000 }'));
  assert.deepEqual(big.map((i) => i.path), ['routes[0].policies.cache.maxObjectBytes']);
  assert.match(big[0].message, /larger than maxBytes/);
});

test('one zone has one size: two routes giving it different sizes are refused', () => {
  const found = issues(`routes:
  - { name: a, match: { prefix: /a }, upstream: app, policies: { cache: { zone: z, maxBytes: 1048576 } } }
  - { name: b, match: { prefix: /b }, upstream: app, policies: { cache: { zone: z, maxBytes: 2097152 } } }
`);
  assert.ok(found.some((i) => /^routes\[\d\]\.policies\.cache\.maxBytes$/.test(i.path) && /zone "z"/.test(i.message)), JSON.stringify(found));
});

test('unknown keys, a bad query mode and include without params are refused', () => {
  assert.ok(issues(route('{ maxbytes: 1 }')).some((i) => i.path.startsWith('routes[0].policies.cache')));
  assert.ok(issues(route('{ key: { query: some } }')).some((i) => i.path.startsWith('routes[0].policies.cache.key.query')));
  assert.deepEqual(issues(route('{ key: { query: include } }')).map((i) => i.path), ['routes[0].policies.cache.key.params']);
});

test('a valid cache config compiles, with defaults filled in (ttl and the route TTL override off)', () => {
  assert.deepEqual(issues(route('{}')), []);
  const { plan } = compileConfig(loadConfigText(UPSTREAMS + route('{ ttl: 30, key: { consumer: true } }'), 'gw.yaml', {}), 'gw.yaml');
  const data = plan.routes[0].policies![0].data as { settings: { defaultTtlMs: number }; spec: { consumer: boolean } };
  assert.equal(data.settings.defaultTtlMs, 30_000);
  assert.equal(data.spec.consumer, true);
  const dflt = compileConfig(loadConfigText(UPSTREAMS + route('{}'), 'gw.yaml', {}), 'gw.yaml').plan.routes[0].policies![0].data as { settings: { defaultTtlMs: number } };
  assert.equal(dflt.settings.defaultTtlMs, 0);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/load.js';
import { compileConfig } from '../../src/config/compile.js';
import { ConfigError } from '../../src/config/errors.js';
import type { CacheData } from '../../src/policies/cache/index.js';

// cache.l2: refused with the path and the reason when it cannot work, resolved with the top-level redis: section
// when it can, and absent (null: nothing to do per request) when not configured.

const FILE = 'gw.yaml';
const REDIS = 'redis: { url: "redis://127.0.0.1:6379" }\n';

function routes(...caches: string[]): string {
  return `
upstreams:
  app: { nodes: [{ url: "http://127.0.0.1:9001" }] }
routes:
${caches.map((c, i) => `  - { name: r${i}, match: { prefix: /r${i} }, upstream: app, policies: { cache: ${c} } }`).join('\n')}
`;
}

function compile(text: string) {
  return compileConfig(loadConfigText(text, FILE, {}), FILE);
}

function refusal(text: string): string {
  try {
    compile(text);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  return assert.fail('expected a ConfigError');
}

function l2Of(text: string, route = 0): CacheData['l2'] {
  return (compile(text).plan.routes[route].policies![0].data as CacheData).l2;
}

test('an L2 without a top-level redis: section is refused at its path', () => {
  assert.match(refusal(routes('{ l2: {} }')), /routes\[0\]\.policies\.cache\.l2: the L2 lives in Redis, but the config has no top-level redis: section/);
});

test('unknown keys and out-of-range values in l2 are refused', () => {
  assert.match(refusal(REDIS + routes('{ l2: { ttl: 5 } }')), /routes\[0\]\.policies\.cache\.l2\.ttl: unknown key/);
  assert.match(refusal(REDIS + routes('{ l2: { timeoutMs: 0 } }')), /routes\[0\]\.policies\.cache\.l2\.timeoutMs/);
  assert.match(refusal(REDIS + routes('{ l2: { compression: zstd } }')), /routes\[0\]\.policies\.cache\.l2\.compression/);
  assert.match(refusal(REDIS + routes('{ l2: { namespace: "a b" } }')), /routes\[0\]\.policies\.cache\.l2\.namespace/);
});

test('a zone has one L2 wherever it is used, and a namespace one zone', () => {
  assert.match(refusal(REDIS + routes('{ l2: {} }', '{}')), /zone "default" has (no L2|L2 namespace "default") here and (namespace "default"|no L2) at routes\[\d\]\.policies\.cache/);
  assert.match(refusal(REDIS + routes('{ zone: a, l2: { namespace: shared } }', '{ zone: b, l2: { namespace: shared } }')), /L2 namespace "shared" is used by zone "a" here and by zone "b"/);
});

test('defaults: the namespace is the zone, lookups wait 50 ms, values from 4 KiB are deflated; no l2 compiles to null', () => {
  const d = l2Of(REDIS + routes('{ zone: products, l2: {} }'))!;
  assert.equal(d.namespace, 'products');
  assert.equal(d.timeoutMs, 50);
  assert.equal(d.compression, 'deflate');
  assert.equal(d.compressAboveBytes, 4096);
  assert.equal(d.redis.url, 'redis://127.0.0.1:6379');
  assert.ok(d.region instanceof SharedArrayBuffer);
  assert.equal(l2Of(REDIS + routes('{}')), null);
  // two routes in one zone share the L2's counters
  const plan = compile(REDIS + routes('{ l2: { timeoutMs: 20 } }', '{ l2: { timeoutMs: 20 } }')).plan;
  const [a, b] = plan.routes.map((r) => (r.policies![0].data as CacheData).l2!);
  assert.equal(a.region, b.region);
});

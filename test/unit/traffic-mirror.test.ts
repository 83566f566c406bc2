import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sampled } from '../../src/traffic/mirror.js';
import { loadConfigText } from '../../src/config/load.js';
import { compileConfig } from '../../src/config/compile.js';
import { ConfigError } from '../../src/config/errors.js';

test('the sampling schedule copies exactly p of every 1000 consecutive requests, evenly spread, for every p', () => {
  for (let p = 0; p <= 1000; p++) {
    for (const start of [0, 1, 999, 123_456, 2 ** 31 + 7]) {
      let copies = 0;
      let last = -1;
      let widest = 0;
      for (let k = start; k < start + 1000; k++) {
        if (!sampled(k, p)) continue;
        copies++;
        if (last >= 0) widest = Math.max(widest, k - last);
        last = k;
      }
      assert.equal(copies, p, `p=${p} from ${start}`);
      if (p > 0) assert.ok(widest <= Math.ceil(1000 / p), `p=${p}: copies ${widest} apart`);
    }
  }
  // 25 %: every fourth request; 12.5 %: every eighth
  assert.deepEqual([...Array(12).keys()].filter((k) => sampled(k, 250)), [3, 7, 11]);
  assert.deepEqual([...Array(16).keys()].filter((k) => sampled(k, 125)), [7, 15]);
});

const config = (mirror: string) => `
upstreams:
  main: { nodes: [{ url: http://127.0.0.1:9 }] }
  shadow: { nodes: [{ url: http://127.0.0.1:9 }] }
routes:
  - { name: with, match: { prefix: /a }, upstream: main, mirror: ${mirror} }
  - { name: without, match: { prefix: /b }, upstream: main }
`;

test('a mirror compiles to tenths of a percent, its shadow upstream by index, a lower-case marker line; a route without one has null', () => {
  const { plan } = compileConfig(loadConfigText(config('{ upstream: shadow, percent: 12.5, header: { name: X-Shadow, value: v2 }, match: { headers: { X-A: "1" } } }'), 't.yaml'), 't.yaml');
  const m = plan.routes[0].mirror!;
  assert.equal(m.perMille, 125);
  assert.equal(plan.upstreams[m.upstream].name, 'shadow');
  assert.equal(m.headerLine, 'x-shadow: v2\r\n');
  assert.deepEqual(m.headers, [{ name: 'x-a', op: 'exact', value: '1' }]);
  assert.equal(m.query, null);
  assert.equal(m.maxBodyBytes, 65536);
  assert.equal(m.timeoutMs, 1000);
  assert.equal(m.maxInFlight, 100);
  assert.equal(plan.routes[1].mirror, null);
  // defaults: every request, the x-nanogate-mirror: 1 marker
  const d = compileConfig(loadConfigText(config('{ upstream: shadow }'), 't.yaml'), 't.yaml').plan.routes[0].mirror!;
  assert.equal(d.perMille, 1000);
  assert.equal(d.headerLine, 'x-nanogate-mirror: 1\r\n');
});

test('mirror problems are refused with their paths, all at once', () => {
  const issues = (mirror: string) => {
    try {
      compileConfig(loadConfigText(config(mirror), 't.yaml'), 't.yaml');
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return err.issues.map((i) => `${i.path}: ${i.message}`);
    }
    return [];
  };
  assert.deepEqual(issues('{ upstream: nope, percent: 0.25, match: { query: { q: { regex: "[" } } } }'), [
    'routes[0].mirror.upstream: unknown upstream "nope"',
    'routes[0].mirror.percent: 0.25 has more than one decimal',
    'routes[0].mirror.match.query.q.regex: invalid regular expression: Invalid regular expression: /[/: Unterminated character class',
  ]);
  assert.deepEqual(issues('{ upstream: shadow, percent: 0.1 }'), []);
  assert.deepEqual(issues('{ upstream: shadow, percent: 99.9 }'), []);
});

test('an aggregate route refuses a mirror: its calls go to several upstreams, the routes they reach can mirror', () => {
  const yaml = `
upstreams:
  main: { nodes: [{ url: http://127.0.0.1:9 }] }
  shadow: { nodes: [{ url: http://127.0.0.1:9 }] }
routes:
  - name: agg
    match: { path: /agg, methods: [GET] }
    aggregate: { calls: [{ name: a, upstream: main, path: /a }] }
    mirror: { upstream: shadow }
`;
  assert.throws(() => compileConfig(loadConfigText(yaml, 't.yaml'), 't.yaml'), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.deepEqual(err.issues.map((i) => `${i.path}: ${i.message}`), ['routes[0].mirror: an aggregate route calls several upstreams: a mirror does not apply']);
    return true;
  });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfigText } from '../../src/config/load.js';
import { compileConfig } from '../../src/config/compile.js';
import { ROOT } from '../../src/bench/paths.js';
import { policyRows, withBases } from '../../src/bench/policies.js';

/**
 * The policy-cost bench's rows (native-bench/conf/policies/rows.json): every row's config loads and compiles with
 * the environment run.sh gives it, bases name rows measured before them, micro keys exist in the baseline, and a
 * row asked for alone brings its base rows with it (a cost needs its "without").
 */
const DIR = join(ROOT, 'native-bench', 'conf', 'policies');
const ENV = { NB_NANOGATE_PORT: '19290', NB_NANOGATE_ADMIN_PORT: '19291', NB_ORIGIN_PORT: '19200', NB_ACCESS_LOG: '/tmp/nanogate-policies-test.log' };
const rows = policyRows();

test('every row config compiles to one route with the policies its row names', () => {
  assert.ok(rows.length >= 8);
  for (const r of rows) {
    const file = join(DIR, r.config);
    const { plan } = compileConfig(loadConfigText(readFileSync(file, 'utf8'), file, ENV), file);
    assert.equal(plan.routes.length, 1, r.row);
  }
});

test('bases come earlier in the list, micro keys exist in bench/micro/baseline.json', () => {
  const seen = new Set<string>();
  const baseline = JSON.parse(readFileSync(join(ROOT, 'bench', 'micro', 'baseline.json'), 'utf8')).results as Record<string, unknown>;
  for (const r of rows) {
    if (r.base) assert.ok(seen.has(r.base), `${r.row}: base ${r.base} is not an earlier row`);
    for (const k of r.micro ?? []) assert.ok(k in baseline, `${r.row}: micro case "${k}" is not in the baseline`);
    assert.ok(existsSync(join(DIR, r.config)), r.config);
    seen.add(r.row);
  }
});

test('asking for a row runs its base rows too', () => {
  assert.deepEqual(withBases(['jwt-authorize']), ['pass', 'jwt', 'jwt-authorize']);
  assert.deepEqual(withBases(['standard', 'pass']), ['pass', 'standard']);
});

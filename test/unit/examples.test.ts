import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { loadConfigFile, loadConfigFiles, loadConfigText } from '../../src/config/load.js';
import { compileConfig } from '../../src/config/compile.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const examples = readdirSync(join(root, 'config/examples'))
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => join('config/examples', f));

test('the embedded default config and every example compile with no warning', () => {
  assert.ok(examples.length >= 8);
  for (const file of ['config/nanogate.yaml', ...examples]) {
    const { plan, warnings } = compileConfig(loadConfigFile(join(root, file)), file);
    assert.ok(plan.routes.length > 0, `${file} has no routes`);
    assert.deepEqual(warnings, [], `${file} has warnings`);
  }
});

test('the split example directory merges and compiles with no warning, its token read from a file', () => {
  const { config, label } = loadConfigFiles([join(root, 'config/examples/split')], {});
  const { plan, warnings } = compileConfig(config, label);
  assert.deepEqual(plan.routes.map((r) => r.name), ['users-by-id', 'everything-else']);
  assert.deepEqual(warnings, []);
  assert.equal(config.admin.token, 'split-example-admin-token-change-me');
});

test('the complete config in the README compiles', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const yaml = readme.match(/```yaml\n([\s\S]*?)```/)![1];
  const { plan } = compileConfig(loadConfigText(yaml, 'README.md', { NANOGATE_ADMIN_TOKEN: 'a-long-enough-admin-token' }), 'README.md');
  assert.equal(plan.routes.length, 3);
});

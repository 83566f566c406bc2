import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { ROOT } from '../helpers/cli.js';

/**
 * What `npm pack` puts in nanogate's tarball (package.json "files"): dist/ is not in git, so without the list a
 * packed gateway would lack the code it runs. An installed package without src/ runs dist/ as it is (bin/nanogate.js).
 */
test('the packed package holds what an installed gateway runs, and no sources or tests', () => {
  const r = spawnSync('npm', ['pack', '--dry-run', '--ignore-scripts', '--json'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const files = new Set((JSON.parse(r.stdout) as { files: { path: string }[] }[])[0].files.map((f) => f.path));
  for (const needed of ['bin/nanogate.js', 'dist/src/cli/main.js', 'dist/src/worker/worker.js', 'config/nanogate.yaml', 'config/schema.json', 'package.json', 'README.md']) {
    assert.ok(files.has(needed), `${needed} is not in the package`);
  }
  const stray = [...files].filter((f) => f.startsWith('src/') || f.startsWith('test/') || f.startsWith('dist/test/') || f.startsWith('node_modules/'));
  assert.deepEqual(stray, []);
});

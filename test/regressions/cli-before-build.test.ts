import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/cli.js';

/**
 * `node bin/nanogate.js --help` straight after `npm install` crashed with ERR_MODULE_NOT_FOUND: dist/ did not
 * exist yet. The launcher now builds dist/ when it is missing or older than src/ (and `npm install` builds through
 * `prepare`). Run on a copy of the checkout without dist/ (sharing node_modules).
 */

const dir = mkdtempSync(join(tmpdir(), 'nanogate-fresh-'));
after(() => rmSync(dir, { recursive: true, force: true }));
for (const part of ['bin', 'src', 'scripts', 'config', 'package.json', 'tsconfig.json']) cpSync(join(ROOT, part), join(dir, part), { recursive: true });
symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

const run = (...args: string[]) => spawnSync(process.execPath, [join(dir, 'bin', 'nanogate.js'), ...args], { cwd: dir, encoding: 'utf8', timeout: 300_000 });

test('--help without dist/ builds it first, then answers', () => {
  assert.ok(!existsSync(join(dir, 'dist')));
  const r = run('--help');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^nanogate: an API gateway/);
  assert.match(r.stdout, /nanogate --version/);
  assert.match(r.stderr, /dist\/ is missing; building/);
  assert.ok(existsSync(join(dir, 'dist', 'src', 'config', 'validator.generated.cjs')), 'the build made the prebuilt validator too');
});

test('--version prints the package.json version, with nothing to build', () => {
  const r = run('--version');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), version);
  assert.equal(r.stderr, '');
});

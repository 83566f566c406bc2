import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, symlinkSync, writeFileSync, chmodSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/cli.js';

/**
 * `npm test` on a fresh machine failed tests one by one when redis-server was not on the PATH. `pretest` now runs
 * scripts/ensure-test-deps.mjs, which installs what is missing with apt-get as root, or stops at once with one line
 * naming what to install. Here it runs with a PATH that lacks redis-server (the other binaries are linked in).
 */

const SCRIPT = join(ROOT, 'scripts', 'ensure-test-deps.mjs');
const which = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin} || ls /usr/sbin/${bin}`], { encoding: 'utf8' }).stdout.trim().split('\n')[0];

function pathWithout(missing: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'nanogate-deps-'));
  for (const bin of ['redis-server', 'openssl', 'promtool', 'dnsmasq', 'systemd-analyze', 'etcd']) {
    if (bin === missing) continue;
    const real = which(bin);
    assert.ok(real, `${bin} is installed on this machine (npm test's pretest checked it)`);
    symlinkSync(real, join(dir, bin));
  }
  return dir;
}

const isRoot = process.getuid?.() === 0;

test('without root or apt-get, a missing binary stops it at once with one line naming the package', () => {
  const dir = pathWithout('redis-server');
  // no apt-get on this PATH: the script cannot install, whoever runs it
  const r = spawnSync(process.execPath, [SCRIPT], { env: { PATH: dir }, encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^ensure-test-deps: the tests need redis-server: install them \(apt-get install -y redis-server\)/);
});

test('as root, a missing binary is installed with one quiet, noninteractive apt-get update and install', () => {
  const dir = pathWithout('redis-server');
  const log = join(dir, 'apt.log');
  // an apt-get that records how it was called and "installs" redis-server by linking the real one
  writeFileSync(
    join(dir, 'apt-get'),
    `#!/bin/sh\necho "$DEBIAN_FRONTEND $*" >> ${log}\ncase "$1" in install) /bin/ln -s ${which('redis-server')} ${dir}/redis-server;; esac\nexit 0\n`,
  );
  chmodSync(join(dir, 'apt-get'), 0o755);
  const r = spawnSync(process.execPath, [SCRIPT], { env: { PATH: dir }, encoding: 'utf8' });
  if (!isRoot) {
    // not root (CI is): it must not try, and says what to install
    assert.equal(r.status, 1, r.stderr);
    assert.ok(!existsSync(log), 'apt-get was not called');
    return;
  }
  assert.equal(r.status, 0, r.stderr);
  assert.ok(existsSync(join(dir, 'redis-server')));
  assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n').map((l) => l.trim()), [
    '--version',
    'noninteractive update -qq',
    'noninteractive install -y -qq --no-install-recommends redis-server',
  ]);
});

// Makes sure the system binaries the tests start are here (run by `npm test` through `pretest`, and by .ci/run).
// Missing ones are installed with apt-get when running as root on Debian/Ubuntu (one `apt-get update`, quiet,
// noninteractive); otherwise this stops at once with one line naming what to install. A test never skips for a
// missing binary: it would pass on a machine that cannot run it.
import { accessSync, constants, existsSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { spawnSync } from 'node:child_process';

/** binary -> Debian package */
const NEEDED = [
  ['redis-server', 'redis-server'], // rate-limit cluster tests (a real redis-server on loopback)
  ['openssl', 'openssl'], // certificates and keys made by tests
  ['promtool', 'prometheus'], // checks the /metrics exposition
  ['dnsmasq', 'dnsmasq-base'], // a real DNS server for discovery tests (-base: the binary without the system service)
  ['systemd-analyze', 'systemd'], // verifies deploy/systemd/nanogate.service (the unit is not started)
  ['etcd', 'etcd-server'], // config shared through a real etcd on loopback (test/helpers/etcd.ts)
];

// sbin is searched too: dnsmasq lives in /usr/sbin, which a non-root PATH often lacks
const DIRS = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/local/sbin', '/usr/sbin', '/sbin'];

function found(bin) {
  for (const dir of DIRS) {
    try {
      accessSync(join(dir, bin), constants.X_OK);
      return true;
    } catch {
      // not in this one
    }
  }
  return false;
}

const missing = () => NEEDED.filter(([bin]) => !found(bin));
let absent = missing();
if (absent.length === 0) process.exit(0);

const packages = absent.map(([, pkg]) => pkg);
const names = absent.map(([bin, pkg]) => (bin === pkg ? bin : `${bin} (Debian package ${pkg})`)).join(', ');
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasApt = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
if (!isRoot || !hasApt) {
  console.error(`ensure-test-deps: the tests need ${names}: install them (apt-get install -y ${packages.join(' ')}) and run again`);
  process.exit(1);
}

console.error(`ensure-test-deps: installing ${packages.join(' ')}`);
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
const run = (args) => spawnSync('apt-get', args, { env, stdio: ['ignore', 'ignore', 'inherit'] }).status === 0;
// The prometheus package would start its server as a system service; the tests only run promtool. A policy-rc.d
// that answers 101 ("action forbidden", Debian's invoke-rc.d policy) keeps packages from starting services.
const POLICY = '/usr/sbin/policy-rc.d';
const ownPolicy = !existsSync(POLICY);
if (ownPolicy) writeFileSync(POLICY, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
let installed;
try {
  installed = run(['update', '-qq']) && run(['install', '-y', '-qq', '--no-install-recommends', ...packages]);
} finally {
  if (ownPolicy) rmSync(POLICY, { force: true });
}
if (!installed) {
  console.error(`ensure-test-deps: apt-get could not install ${packages.join(' ')}`);
  process.exit(1);
}
absent = missing();
if (absent.length > 0) {
  console.error(`ensure-test-deps: still missing after apt-get: ${absent.map(([bin]) => bin).join(', ')}`);
  process.exit(1);
}

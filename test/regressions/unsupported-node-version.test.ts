import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { checkRuntime, currentRuntime, SUPPORTED_NODE } from '../../src/cli/runtime.js';

/**
 * package.json said Node >= 20.19, but the uWebSockets.js build ships binaries for Node 16/18/20 only and on any
 * other Node falls back to a JavaScript implementation on which the gateway cannot listen. `start` now refuses
 * such a Node with one line; engines says exactly what runs.
 */

// the real file list of the installed uWS package
const BINARIES = readdirSync(join(dirname(createRequire(import.meta.url).resolve('uWebSockets.js')), '..', 'binaries'));
const facts = (version: string, modules: string, platform = 'linux', arch = 'x64') => ({ version, modules, platform, arch, binaries: BINARIES });

test('the uWS build has a binary for Node 20 (ABI 115) and none for 22 (ABI 127)', () => {
  assert.ok(BINARIES.includes('uws_linux_x64_115.node'));
  assert.ok(!BINARIES.some((f) => f.endsWith('_127.node')));
});

test('Node 20.19 and later 20.x pass', () => {
  for (const v of ['v20.19.0', 'v20.19.5', 'v20.20.2', 'v20.99.0']) assert.equal(checkRuntime(facts(v, '115')), null, v);
  assert.equal(checkRuntime(currentRuntime()), null, 'this test run itself');
});

test('older and newer Node versions are refused with one line that names what runs', () => {
  for (const [v, abi] of [['v20.18.3', '115'], ['v18.20.4', '108'], ['v16.20.2', '93'], ['v22.12.0', '127'], ['v23.1.0', '131'], ['v24.0.0', '137']]) {
    const msg = checkRuntime(facts(v, abi));
    assert.ok(msg !== null, v);
    assert.ok(!msg.includes('\n'), `one line: ${msg}`);
    assert.match(msg, new RegExp(`Node\\.js ${v.replace(/\./g, '\\.')} is not supported; nanogate runs on Node\\.js 20\\.19 or a later 20\\.x`));
  }
  assert.match(checkRuntime(facts('v22.12.0', '127'))!, /no binary for newer Node ABIs/);
  assert.match(checkRuntime(facts('garbage', '115'))!, /cannot read the Node\.js version/);
});

test('a platform or ABI without a binary, and the JavaScript fallback, are refused', () => {
  assert.match(checkRuntime(facts('v20.19.0', '115', 'freebsd', 'x64'))!, /no binary for freebsd\/x64 on Node ABI 115 \(uws_freebsd_x64_115\.node\); it has .*linux\/x64/);
  assert.match(checkRuntime(facts('v20.19.0', '116'))!, /no binary for linux\/x64 on Node ABI 116/);
  assert.match(checkRuntime({ ...facts('v20.19.0', '115'), useFallback: '1' })!, /UWS_USE_FALLBACK/);
});

test('engines in package.json says the same range', async () => {
  const pkg = createRequire(import.meta.url)('../../../package.json') as { engines: { node: string } };
  assert.equal(pkg.engines.node, SUPPORTED_NODE);
});

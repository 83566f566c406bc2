import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startGatewayProcess } from '../helpers/gateway-process.js';
import { ROOT } from '../helpers/cli.js';
import { memoryReducerOff } from '../../src/shared/heap-tuning.js';

/**
 * V8's memory reducer compacted the control plane's heap ~8 s after start-up, a 15-20 ms stall of the CPU a worker
 * needs (docs/performance.md). The launchers start node with --no-memory-reducer; `nanogate start` then collects
 * its start-up garbage before it says it serves, and without the flag it says how to turn the reducer off.
 */
const yaml = 'upstreams:\n  u:\n    nodes: [{ url: "http://127.0.0.1:9" }]\nroutes:\n  - { name: r, match: { prefix: / }, upstream: u }\n';
const msgs = (logs: string[]) => logs.flatMap((l) => { try { return [String((JSON.parse(l) as { msg: unknown }).msg)]; } catch { return []; } });

test('started with --no-memory-reducer: the start-up garbage is collected before "nanogate is serving"', async () => {
  const gw = await startGatewayProcess(yaml, { nodeArgs: ['--no-memory-reducer'], logLevel: 'debug' });
  try {
    const m = msgs(gw.logs);
    const collected = m.indexOf('start-up garbage collected');
    assert.ok(collected >= 0, m.join('\n'));
    assert.ok(collected < m.indexOf('nanogate is serving'));
    assert.ok(!m.some((x) => x.includes('memory reducer')));
    const r = await fetch(`${gw.url}/x`); // it serves: the only node refuses connections
    await r.arrayBuffer();
    assert.ok(r.status === 502 || r.status === 503, String(r.status));
  } finally {
    await gw.stop();
  }
});

test('started without it: one line says the reducer is on and how to turn it off; no forced collection', async () => {
  const gw = await startGatewayProcess(yaml, { logLevel: 'debug' });
  try {
    const m = msgs(gw.logs);
    assert.equal(m.filter((x) => x.includes("V8's memory reducer") && x.includes('--no-memory-reducer')).length, 1, m.join('\n'));
    assert.ok(!m.includes('start-up garbage collected'));
  } finally {
    await gw.stop();
  }
});

test('every launcher passes the flag: bin/nanogate.js, npm start, the systemd unit, the image', () => {
  assert.match(readFileSync(join(ROOT, 'bin', 'nanogate.js'), 'utf8').split('\n')[0]!, /^#!\/usr\/bin\/env -S node --no-memory-reducer$/);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  assert.match(pkg.scripts.start!, /^node --no-memory-reducer bin\/nanogate\.js start$/);
  assert.match(readFileSync(join(ROOT, 'deploy', 'systemd', 'nanogate.service'), 'utf8'), /^ExecStart=\/usr\/bin\/node --no-memory-reducer /m);
  assert.match(readFileSync(join(ROOT, 'deploy', 'Dockerfile'), 'utf8'), /^ENTRYPOINT \["node", "--no-memory-reducer", "bin\/nanogate\.js"\]$/m);
  assert.equal(memoryReducerOff(['--no-memory-reducer']), true);
  assert.equal(memoryReducerOff(['--no-memory_reducer', '--inspect']), true);
  assert.equal(memoryReducerOff([]), false);
});

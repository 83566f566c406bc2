import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { BIN, ROOT } from '../helpers/cli.js';
import { writeConfig } from '../helpers/gateway.js';
import { closedPort } from '../helpers/upstream.js';
import { startGatewayProcess } from '../helpers/gateway-process.js';

/**
 * SIGTERM handling of `nanogate start`, as systemd or a container runtime sends it:
 * - during start-up no handler was installed yet, so the process died of the signal (exit 143) with worker
 *   threads half started; now the signal stops what has started and the process exits 0;
 * - after "nanogate stopped" the process lived on; now it ends right there: the stop line is its last word and
 *   the exit code is 0.
 */

async function config(): Promise<string> {
  const port = await closedPort();
  const admin = await closedPort();
  return writeConfig(`listen: { host: 127.0.0.1, port: ${port} }\nadmin: { host: 127.0.0.1, port: ${admin} }\nroutes: []\n`);
}

test('SIGTERM during start-up stops what has started and exits 0', async () => {
  const file = await config();
  const child = spawn(process.execPath, [BIN, 'start', '--config', file, '--workers', '2'], {
    cwd: ROOT,
    env: { ...process.env, NANOGATE_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let partial = '';
  let signalled = false;
  const collect = (d: Buffer) => {
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop()!;
    for (const line of parts) {
      lines.push(line);
      // "starting" is logged after the config path is known and before the config is loaded or a worker spawned
      if (!signalled && line.includes('"msg":"starting"')) {
        signalled = true;
        child.kill('SIGTERM');
      }
    }
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])));
  assert.ok(signalled, `the start-up line was seen:\n${lines.join('\n')}`);
  assert.equal(signal, null, `died of ${signal}:\n${lines.join('\n')}`);
  assert.equal(code, 0, lines.join('\n'));
  assert.ok(lines.some((l) => l.includes('nanogate stopped')), lines.join('\n'));
});

test('SIGTERM after ready: the process ends right after its "stopped" line, with exit code 0', async () => {
  const gw = await startGatewayProcess('routes: []\n', { workers: 2 });
  const exited = new Promise<number | null>((resolve) => gw.child.once('exit', (c) => resolve(c)));
  await gw.stop();
  const code = await exited;
  assert.equal(code, 0, gw.logs.join('\n'));
  const last = gw.logs.filter((l) => l.trim() !== '').at(-1) ?? '';
  assert.match(last, /nanogate stopped/, gw.logs.join('\n'));
});

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../helpers/cli.js';
import { writeConfig } from '../helpers/gateway.js';
import { closedPort } from '../helpers/upstream.js';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';

/**
 * A second nanogate started on a port that another one serves bound it silently (the workers set SO_REUSEPORT)
 * and took part of the traffic. It now refuses to start, in one line and with exit code 1, unless the config asks
 * for sharing (listen.reusePort: true). The workers of one gateway still share its port: the first node runs two.
 */

const running: GatewayProcess[] = [];
after(async () => {
  for (const g of running) await g.stop();
});

test('a second gateway on a served port refuses to start in one line; with listen.reusePort it joins', async () => {
  const first = await startGatewayProcess('routes: []\n', { workers: 2 });
  running.push(first);
  assert.equal(((await first.status()).workers as unknown[]).length, 2, 'two workers share the first node\'s port');

  const admin = await closedPort();
  const file = writeConfig(`listen: { host: 127.0.0.1, port: ${first.port} }\nadmin: { host: 127.0.0.1, port: ${admin} }\nroutes: []\n`);
  const second = await runCli(['start', '--config', file, '--workers', '1'], { timeoutMs: 30_000 });
  assert.equal(second.timedOut, false, `the second node started and served:\n${second.stdout}${second.stderr}`);
  assert.equal(second.code, 1, second.stderr);
  const lines = second.stderr.trim().split('\n');
  assert.equal(lines.length, 1, second.stderr);
  assert.match(lines[0], new RegExp(`^nanogate: cannot start: 127\\.0\\.0\\.1:${first.port} is already in use .*listen\\.reusePort: true`));

  const sharing = await startGatewayProcess('routes: []\n', { workers: 1, port: first.port, reusePort: true });
  running.push(sharing);
  assert.equal((await sharing.status()).ready, true);
});

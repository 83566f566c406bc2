import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

/**
 * One stdout stream carried two line formats: the control plane's pino lines had `time` in epoch milliseconds and a
 * numeric `level` (30), the access-log lines an ISO time and `"level":"info"` (and the audit trail on stderr mixed
 * the two). Every line `nanogate start` writes over a start, a request, a reload and a stop now has an ISO 8601 UTC
 * `time` and a `level` label.
 */

const ISO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal']);

let up: TestUpstream;
let gw: GatewayProcess;

before(async () => {
  up = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
  // access log on stdout (the default destination), next to the control plane's lines
  gw = await startGatewayProcess(`
policies:
  accessLog: {}
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
routes:
  - { name: api, match: { prefix: / }, upstream: app }
`);
});

after(async () => {
  await gw?.stop();
  await up?.close();
});

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(cond(), `waited for ${what}:\n${gw.logs.join('\n')}`);
}

test('start, request, reload and stop write every line with an ISO 8601 UTC time and a level label', async () => {
  const res = await fetch(`${gw.url}/hello`);
  assert.equal(res.status, 200);
  await res.arrayBuffer();
  const missing = await fetch(`${gw.url}/a/../b`);
  await missing.arrayBuffer();
  await until(() => gw.logs.some((l) => l.includes('"nanogate.request_id"') && l.includes('/hello')), 'the access-log line');
  gw.child.kill('SIGHUP');
  await until(() => gw.logs.some((l) => l.includes('reloaded on SIGHUP')), 'the reload line');
  await gw.stop();

  const lines = gw.logs.filter((l) => l.trim() !== '');
  assert.ok(lines.length >= 5, `start, access, reload and stop lines:\n${lines.join('\n')}`);
  const kinds = new Set<string>();
  for (const line of lines) {
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      assert.fail(`not a JSON line: ${line}`);
    }
    assert.equal(typeof entry.time, 'string', `time as text: ${line}`);
    assert.match(entry.time as string, ISO_UTC, line);
    assert.ok(LEVELS.has(entry.level as string), `level as a label: ${line}`);
    kinds.add('nanogate.request_id' in entry ? 'access' : entry.audit === true ? 'audit' : 'control');
  }
  assert.deepEqual([...kinds].sort(), ['access', 'audit', 'control'], 'all three writers were checked');
});

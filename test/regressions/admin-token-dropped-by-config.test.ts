import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Gateway } from '../../src/control/gateway.js';
import { admin, eventually } from '../helpers/admin.js';

/**
 * `PUT /config` once took a config without `admin.token` with `warnings: []`: from then on anyone on loopback could
 * change the gateway. A change that drops the running admin API's token is now refused unless the request says so
 * (?allowInsecureAdmin=1), and then the answer warns; a reload of the file (watch, SIGHUP) is refused with a log
 * line that says why.
 */

const TOKEN = 'admin-token-that-stays-0123456789';
let dir: string;
let file: string;
let gateway: Gateway;
let adminUrl: string;
const logs: string[] = [];

function yaml(token: string | null): string {
  return `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0${token ? `, token: ${token}` : ''}, auditLog: '${join(dir, 'audit.log')}' }
reload: { watch: true, debounceMs: 20 }
workers: 1
upstreams:
  app: { nodes: [{ url: 'http://127.0.0.1:1' }] }
routes:
  - { name: r, match: { prefix: / }, upstream: app }
`;
}

const call = (method: string, path: string, body?: string, token: string | null = TOKEN) => admin(adminUrl, method, path, { token, body });
const auditLines = () => readFileSync(join(dir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nanogate-admin-token-'));
  file = join(dir, 'gateway.yaml');
  writeFileSync(file, yaml(TOKEN));
  const sink = new Writable({
    write(chunk, _enc, done) {
      logs.push(String(chunk));
      done();
    },
  });
  gateway = new Gateway({ configFile: file, workers: 1, logger: pino({ level: 'info' }, sink) });
  await gateway.start();
  adminUrl = `http://127.0.0.1:${gateway.admin!.port}`;
});

after(async () => {
  await gateway?.stop();
});

test('a config that drops the admin token is refused through PUT /config, POST /reload and a file reload', async () => {
  const version = gateway.plan.version;
  const put = await call('PUT', '/config', yaml(null));
  assert.equal(put.status, 422);
  assert.equal(put.body.code, 'NG_ERR_ADMIN_CONFIG_INVALID');
  assert.ok(put.body.errors.some((e: string) => /admin\.token: the running admin API .* requires a token and this config removes it/.test(e) && e.includes('allowInsecureAdmin=1')), JSON.stringify(put.body.errors));
  assert.equal(auditLines().at(-1).result, 'refused');

  // The file changes (an editor's atomic rename): the watch reloads it and refuses it, and the log says why.
  const tmp = join(dir, '.next.tmp');
  writeFileSync(tmp, yaml(null));
  renameSync(tmp, file);
  assert.ok(
    await eventually(() => logs.some((l) => l.includes('config file change refused') && l.includes('admin.token') && l.includes('restart the gateway'))),
    `log lines: ${logs.join('')}`,
  );
  await assert.rejects(gateway.reload({ who: 'SIGHUP' }), /admin\.token: the running admin API/);
  assert.equal((await call('POST', '/reload')).status, 422);

  assert.equal(gateway.plan.version, version, 'nothing was applied');
  assert.equal((await call('GET', '/status', undefined, null)).status, 401, 'the token is still required');
  assert.equal((await call('GET', '/status')).status, 200);
});

test('a malformed allowInsecureAdmin value gets 400', async () => {
  const r = await call('PUT', '/config?allowInsecureAdmin=yes-please', yaml(null));
  assert.equal(r.status, 400);
  assert.equal(r.body.code, 'NG_ERR_ADMIN_BAD_REQUEST');
});

test('with ?allowInsecureAdmin=1 the token is removed, and the answer warns', async () => {
  const r = await call('PUT', '/config?allowInsecureAdmin=1', yaml(null));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.ok(r.body.warnings.some((w: string) => w.startsWith('admin.token: removed as asked')), JSON.stringify(r.body.warnings));
  assert.equal((await call('GET', '/status', undefined, null)).status, 200, 'the admin API is open now, as asked');
  // Putting a token back needs no flag.
  assert.equal((await call('PUT', '/config', yaml(TOKEN), null)).status, 200);
  assert.equal((await call('GET', '/status', undefined, null)).status, 401);
});

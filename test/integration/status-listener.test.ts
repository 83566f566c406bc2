import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import pino from 'pino';
import { Gateway } from '../../src/control/gateway.js';
import { writeConfig } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { PROMETHEUS_ACCEPT, parsePrometheus, scrapeRaw } from '../helpers/prometheus.js';
import { openMetricsProblems } from '../helpers/openmetrics.js';
import { runCli } from '../helpers/cli.js';

/**
 * The status listener (`status: { host, port }`): probes and scrapes without the admin token, on a port of its
 * own, and nothing of the admin API whatever the caller sends.
 */

const T = { timeout: 60_000 };
const TOKEN = 'status-test-token-0123456789';
let up: TestUpstream;
let gateway: Gateway;
let configFile: string;
let statusUrl: string;
let config: string;
const gw = {
  get url() {
    return `http://127.0.0.1:${gateway.port}`;
  },
  get adminUrl() {
    return `http://127.0.0.1:${gateway.admin!.port}`;
  },
};

const withPorts = (rest: string) => `listen: { host: 127.0.0.1, port: 0 }\nreload: { watch: false }\n${rest}`;

before(async () => {
  up = await startUpstream();
  config = `
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
routes:
  - { name: all, match: { prefix: / }, upstream: app }
`;
  configFile = writeConfig(withPorts(`admin: { host: 127.0.0.1, port: 0, token: ${TOKEN} }\nstatus: { host: 127.0.0.1, port: 0 }\n${config}`));
  gateway = new Gateway({ configFile, workers: 1, logger: pino({ level: 'silent' }) });
  await gateway.start();
  statusUrl = `http://127.0.0.1:${gateway.statusListener!.port}`;
});

after(async () => {
  await gateway?.stop();
  await up?.close();
});

test('/health, /ready and /metrics answer on the status port without a token', T, async () => {
  assert.notEqual(gateway.statusListener!.port, gateway.admin!.port);
  const health = await fetch(`${statusUrl}/health`);
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), { status: 'ok' });
  const ready = await fetch(`${statusUrl}/ready`);
  assert.equal(ready.status, 200);
  assert.deepEqual(await ready.json(), { ready: true, version: 1 });

  await (await fetch(`${gw.url}/x`)).arrayBuffer();
  const text = await scrapeRaw(statusUrl);
  assert.equal(text.status, 200);
  assert.equal(text.contentType, 'text/plain; version=0.0.4; charset=utf-8');
  assert.equal(parsePrometheus(text.text).sum('nanogate_requests_total', { route: 'all', code: '200' }), 1);
  const om = await scrapeRaw(statusUrl, { accept: PROMETHEUS_ACCEPT });
  assert.equal(om.contentType, 'application/openmetrics-text; version=1.0.0; charset=utf-8');
  assert.deepEqual(openMetricsProblems(om.text), []);
  const head = await fetch(`${statusUrl}/metrics`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), '');
});

test('the admin API still asks for its token, also for /metrics', T, async () => {
  assert.equal((await scrapeRaw(gw.adminUrl)).status, 401);
  assert.equal((await scrapeRaw(gw.adminUrl, { token: TOKEN })).status, 200);
  assert.equal((await fetch(`${gw.adminUrl}/health`)).status, 200);
});

test('nothing of the admin API is served on the status port, with or without the token', T, async () => {
  const auth = { authorization: `Bearer ${TOKEN}` };
  const tries: [string, string][] = [
    ['GET', '/config'],
    ['PUT', '/config'],
    ['GET', '/status'],
    ['GET', '/routes'],
    ['POST', '/routes/all/disable'],
    ['POST', '/reload'],
    ['POST', '/config/rollback'],
    ['POST', '/upstreams/app/nodes/0/drain'],
    ['POST', '/_fault/crash-worker'],
    ['GET', '/metrics/../config'],
    ['GET', '/'],
  ];
  for (const [method, path] of tries) {
    for (const headers of [{}, auth]) {
      const res = await fetch(`${statusUrl}${path}`, { method, headers, body: method === 'PUT' ? 'routes: []' : undefined });
      const body = (await res.json()) as { code: string };
      assert.equal(res.status, 404, `${method} ${path}`);
      assert.equal(body.code, 'NG_ERR_ADMIN_NOT_FOUND');
    }
  }
  for (const method of ['POST', 'PUT', 'DELETE']) {
    const res = await fetch(`${statusUrl}/metrics`, { method, headers: auth });
    assert.equal(res.status, 405, method);
    assert.equal(res.headers.get('allow'), 'GET, HEAD');
    assert.equal(((await res.json()) as { code: string }).code, 'NG_ERR_ADMIN_METHOD_NOT_ALLOWED');
  }
  // none of it changed anything
  assert.equal(gateway.plan.version, 1);
  assert.equal(gateway.routeDisabled('all'), false);
  assert.equal((await fetch(`${gw.url}/x`)).status, 200);
});

test('the status listener cannot move while the gateway runs: a reload that changes it is refused', T, async () => {
  writeFileSync(configFile, withPorts(`admin: { host: 127.0.0.1, port: 0, token: ${TOKEN} }\nstatus: { host: 127.0.0.1, port: 1 }\n${config}`));
  await assert.rejects(gateway.reload(), /status: cannot change while the gateway runs/);
  writeFileSync(configFile, withPorts(`admin: { host: 127.0.0.1, port: 0, token: ${TOKEN} }\n${config}`));
  await assert.rejects(gateway.reload(), /status: cannot change while the gateway runs/);
  assert.equal((await fetch(`${statusUrl}/health`)).status, 200);
});

test('a status port that is the admin or listen port is refused with the path and the reason', T, async () => {
  const file = writeConfig(`listen: { host: 127.0.0.1, port: 18080 }\nadmin: { host: 127.0.0.1, port: 19901 }\nstatus: { port: 19901 }\n${config}`);
  const r = await runCli(['validate', file]);
  assert.equal(r.code, 1);
  assert.match(r.stderr + r.stdout, /status\.port: 19901 is admin\.port: the status listener needs a port of its own/);
  const file2 = writeConfig(`listen: { host: 0.0.0.0, port: 18080 }\nstatus: { host: 127.0.0.1, port: 18080 }\n${config}`);
  const r2 = await runCli(['validate', file2]);
  assert.equal(r2.code, 1);
  assert.match(r2.stderr + r2.stdout, /status\.port: 18080 is listen\.port/);
  const file3 = writeConfig(`status: { host: 127.0.0.1, port: 19902, token: x }\n${config}`);
  const r3 = await runCli(['validate', file3]);
  assert.equal(r3.code, 1);
  assert.match(r3.stderr + r3.stdout, /status\.token: unknown key/);
});

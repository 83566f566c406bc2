import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'node:http';
import { startAdminGateway, admin, eventually } from '../helpers/admin.js';
import { startUpstream } from '../helpers/upstream.js';
import { writeConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { until } from '../helpers/gateway-state.js';
import { seededRandom } from '../helpers/random.js';

const BIN = fileURLToPath(new URL('../../../bin/nanogate.js', import.meta.url));

const head = (watch: boolean) => `
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0, auditLog: '{{dir}}/audit.log' }
reload: { watch: ${watch}, debounceMs: 50 }
`;

async function version(base: string): Promise<number> {
  return (await admin(base, 'GET', '/config')).body.version;
}

test('a changed config file is reloaded, also when an editor renames a new file over it; a bad one is refused', async () => {
  const up = await startUpstream((req, res) => res.end(req.url));
  const routes = (prefix: string) => `upstreams: { u: { nodes: [{ url: ${up.url} }] } }\nroutes: [{ name: r, match: { prefix: ${prefix} }, upstream: u }]\n`;
  const gw = await startAdminGateway(head(true) + routes('/one'));
  try {
    assert.equal((await send(gw.port, { path: '/one' })).status, 200);
    gw.writeAtomic(head(true) + routes('/two'));
    assert.ok(await eventually(async () => (await version(gw.adminUrl)) === 2), 'no reload after an atomic rename');
    assert.equal((await send(gw.port, { path: '/two' })).status, 200);
    assert.equal((await send(gw.port, { path: '/one' })).status, 404);

    gw.write(head(true) + routes('/three'));
    assert.ok(await eventually(async () => (await version(gw.adminUrl)) === 3), 'no reload after an in-place write');
    assert.equal((await send(gw.port, { path: '/three' })).status, 200);

    // A broken file: refused (logged and audited), the old config keeps serving.
    gw.write(head(true) + routes('/four') + 'routes: []\n');
    const audit = () => readFileSync(join(gw.dir, 'audit.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    assert.ok(await eventually(() => audit().some((l) => l.who === 'file-watch' && l.result === 'refused')), 'the refusal was not audited');
    const refusal = audit().find((l) => l.result === 'refused')!;
    assert.match(refusal.error, /gateway\.yaml: line \d+, column \d+: Map keys must be unique/);
    assert.equal(await version(gw.adminUrl), 3);
    assert.equal((await send(gw.port, { path: '/three' })).status, 200);

    // Writing the same bytes again, or touching another file in the directory, reloads nothing.
    gw.write(head(true) + routes('/five'));
    assert.ok(await eventually(async () => (await version(gw.adminUrl)) === 4));
    gw.write(head(true) + routes('/five'));
    writeFileSync(join(gw.dir, 'unrelated.yaml'), 'unrelated: true\n');
    // Quiet for longer than the debounce (50 ms), so those events are handled on their own; then a real change.
    // Had either of them reloaded, the real change would be version 6, and the audit would show it.
    await new Promise((r) => setTimeout(r, 300));
    gw.write(head(true) + routes('/six'));
    assert.ok(await eventually(async () => (await version(gw.adminUrl)) >= 5));
    assert.equal(await version(gw.adminUrl), 5);
    assert.deepEqual(
      audit().filter((l) => l.who === 'file-watch').map((l) => [l.action, l.result, l.version]),
      [
        ['reload', 'ok', 2],
        ['reload', 'ok', 3],
        ['reload', 'refused', undefined],
        ['reload', 'ok', 4],
        ['reload', 'ok', 5],
      ],
    );
  } finally {
    await gw.stop();
    await up.close();
  }
});

test('SIGHUP reloads the config file of a running gateway; a bad file is refused and the old config serves', async () => {
  const up = await startUpstream((req, res) => res.end(req.url));
  const cfg = (prefix: string) =>
    `${head(false).replace("auditLog: '{{dir}}/audit.log'", 'auditLog: stderr')}workers: 1\nupstreams: { u: { nodes: [{ url: ${up.url} }] } }\nroutes: [{ name: r, match: { prefix: ${prefix} }, upstream: u }]\n`;
  const file = writeConfig(cfg('/a'));
  const child = spawn(process.execPath, [BIN, 'start', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  try {
    const ready = await eventually(() => /nanogate is serving/.test(out), 15000);
    assert.ok(ready, out);
    const line = JSON.parse(out.split('\n').find((l) => l.includes('nanogate is serving'))!);
    const adminUrl = `http://127.0.0.1:${line.admin}`;
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, cfg('/b'));
    child.kill('SIGHUP');
    assert.ok(await eventually(async () => (await version(adminUrl)) === 2), out);
    assert.equal((await send(line.port, { path: '/b' })).status, 200);
    // The audit log defaults to stderr.
    assert.ok(await eventually(() => err.split('\n').some((l) => l.includes('"audit":true') && l.includes('"who":"SIGHUP"') && l.includes('"result":"ok"'))), err);

    writeFileSync(file, 'listen: [');
    child.kill('SIGHUP');
    assert.ok(await eventually(() => /reload refused/.test(out)), out);
    assert.equal(await version(adminUrl), 2);
    assert.equal((await send(line.port, { path: '/b' })).status, 200);
  } finally {
    child.kill('SIGTERM');
    await once(child, 'exit');
    await up.close();
  }
});

test('under load, 20 reloads alternating two configs fail no request, and every answer comes from one whole config', async () => {
  // Answers take 2-10 ms, so that every reload finds requests in flight on the pools it retires.
  const random = seededRandom(20);
  const delay = () => new Promise((r) => setTimeout(r, 2 + random.next() * 8));
  const upA = await startUpstream(async (_req, res) => {
    await delay();
    res.writeHead(200, { 'x-upstream': 'A', 'content-length': '1' });
    res.end('A');
  });
  const upB = await startUpstream(async (_req, res) => {
    await delay();
    res.writeHead(200, { 'x-upstream': 'B', 'content-length': '1' });
    res.end('B');
  });
  // Different upstream names: every reload retires the other config's pools while requests are in flight on them.
  const cfg = (id: 'A' | 'B') => `${head(false)}workers: 2
upstreams:
  up-${id}: { nodes: [{ url: ${id === 'A' ? upA.url : upB.url} }] }
routes:
  - name: x
    match: { prefix: /x }
    upstream: up-${id}
    policies: { headers: { response: { set: { x-config: ${id} } } } }
`;
  const gw = await startAdminGateway(cfg('A'), { workers: 2 });
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  let stop = false;
  const seen = { A: 0, B: 0 };
  const failures: string[] = [];
  const one = () =>
    new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port: gw.port, path: '/x/y', agent }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => {
          const cfgId = res.headers['x-config'];
          const upId = res.headers['x-upstream'];
          if (res.statusCode !== 200) failures.push(`status ${res.statusCode}: ${body}`);
          else if (cfgId !== upId || body !== upId) failures.push(`mixed: x-config ${cfgId}, upstream ${upId}, body ${body}`);
          else seen[upId as 'A' | 'B']++;
          resolve();
        });
      });
      req.setTimeout(5000, () => req.destroy(new Error('no answer within 5 s')));
      req.on('error', (err) => {
        failures.push(`error: ${err.message}`);
        resolve();
      });
      req.end();
    });
  const clients = Array.from({ length: 8 }, async () => {
    while (!stop) await one();
  });
  // Paced by answers, not by the clock: each config serves a few requests before the next reload, however slowly
  // the machine runs.
  const served = (id: 'A' | 'B', n: number) =>
    until(() => `${n} answers from ${id} (seen ${JSON.stringify(seen)}, failures ${JSON.stringify(failures.slice(0, 3))})`, () => seen[id] >= n, 20_000);
  try {
    await served('A', 6);
    for (let i = 1; i <= 20; i++) {
      const id = i % 2 === 1 ? 'B' : 'A';
      const next = cfg(id);
      const before = seen[id];
      let r;
      if (i % 4 < 2) r = await admin(gw.adminUrl, 'PUT', '/config', { body: next.replaceAll('{{dir}}', gw.dir) });
      else {
        gw.write(next);
        r = await admin(gw.adminUrl, 'POST', '/reload');
      }
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.version, i + 1);
      await served(id, before + 6);
    }
  } finally {
    stop = true;
    await Promise.all(clients);
    agent.destroy();
    await gw.stop();
    await upA.close();
    await upB.close();
  }
  assert.deepEqual(failures.slice(0, 5), []);
  assert.ok(seen.A > 50 && seen.B > 50, `too little traffic to judge: ${JSON.stringify(seen)}`);
});

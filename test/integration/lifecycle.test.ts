import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { request } from 'node:http';
import { startGateway, writeConfig } from '../helpers/gateway.js';
import { startUpstream } from '../helpers/upstream.js';
import { until } from '../helpers/gateway-state.js';

const BIN = fileURLToPath(new URL('../../../bin/nanogate.js', import.meta.url));

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('SIGTERM stops accepting, lets the in-flight request finish, and exits 0', async () => {
  // The upstream holds its answer until the test has seen the gateway stop accepting: no guess at how long
  // the start, the request or the drain take.
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let arrived = false;
  const up = await startUpstream((req, res) => {
    if (req.url !== '/x') return res.end('probe'); // the polls below must not wait on the release themselves
    arrived = true;
    void released.then(() => res.end('slow-done'));
  });
  const file = writeConfig(`
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
workers: 2
upstreams: { slow: { nodes: [{ url: ${up.url} }] } }
routes: [{ name: all, match: { prefix: / }, upstream: slow }]
`);
  const child = spawn(process.execPath, [BIN, 'start', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start: ${out}`)), 15000);
    child.stdout.on('data', () => {
      const m = out.match(/"port":(\d+),"admin"/);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
  });
  const inflight = get(`http://127.0.0.1:${port}/x`);
  await until('the request to reach the upstream', () => arrived, 15_000);
  child.kill('SIGTERM');
  await until('the draining gateway to refuse new connections', () => get(`http://127.0.0.1:${port}/probe`).then(() => false, (err: Error) => /ECONNREFUSED/.test(err.message)), 15_000);
  release();
  const res = await inflight;
  assert.equal(res.status, 200);
  assert.equal(res.body, 'slow-done');
  const [code] = await once(child, 'exit');
  assert.equal(code, 0);
  await assert.rejects(get(`http://127.0.0.1:${port}/x`), /ECONNREFUSED/);
  assert.match(out, /nanogate stopped/);
  await up.close();
});

test('a crashed worker is restarted while the other keeps serving', async () => {
  const up = await startUpstream((_req, res) => res.end('ok'));
  const gw = await startGateway(`upstreams: { a: { nodes: [{ url: ${up.url} }] } }\nroutes: [{ name: all, match: { prefix: / }, upstream: a }]`, {
    workers: 2,
    faultInjection: true,
  });
  try {
    const crash = await fetch(`${gw.adminUrl}/_fault/crash-worker?index=0`, { method: 'POST' });
    assert.equal(crash.status, 202);
    // While worker 0 is down and coming back, fresh connections are served (by worker 1, then by both).
    let ok = 0;
    for (let i = 0; i < 40; i++) {
      const r = await get(`${gw.url}/x`).catch(() => null);
      if (r?.status === 200) ok++;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(ok >= 38, `only ${ok}/40 requests succeeded during the restart`);
    // The supervisor brought worker 0 back.
    let status: any;
    await until('worker 0 to be back', async () => {
      status = await (await fetch(`${gw.adminUrl}/status`)).json();
      return status.workers[0].listening && status.workers[0].restarts >= 1;
    }, 20_000, 50);
    assert.equal(status.workers[0].restarts, 1);
    assert.equal(status.workers[0].listening, true);
    assert.equal((await fetch(`${gw.adminUrl}/ready`)).status, 200);
  } finally {
    await gw.stop();
    await up.close();
  }
});

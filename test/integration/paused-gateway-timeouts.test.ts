import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { createServer as createH2Server, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { closeAll } from '../helpers/http.js';
import { eventually } from '../helpers/admin.js';

// Chaos: the gateway process is stopped (SIGSTOP) for longer than its upstream timeouts while requests are in flight,
// as a long GC pause, a CPU-heavy request or a VM's stolen time would hold it. The upstream answers at once, and its
// answers wait in the socket buffers. When the gateway runs again, a timeout must not be declared for a response or
// a connection that was there all along: that turned every such request into a 504 and, with outlier detection's
// default of one gateway failure, ejected the healthy node. Both upstream clients: HTTP/1.1 (/) and h2c (/h2).

const PAUSES = 6;
const TIMEOUT_MS = 100;
const PAUSE_MS = 300;
let up: TestUpstream;
let h2: Http2Server;
let gw: GatewayProcess;

/** The gateway's config with these upstream timeouts (ms). */
const config = (timeoutMs: number) => `
upstreams:
  app:
    nodes: [{ url: ${up.url} }]
    connectTimeoutMs: ${timeoutMs}
    readTimeoutMs: ${timeoutMs}
  app2:
    protocol: h2c
    nodes: [{ url: http://127.0.0.1:${(h2.address() as AddressInfo).port} }]
    connectTimeoutMs: ${timeoutMs}
    readTimeoutMs: ${timeoutMs}
routes:
  - { name: h2, match: { prefix: /h2 }, upstream: app2 }
  - { name: all, match: { prefix: / }, upstream: app }
`;

before(async () => {
  up = await startUpstream((_req, res) => res.end('ok'));
  h2 = createH2Server((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', resolve));
  // generous timeouts while the gateway and this process warm up (a cold first request can take a few 100 ms on a
  // loaded machine): the tight ones come with a reload, once requests flow
  gw = await startGatewayProcess(config(10_000));
});
after(() => closeAll(() => gw?.stop(), () => up?.close(), () => new Promise((resolve) => (h2 ? h2.close(resolve) : resolve(undefined)))));

/** The status, and the problem's detail when it is not 200. */
function get(agent: Agent, path: string): Promise<{ status: number; detail: string }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port: gw.port, path, agent }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, detail: res.statusCode === 200 ? '' : text }));
      // a response cut off after its head (the gateway gave up mid-body)
      res.on('close', () => res.complete || resolve({ status: -1, detail: `${res.statusCode} cut off after ${text.length} bytes` }));
    });
    req.on('error', (err) => resolve({ status: 0, detail: err.message }));
    // an answer that never comes is a failure too, not a hung test
    req.setTimeout(5000, () => req.destroy(new Error('no answer in 5 s')));
    req.end();
  });
}

test('a paused gateway does not time out answers that arrived while it was stopped, nor eject the node', { timeout: 30_000 }, async () => {
  // keep-alive connections and fresh ones both: a new connection's connect, and a kept one's response, can each be
  // what is waiting when the pause ends
  const kept = new Agent({ keepAlive: true, maxSockets: 12 });
  const fresh = new Agent({ keepAlive: false });
  let ok = 0;
  const failed: string[] = [];
  let running = true;
  let ejectedBefore = -1;
  const loop = async (agent: Agent, path: string) => {
    while (running) {
      const r = await get(agent, path);
      if (r.status === 200) ok++;
      else failed.push(`${path}: ${r.status} ${r.detail}`);
    }
  };
  const loops: Promise<void>[] = [];
  for (const path of ['/', '/h2']) {
    for (let i = 0; i < 6; i++) loops.push(loop(kept, path));
    for (let i = 0; i < 2; i++) loops.push(loop(fresh, path));
  }
  try {
    await sleep(1000);
    writeFileSync(gw.configFile, readFileSync(gw.configFile, 'utf8').replace(/TimeoutMs: 10000/g, `TimeoutMs: ${TIMEOUT_MS}`));
    gw.child.kill('SIGHUP');
    const timeouts = async () => ((await (await fetch(`${gw.adminUrl}/config`)).json()) as { config: { upstreams: { app: { readTimeoutMs: number } } } }).config.upstreams.app.readTimeoutMs;
    assert.ok(await eventually(async () => (await timeouts()) === TIMEOUT_MS, 10_000), 'the reload to tight timeouts did not apply');
    ejectedBefore = await ejections();
    assert.ok(ok > 20 && failed.length === 0, `the warm-up: ${ok} answered, ${failed.length} failed`);
    for (let i = 0; i < PAUSES; i++) {
      await sleep(150);
      gw.child.kill('SIGSTOP');
      await sleep(PAUSE_MS);
      gw.child.kill('SIGCONT');
    }
    await sleep(200);
  } finally {
    gw.child.kill('SIGCONT');
    running = false;
    await Promise.all(loops);
    kept.destroy();
    fresh.destroy();
  }
  assert.ok(ok > 100, `only ${ok} requests got through`);
  assert.deepEqual(failed.slice(0, 5), [], `${failed.length} requests did not get 200`);
  // no node was ever ejected: outlier detection counts gateway failures, and there were none
  assert.equal(await ejections(), ejectedBefore);
});

/** nanogate_upstream_ejections_total, summed over the nodes (0 before the first). */
async function ejections(): Promise<number> {
  const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  const lines = metrics.split('\n').filter((l) => l.startsWith('nanogate_upstream_ejections_total'));
  return lines.reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

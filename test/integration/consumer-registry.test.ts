import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Gateway } from '../../src/control/gateway.js';
import { writeConfig } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

/** A real gateway whose log lines (JSON) are kept for assertions. */
async function startLogged(yaml: string, workers = 1) {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  const configFile = writeConfig(`listen: { host: 127.0.0.1, port: 0 }\nadmin: { host: 127.0.0.1, port: 0 }\n${yaml}`);
  const gateway = new Gateway({ configFile, workers, logger: pino({ level: 'debug' }, stream) });
  try {
    await gateway.start();
  } catch (err) {
    await gateway.stop(); // workers that did start must not keep the test process alive
    throw err;
  }
  return { gateway, url: `http://127.0.0.1:${gateway.port}`, lines, stop: () => gateway.stop() };
}

const doc = (consumers: { id: string; key: string }[]) => JSON.stringify({ consumers: consumers.map((c) => ({ id: c.id, keys: [{ key: c.key }] })) });

/** Writes atomically (write + rename), as deploy tools and editors do. */
function publish(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`timed out waiting for: ${what}`);
}

const statusWith = (url: string, key: string) => fetch(`${url}/r`, { headers: { 'x-api-key': key } }).then(async (r) => (await r.arrayBuffer(), r.status));

let up: TestUpstream;
/** Sized responses: these tests are about consumer tables, not about the proxy's chunked re-framing. */
const startSized = () => startUpstream((_req, res) => res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' }).end('ok'));
const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanups) await c();
  await up?.close();
});

const K1 = 'registry-key-one-0123456789';
const K2 = 'registry-key-two-0123456789';
const KC = 'config-key-0123456789abcdef';

test('a registry file is loaded at start, changes are picked up, and garbage keeps the last good table', async () => {
  up ??= await startSized();
  const dir = mkdtempSync(join(tmpdir(), 'nanogate-registry-'));
  const file = join(dir, 'consumers.json');
  writeFileSync(file, doc([{ id: 'r1', key: K1 }]));
  const gw = await startLogged(`
upstreams: { app: { nodes: [{ url: ${up.url} }] } }
consumers: [{ id: from-config, keys: [{ key: ${KC} }] }]
consumerRegistry: { file: ${file}, intervalSeconds: 0.2 }
policies: { auth: { methods: { apiKey: {} }, identityHeaders: { consumerId: x-consumer-id } } }
routes: [{ name: r, match: { prefix: /r }, upstream: app }]
`);
  cleanups.push(gw.stop);
  assert.equal(await statusWith(gw.url, K1), 200, 'registry consumers are served from the first request');
  assert.equal(await statusWith(gw.url, KC), 200, 'config consumers stay');
  const g0 = gw.gateway.consumers.generation;

  publish(file, doc([{ id: 'r2', key: K2 }]));
  await until('the new key works', async () => (await statusWith(gw.url, K2)) === 200);
  assert.equal(await statusWith(gw.url, K1), 401, 'a removed key stops working');
  assert.equal(up.received.at(-1)?.headers['x-consumer-id'], 'r2');
  assert.ok(gw.gateway.consumers.generation > g0);
  assert.equal(await statusWith(gw.url, KC), 200);

  const g1 = gw.gateway.consumers.generation;
  publish(file, '{"consumers": [ {"id": "broken", ');
  await until('the refusal is logged', () => gw.lines.some((l) => l.msg === 'consumer registry update refused; the last good copy keeps serving'));
  const line = gw.lines.find((l) => l.msg === 'consumer registry update refused; the last good copy keeps serving')!;
  assert.equal(line.level, 50);
  assert.match(String(line.reason), /not valid JSON/);
  assert.equal(await statusWith(gw.url, K2), 200, 'the last good table keeps serving');
  assert.equal(gw.gateway.consumers.generation, g1);
  assert.match(gw.gateway.consumers.status().registry!.lastError!, /not valid JSON/);

  publish(file, doc([{ id: 'dup', key: K1 }, { id: 'dup', key: K2 }]));
  await until('the invalid document is refused', () => gw.lines.filter((l) => l.msg === 'consumer registry update refused; the last good copy keeps serving').length >= 2);
  assert.equal(await statusWith(gw.url, K2), 200);

  publish(file, doc([{ id: 'r1', key: K1 }, { id: 'r2', key: K2 }]));
  await until('a fixed file is picked up', async () => (await statusWith(gw.url, K1)) === 200);
  assert.ok(gw.lines.some((l) => l.msg === 'consumer table swapped in'));
});

test('a registry URL is polled with If-None-Match; 304 changes nothing; outages and garbage keep the last good table', async () => {
  up ??= await startSized();
  const reg = { body: doc([{ id: 'u1', key: K1 }]), etag: '"v1"', status: 200, requests: 0, notModified: 0, conditional: 0 };
  const server: Server = createServer((req, res) => {
    reg.requests++;
    const inm = req.headers['if-none-match'];
    if (inm !== undefined) reg.conditional++;
    if (reg.status !== 200) {
      res.writeHead(reg.status);
      return res.end('down');
    }
    if (inm === reg.etag) {
      reg.notModified++;
      res.writeHead(304, { etag: reg.etag });
      return res.end();
    }
    res.writeHead(200, { 'content-type': 'application/json', etag: reg.etag });
    res.end(reg.body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => server.close(r)));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/consumers`;
  const gw = await startLogged(`
upstreams: { app: { nodes: [{ url: ${up.url} }] } }
consumerRegistry: { url: "${url}", intervalSeconds: 0.1, timeoutMs: 1000 }
policies: { auth: { methods: { apiKey: {} } } }
routes: [{ name: r, match: { prefix: /r }, upstream: app }]
`);
  cleanups.push(gw.stop);
  assert.equal(await statusWith(gw.url, K1), 200);
  const generation = gw.gateway.consumers.generation;
  await until('a few conditional polls answered 304', () => reg.notModified >= 3);
  assert.equal(reg.conditional, reg.notModified, 'every poll after the first is conditional');
  assert.equal(gw.gateway.consumers.generation, generation, '304 builds no new table');

  reg.body = doc([{ id: 'u2', key: K2 }]);
  reg.etag = '"v2"';
  await until('the new version is served', async () => (await statusWith(gw.url, K2)) === 200);
  assert.equal(await statusWith(gw.url, K1), 401);

  reg.status = 503;
  await until('the outage is logged', () => gw.lines.some((l) => l.msg === 'consumer registry unavailable; the last good copy keeps serving'));
  const polls = reg.requests;
  await until('more failed polls', () => reg.requests >= polls + 3);
  assert.equal(gw.lines.filter((l) => l.msg === 'consumer registry unavailable; the last good copy keeps serving' && l.level === 40).length, 1, 'one warning per outage');
  assert.equal(await statusWith(gw.url, K2), 200);

  reg.status = 200;
  reg.body = 'this is not a consumer list';
  reg.etag = '"v3"';
  await until('the garbage is refused', () => gw.lines.some((l) => l.msg === 'consumer registry update refused; the last good copy keeps serving'));
  assert.equal(await statusWith(gw.url, K2), 200);
});

test('registry swaps while the gateway is under load lose no request', async () => {
  up ??= await startSized();
  const dir = mkdtempSync(join(tmpdir(), 'nanogate-registry-'));
  const file = join(dir, 'consumers.json');
  // Every version keeps the key used by the load; the others change so that each version is a new table.
  const version = (n: number) => doc([{ id: 'steady', key: K1 }, ...Array.from({ length: 50 }, (_, i) => ({ id: `v${n}-${i}`, key: `filler-${n}-${i}-0123456789` }))]);
  writeFileSync(file, version(0));
  const gw = await startLogged(
    `
upstreams: { app: { nodes: [{ url: ${up.url} }] } }
consumerRegistry: { file: ${file}, intervalSeconds: 0.1 }
policies: { auth: { methods: { apiKey: {} } } }
routes: [{ name: r, match: { prefix: /r }, upstream: app }]
`,
    2,
  );
  cleanups.push(gw.stop);
  const g0 = gw.gateway.consumers.generation;
  let running = true;
  const swapper = (async () => {
    for (let n = 1; running; n++) {
      publish(file, version(n));
      await new Promise((r) => setTimeout(r, 60));
    }
  })();
  // At least TOTAL requests, and on until the table has been swapped three times under them (a fast machine may
  // finish TOTAL before the 100 ms poll has swapped that often); bounded by MAX either way.
  const TOTAL = 2000;
  const MAX = 20_000;
  const swapped = () => gw.gateway.consumers.generation - g0 >= 3;
  const statuses = new Map<number, number>();
  const errors: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < MAX && (next < TOTAL || !swapped())) {
      next++;
      let s: number;
      try {
        s = await statusWith(gw.url, K1);
      } catch (err) {
        s = -1;
        errors.push(String((err as { cause?: unknown }).cause ?? err));
      }
      statuses.set(s, (statuses.get(s) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  running = false;
  await swapper;
  const trouble = gw.lines.filter((l) => (l.level as number) >= 50).map((l) => l.msg);
  assert.ok(next >= TOTAL);
  assert.deepEqual([...statuses], [[200, next]], `errors: ${errors.slice(0, 3).join('; ')}; gateway: ${trouble.slice(0, 3).join('; ')}`);
  assert.ok(gw.gateway.consumers.generation - g0 >= 3, `tables swapped during the load (${gw.gateway.consumers.generation - g0})`);
});

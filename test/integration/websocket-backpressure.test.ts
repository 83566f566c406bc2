import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startWsUpstream, type WsUpstream } from '../helpers/ws-upstream.js';
import { closed, open } from '../helpers/ws-client.js';

// Slow readers on either side, heartbeats and timeouts, against a real ws upstream. Memory is bounded when the
// bytes in flight between the two ends stay bounded while one end offers far more.

const MiB = 1024 * 1024;
let up: WsUpstream;
let gw: TestGateway;
let ws: string;

before(async () => {
  up = await startWsUpstream();
  gw = await startGateway(`
upstreams:
  ws: { nodes: [{ url: ${up.url} }] }
routes:
  - { name: bulk, match: { prefix: /bulk }, upstream: ws, stripPrefix: true, websocket: { backpressureBytes: 262144, pingIntervalMs: 0 } }
  - { name: beat, match: { prefix: /beat }, upstream: ws, stripPrefix: true, websocket: { pingIntervalMs: 1000 } }
  - { name: idle, match: { prefix: /idle }, upstream: ws, stripPrefix: true, websocket: { idleTimeoutMs: 1000 } }
  - { name: short, match: { prefix: /short }, upstream: ws, stripPrefix: true, websocket: { maxLifetimeMs: 1500 } }
`);
  ws = gw.url.replace('http:', 'ws:');
});

after(async () => {
  await gw.stop();
  await up.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `value()` has not changed for `quietMs` (bounded by `maxMs`); returns the settled value. */
async function settled(value: () => number, quietMs: number, maxMs: number): Promise<number> {
  const start = Date.now();
  let last = value();
  let since = Date.now();
  while (Date.now() - start < maxMs) {
    await sleep(50);
    const v = value();
    if (v !== last) {
      last = v;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return v;
  }
  return value();
}

test('a client that does not read stops the upstream being read: bytes in flight stay bounded, and nothing is lost once it reads', async () => {
  const total = 2048; // messages of 64 KiB: 128 MiB offered
  const c = await open(`${ws}/bulk/flood/${total}`);
  c.pause(); // the client's socket is no longer read
  up.flood.sent = 0;
  up.flood.done = false;
  const sent = await settled(() => up.flood.sent, 700, 15000);
  const inFlight = sent - up.flood.buffered;
  // kernel buffers on both loopback legs (a few MiB each), plus the gateway's bound of 256 KiB and a message
  assert.ok(inFlight < 40 * MiB, `in flight ${(inFlight / MiB).toFixed(1)} MiB while the client reads nothing`);
  assert.ok(sent < total * 64 * 1024, 'the upstream could not send everything: it was not read');
  let got = 0;
  let bytes = 0;
  const all = new Promise<void>((resolve) =>
    c.on('message', (d: Buffer) => {
      got++;
      bytes += d.length;
      if (got === total) resolve();
    }),
  );
  c.resume();
  await all;
  assert.equal(bytes, total * 64 * 1024);
  c.close();
});

test('an upstream that does not read: past twice backpressureBytes the client is closed with 1013', async () => {
  const c = await open(`${ws}/bulk/stall`);
  const block = Buffer.alloc(64 * 1024, 0x61);
  let offered = 0;
  const done = closed(c, 20000);
  let open_ = true;
  void done.then(() => (open_ = false));
  while (open_ && offered < 512 * MiB) {
    if (c.bufferedAmount < MiB) {
      c.send(block);
      offered += block.length;
    } else await sleep(2);
    if (offered % (4 * MiB) === 0) await sleep(0);
  }
  const seen = await done;
  assert.equal(seen.code, 1013);
  assert.match(seen.reason, /upstream is not keeping up/);
  assert.ok(offered < 64 * MiB, `the client got ${(offered / MiB).toFixed(1)} MiB out before it was stopped`);
});

test('an upstream that does not answer pings: the client is closed with 1011', async () => {
  const c = await open(`${ws}/beat/stall`);
  const seen = await closed(c, 8000);
  assert.equal(seen.code, 1011);
  assert.match(seen.reason, /upstream heartbeat/);
});

test('a client that does not answer pings: the upstream is closed with 1001', async () => {
  const c = await open(`${ws}/beat/echo`);
  const side = up.sockets[up.sockets.length - 1];
  const got = new Promise<{ code: number; reason: string }>((r) => side.once('close', (code, reason) => r({ code, reason: reason.toString() })));
  c.pause(); // reads nothing, so it cannot answer
  const seen = await got;
  assert.equal(seen.code, 1001);
  assert.match(seen.reason, /client heartbeat/);
  c.terminate();
});

test('a client that answers pings stays connected past several intervals', async () => {
  const c = await open(`${ws}/beat/echo`);
  await sleep(3500);
  assert.equal(c.readyState, c.OPEN);
  c.close();
});

test('an idle connection is closed with 1001 on both sides', async () => {
  const c = await open(`${ws}/idle/echo`);
  const side = up.sockets[up.sockets.length - 1];
  const upClosed = new Promise<number>((r) => side.once('close', (code) => r(code)));
  const seen = await closed(c, 5000);
  assert.equal(seen.code, 1001);
  assert.match(seen.reason, /idle/);
  assert.equal(await upClosed, 1001);
});

test('a connection that reaches maxLifetimeMs is closed with 1001 even while it is busy', async () => {
  const c = await open(`${ws}/short/echo`);
  const t = setInterval(() => c.readyState === c.OPEN && c.send('tick'), 100);
  const seen = await closed(c, 6000);
  clearInterval(t);
  assert.equal(seen.code, 1001);
  assert.match(seen.reason, /lifetime/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { startGateway } from '../helpers/gateway.js';
import { startWsUpstream } from '../helpers/ws-upstream.js';
import { closed, nextMessage, open } from '../helpers/ws-client.js';

// Reload, drain, metrics and the access log, with connections open.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether a TCP connect to the port is refused (the listener is closed). */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

test('a reload keeps open connections relaying with their old settings; new connections get the new ones', async () => {
  const up = await startWsUpstream();
  const config = (limit: number) => `
upstreams:
  ws: { nodes: [{ url: ${up.url} }] }
routes:
  - { name: chat, match: { prefix: /ws }, upstream: ws, stripPrefix: true, websocket: { maxMessageBytes: ${limit} } }
`;
  const gw = await startGateway(config(4096));
  const ws = gw.url.replace('http:', 'ws:');
  try {
    const old = await open(`${ws}/ws/echo`);
    old.send('before');
    assert.equal((await nextMessage(old)).data.toString(), 'before');
    gw.rewrite(config(100));
    const r = await gw.gateway.reload();
    assert.equal(r.version, 2);
    old.send(Buffer.alloc(1000));
    assert.equal((await nextMessage(old)).data.length, 1000, 'the open connection keeps its limit of 4096');
    const fresh = await open(`${ws}/ws/echo`);
    fresh.send(Buffer.alloc(1000));
    assert.equal((await closed(fresh)).code, 1009, 'a new connection has the new limit of 100');
    old.close();
  } finally {
    await gw.stop();
    await up.close();
  }
});

test('on drain, open connections keep relaying until the drain timeout, then close with 1001 both ways', async () => {
  const up = await startWsUpstream();
  // Far longer than a round trip on a loaded machine: the message below must arrive well inside the drain.
  const drainMs = 3000;
  const gw = await startGateway(`
proxy: { drainTimeoutMs: ${drainMs} }
upstreams:
  ws: { nodes: [{ url: ${up.url} }] }
routes:
  - { name: chat, match: { prefix: /ws }, upstream: ws, stripPrefix: true, websocket: {} }
`);
  const ws = gw.url.replace('http:', 'ws:');
  try {
    const c = await open(`${ws}/ws/echo`);
    const side = up.sockets[up.sockets.length - 1];
    const upClosed = new Promise<number>((r) => side.once('close', (code) => r(code)));
    const started = Date.now();
    const stopped = gw.stop();
    // The worker closes its listener when the drain begins: wait for that, not for a fixed time.
    for (let i = 0; i < 200 && !(await refused(gw.port)); i++) await sleep(20);
    assert.ok(await refused(gw.port), 'the listener closes when the drain begins');
    c.send('still here');
    assert.equal((await nextMessage(c)).data.toString(), 'still here', 'relaying during the drain');
    const seen = await closed(c, 10000);
    assert.equal(seen.code, 1001);
    assert.match(seen.reason, /shutting down/);
    assert.ok(Date.now() - started >= drainMs - 100, 'not before the drain timeout');
    assert.equal(await upClosed, 1001);
    await stopped;
  } finally {
    await gw.stop();
    await up.close();
  }
});

test('metrics count connections, messages and bytes each way and closes by code; the access log has one line per connection', async () => {
  const up = await startWsUpstream();
  const file = join(mkdtempSync(join(tmpdir(), 'nanogate-ws-log-')), 'access.log');
  const gw = await startGateway(`
observability:
  accessLog: { destination: { type: file, path: ${file} } }
upstreams:
  ws: { nodes: [{ url: ${up.url} }] }
routes:
  - { name: chat, match: { prefix: /ws }, upstream: ws, stripPrefix: true, websocket: {}, policies: { accessLog: {} } }
`);
  const ws = gw.url.replace('http:', 'ws:');
  try {
    const c = await open(`${ws}/ws/echo`);
    for (const m of ['one', 'two', 'three']) {
      c.send(m);
      await nextMessage(c);
    }
    const scrapeOpen = gw.gateway.renderMetrics();
    assert.match(scrapeOpen, /nanogate_websocket_connections_open\{route="chat"\} 1/);
    c.close(4000, 'done');
    await closed(c);
    let text = '';
    for (let i = 0; i < 100; i++) {
      text = gw.gateway.renderMetrics();
      if (/nanogate_websocket_closes_total\{route="chat",code="other"\} 1/.test(text)) break;
      await sleep(50);
    }
    assert.match(text, /nanogate_websocket_connections_open\{route="chat"\} 0/);
    assert.match(text, /nanogate_websocket_connections_total\{route="chat"\} 1/);
    assert.match(text, /nanogate_websocket_messages_total\{route="chat",direction="client_to_upstream"\} 3/);
    assert.match(text, /nanogate_websocket_messages_total\{route="chat",direction="upstream_to_client"\} 3/);
    assert.match(text, /nanogate_websocket_bytes_total\{route="chat",direction="client_to_upstream"\} 11/);
    assert.match(text, /nanogate_websocket_closes_total\{route="chat",code="other"\} 1/);
    const c2 = await open(`${ws}/ws/echo`);
    c2.close(1000);
    await closed(c2);
    let lines: Record<string, unknown>[] = [];
    for (let i = 0; i < 100 && lines.length < 2; i++) {
      await sleep(50);
      if (existsSync(file)) lines = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    }
    assert.equal(lines.length, 2, 'one line per connection');
    const first = lines[0];
    assert.equal(first['http.response.status_code'], 101);
    assert.equal(first['nanogate.route'], 'chat');
    assert.equal(first['http.request.body.size'], 11);
    assert.equal(first['http.response.body.size'], 11);
    assert.deepEqual(first['nanogate.websocket'], { messagesIn: 3, messagesOut: 3, closeCode: 4000, closedBy: 'client' });
    assert.ok((first.duration_ms as number) > 0);
    assert.equal((lines[1]['nanogate.websocket'] as { closeCode: number }).closeCode, 1000);
  } finally {
    await gw.stop();
    await up.close();
  }
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request, type IncomingMessage } from 'node:http';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startWsUpstream, type WsUpstream } from '../helpers/ws-upstream.js';
import { closed, nextMessage, open, refused } from '../helpers/ws-client.js';

let up: WsUpstream;
let gw: TestGateway;
let ws: string;

before(async () => {
  up = await startWsUpstream();
  gw = await startGateway(`
upstreams:
  ws: { nodes: [{ url: ${up.url} }] }
  down: { nodes: [{ url: http://127.0.0.1:1 }], connectTimeoutMs: 1000 }
routes:
  - { name: chat, match: { prefix: /ws }, upstream: ws, stripPrefix: true, websocket: { maxMessageBytes: 4194304 } }
  - { name: small, match: { prefix: /small }, upstream: ws, stripPrefix: true, websocket: { maxMessageBytes: 1024 } }
  - { name: gone, match: { prefix: /gone }, upstream: down, websocket: {} }
  - { name: plain, match: { prefix: /plain }, upstream: ws, stripPrefix: true }
`);
  ws = gw.url.replace('http:', 'ws:');
});

after(async () => {
  await gw.stop();
  await up.close();
});

test('text and binary messages are relayed both ways with their type', async () => {
  const c = await open(`${ws}/ws/echo`);
  c.send('hello');
  const t = await nextMessage(c);
  assert.equal(t.data.toString(), 'hello');
  assert.equal(t.binary, false);
  const bytes = Buffer.from([0, 1, 2, 255, 254]);
  c.send(bytes);
  const b = await nextMessage(c);
  assert.deepEqual(b.data, bytes);
  assert.equal(b.binary, true);
  c.close(1000, 'done');
  assert.equal((await closed(c)).code, 1000);
});

test('a message the upstream sends before the client speaks arrives', async () => {
  const c = await open(`${ws}/ws/hello`);
  assert.equal((await nextMessage(c)).data.toString(), 'hello');
  c.close();
});

test('a 3 MiB message goes through whole, both ways', async () => {
  const c = await open(`${ws}/ws/echo`);
  const big = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = i % 251;
  c.send(big);
  const back = await nextMessage(c, 10000);
  assert.equal(back.data.length, big.length);
  assert.ok(back.data.equals(big));
  c.close();
});

test('a fragmented message is relayed as one message', async () => {
  const c = await open(`${ws}/ws/echo`);
  c.send('part one, ', { fin: false });
  c.send('part two, ', { fin: false });
  c.send('the end', { fin: true });
  assert.equal((await nextMessage(c)).data.toString(), 'part one, part two, the end');
  c.close();
});

test('the upstream sees the path after stripPrefix, the query, forwarding headers and the subprotocol it chose', async () => {
  const c = await open(`${ws}/ws/handshake?room=7`, ['none', 'chat.v2'], { 'x-custom': 'kept', cookie: 'a=1' });
  const h = JSON.parse((await nextMessage(c)).data.toString());
  assert.equal(h.url, '/handshake?room=7');
  assert.equal(h.protocol, 'chat.v2');
  assert.equal(c.protocol, 'chat.v2', 'the client is told the subprotocol the upstream chose');
  assert.equal(h.headers['x-custom'], 'kept');
  assert.equal(h.headers.cookie, 'a=1');
  assert.equal(h.headers['x-forwarded-for'], '127.0.0.1');
  assert.equal(h.headers.via, '1.1 nanogate');
  assert.ok(h.headers['x-request-id']);
  assert.deepEqual(h.headers['sec-websocket-protocol'].split(',').map((p: string) => p.trim()), ['none', 'chat.v2']);
  c.close();
});

test('a message over the route limit closes the connection with 1009, and the upstream is told too', async () => {
  const before = up.sockets.length;
  const c = await open(`${ws}/small/echo`);
  c.send(Buffer.alloc(1000));
  assert.equal((await nextMessage(c)).data.length, 1000);
  const upstreamSide = up.sockets[before];
  const upClosed = new Promise<number>((r) => upstreamSide.once('close', (code) => r(code)));
  c.send(Buffer.alloc(1025));
  const seen = await closed(c);
  assert.equal(seen.code, 1009);
  assert.match(seen.reason, /larger than 1024/);
  assert.equal(await upClosed, 1009);
});

test('an upstream message over the limit closes the client with 1009', async () => {
  const c = await open(`${ws}/small/echo`);
  up.sockets[up.sockets.length - 1].send(Buffer.alloc(2048));
  assert.equal((await closed(c)).code, 1009);
});

test('a close code and reason from the upstream reach the client', async () => {
  const c = await open(`${ws}/ws/close/4001`);
  c.send('bye please');
  const seen = await closed(c);
  assert.equal(seen.code, 4001);
  assert.equal(seen.reason, 'bye');
});

test('a close code and reason from the client reach the upstream', async () => {
  const c = await open(`${ws}/ws/echo`);
  const side = up.sockets[up.sockets.length - 1];
  const got = new Promise<{ code: number; reason: string }>((r) => side.once('close', (code, reason) => r({ code, reason: reason.toString() })));
  c.close(4321, 'client says bye');
  assert.deepEqual(await got, { code: 4321, reason: 'client says bye' });
});

test('an upstream that drops its connection without a close frame gives the client 1014', async () => {
  const c = await open(`${ws}/ws/drop`);
  c.send('x');
  const seen = await closed(c);
  assert.equal(seen.code, 1014);
});

test('an upstream that refuses the upgrade gives the client a 502 problem, not a dead socket', async () => {
  const r = await refused(`${ws}/ws/refuse/403`);
  assert.equal(r.status, 502);
  assert.equal(r.headers['content-type'], 'application/problem+json');
  const body = JSON.parse(r.body);
  assert.equal(body.code, 'NG_ERR_WS_UPSTREAM_REFUSED');
  assert.match(body.detail, /403/);
  assert.doesNotMatch(r.body, /127\.0\.0\.1/);
});

test('an upstream that is down gives the client 502 NG_ERR_UPSTREAM_CONNECT without its address', async () => {
  const r = await refused(`${ws}/gone/x`);
  assert.equal(r.status, 502);
  const body = JSON.parse(r.body);
  assert.equal(body.code, 'NG_ERR_UPSTREAM_CONNECT');
  assert.doesNotMatch(r.body, /127\.0\.0\.1:1\b/);
});

test('an unsupported WebSocket version is answered 426 with the version the gateway speaks', async () => {
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request(`${gw.url}/ws/echo`, { headers: { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '8' } }, resolve);
    req.on('error', reject);
    req.end();
  });
  assert.equal(res.statusCode, 426);
  assert.equal(res.headers['sec-websocket-version'], '13');
  let body = '';
  for await (const chunk of res) body += chunk;
  assert.equal(JSON.parse(body).code, 'NG_ERR_WS_VERSION');
});

test('a route without a websocket section still forwards an upgrade request as a plain GET, and plain GETs on websocket routes reach the HTTP path', async () => {
  const r = await refused(`${ws}/plain/echo`);
  assert.equal(r.status, 200);
  assert.equal(r.body, 'not a websocket request');
  const res = await fetch(`${gw.url}/ws/anything`);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'not a websocket request');
});

test('the demo upstream echoes WebSocket messages at /ws/echo (config/examples/websocket.yaml)', async () => {
  const { DemoUpstream } = await import('../../src/demo/upstream.js');
  const demo = new DemoUpstream();
  await demo.listen('127.0.0.1', 0);
  const g = await startGateway(`
upstreams:
  demo: { nodes: [{ url: http://127.0.0.1:${demo.port} }] }
routes:
  - { name: chat, match: { prefix: /chat }, upstream: demo, stripPrefix: true, websocket: {} }
`);
  try {
    const c = await open(`${g.url.replace('http:', 'ws:')}/chat/ws/echo`, ['chat']);
    c.send('ping from the example');
    assert.equal((await nextMessage(c)).data.toString(), 'ping from the example');
    assert.equal(c.protocol, 'chat');
    c.close();
    const r = await refused(`${g.url.replace('http:', 'ws:')}/chat/elsewhere`);
    assert.equal(r.status, 502, 'no WebSocket endpoint there: the demo answers 404, the client gets 502');
  } finally {
    await g.stop();
    await demo.close();
  }
});

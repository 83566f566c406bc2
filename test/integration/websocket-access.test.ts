import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startWsUpstream, type WsUpstream } from '../helpers/ws-upstream.js';
import { closed, nextMessage, open, refused } from '../helpers/ws-client.js';
import { signToken } from '../helpers/idp.js';

// The access phase of a WebSocket route runs on the upgrade request, before any upstream connection is made.
const SECRET = 'a-shared-secret-of-at-least-32-bytes!';
const hs = { privateKey: new TextEncoder().encode(SECRET), alg: 'HS256' };
const KEY = { alice: 'alice-0123456789abcdef', bob: 'bob-0123456789abcdef' };

let up: WsUpstream;
let gw: TestGateway;
let ws: string;

before(async () => {
  up = await startWsUpstream();
  gw = await startGateway(`
upstreams:
  ws: { nodes: [{ url: ${up.url} }] }
consumers:
  - { id: alice, keys: [{ key: ${KEY.alice} }], subscriptions: [chat] }
  - { id: bob, keys: [{ key: ${KEY.bob} }], subscriptions: [] }
routes:
  - name: chat
    match: { prefix: /chat }
    upstream: ws
    stripPrefix: true
    websocket: { maxConnectionsPerConsumer: 2 }
    policies:
      auth: { hideCredentials: true, methods: { apiKey: { header: x-api-key, query: key } } }
      authorize: { api: chat }
  - name: token
    match: { prefix: /token }
    upstream: ws
    stripPrefix: true
    websocket: { tokenSubprotocol: bearer. }
    policies:
      auth: { methods: { jwt: { keys: [{ alg: HS256, secret: "${SECRET}" }] } } }
  - name: attempts
    match: { prefix: /attempts }
    upstream: ws
    stripPrefix: true
    websocket: {}
    policies:
      rateLimit: { limits: [{ key: ip, rate: 2, per: minute }] }
  - name: chatty
    match: { prefix: /chatty }
    upstream: ws
    stripPrefix: true
    websocket: { messagesPerSecond: 5 }
  - name: crowd
    match: { prefix: /crowd }
    upstream: ws
    stripPrefix: true
    websocket: { consumerMessagesPerSecond: 4 }
    policies:
      auth: { methods: { apiKey: {} } }
`);
  ws = gw.url.replace('http:', 'ws:');
});

after(async () => {
  await gw.stop();
  await up.close();
});

test('no credentials: 401 problem with WWW-Authenticate, and no upstream connection is made', async () => {
  const before = up.handshakes.length;
  const r = await refused(`${ws}/chat/echo`);
  assert.equal(r.status, 401);
  assert.equal(JSON.parse(r.body).code, 'NG_ERR_AUTH_MISSING');
  assert.match(String(r.headers['www-authenticate']), /ApiKey/);
  assert.equal(up.handshakes.length, before);
});

test('an API key in the header or in the query opens the connection; the credential is not forwarded', async () => {
  const a = await open(`${ws}/chat/handshake`, [], { 'x-api-key': KEY.alice });
  const h = JSON.parse((await nextMessage(a)).data.toString());
  assert.equal(h.headers['x-api-key'], undefined);
  a.close();
  const b = await open(`${ws}/chat/handshake?key=${KEY.alice}&room=1`);
  const hb = JSON.parse((await nextMessage(b)).data.toString());
  assert.equal(hb.url, '/handshake?room=1');
  b.close();
});

test('a consumer without a subscription is refused 403', async () => {
  const r = await refused(`${ws}/chat/echo`, [], { 'x-api-key': KEY.bob });
  assert.equal(r.status, 403);
  assert.equal(JSON.parse(r.body).code, 'NG_ERR_AUTHZ_FORBIDDEN');
});

test('a bearer token in Sec-WebSocket-Protocol authenticates, and the token entry is not offered upstream', async () => {
  const token = await signToken({ sub: 'carol' }, hs);
  const c = await open(`${ws}/token/handshake`, ['chat.v1', `bearer.${token}`]);
  const h = JSON.parse((await nextMessage(c)).data.toString());
  assert.equal(h.headers['sec-websocket-protocol'], 'chat.v1');
  assert.equal(c.protocol, 'chat.v1');
  assert.equal(h.headers.authorization, undefined, 'the token came as a subprotocol; no Authorization is made up for the upstream');
  c.close();
  const bad = await refused(`${ws}/token/echo`, ['chat.v1', 'bearer.not-a-token']);
  assert.equal(bad.status, 401);
  assert.equal(JSON.parse(bad.body).code, 'NG_ERR_AUTH_MALFORMED');
});

test('connection attempts are rate limited by the route rateLimit policy (429 with Retry-After)', async () => {
  const a = await open(`${ws}/attempts/echo`);
  const b = await open(`${ws}/attempts/echo`);
  const r = await refused(`${ws}/attempts/echo`);
  assert.equal(r.status, 429);
  assert.equal(JSON.parse(r.body).code, 'NG_ERR_RATE_LIMITED');
  assert.ok(Number(r.headers['retry-after']) > 0);
  a.close();
  b.close();
});

test('a consumer may hold maxConnectionsPerConsumer connections; one more gets 429 until one closes', async () => {
  const a = await open(`${ws}/chat/echo`, [], { 'x-api-key': KEY.alice });
  const b = await open(`${ws}/chat/echo`, [], { 'x-api-key': KEY.alice });
  const r = await refused(`${ws}/chat/echo`, [], { 'x-api-key': KEY.alice });
  assert.equal(r.status, 429);
  assert.equal(JSON.parse(r.body).code, 'NG_ERR_WS_TOO_MANY_CONNECTIONS');
  a.close();
  await closed(a);
  // the slot comes back once the gateway has seen both sides close
  let c = null;
  for (const deadline = Date.now() + 10_000; c === null && Date.now() < deadline; ) {
    const attempt = await import('../helpers/ws-client.js').then((m) => m.connect(`${ws}/chat/echo`, [], { 'x-api-key': KEY.alice }));
    if ('status' in attempt) await new Promise((res) => setTimeout(res, 20));
    else c = attempt;
  }
  assert.ok(c, 'a connection is accepted again after one closed');
  c.close();
  b.close();
});

test('a client sending more than messagesPerSecond is closed with 1008', async () => {
  const c = await open(`${ws}/chatty/echo`);
  const done = closed(c);
  for (let i = 0; i < 20; i++) c.send(`m${i}`);
  const seen = await done;
  assert.equal(seen.code, 1008);
  assert.match(seen.reason, /messages per second/);
});

test('consumerMessagesPerSecond counts one consumer over all its connections', async () => {
  const a = await open(`${ws}/crowd/echo`, [], { 'x-api-key': KEY.alice });
  const b = await open(`${ws}/crowd/echo`, [], { 'x-api-key': KEY.alice });
  const aClosed = closed(a);
  const bClosed = closed(b);
  // 3 on each: fine per connection, 6 for the consumer is over its bucket of 4
  for (let i = 0; i < 3; i++) {
    a.send('a');
    b.send('b');
  }
  const codes = await Promise.race([aClosed, bClosed]);
  assert.equal(codes.code, 1008);
  assert.match(codes.reason, /consumer/);
  a.terminate();
  b.terminate();
});

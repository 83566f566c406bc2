import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { assertProblem, send } from '../helpers/http.js';
import { signToken } from '../helpers/idp.js';

/**
 * The request side through a real gateway to a real upstream: templated headers (headers policy), query
 * operations, request body operations and masking, gzip bodies (a zip bomb included) and every refusal, each with
 * nothing sent upstream.
 */
const SECRET = 'a-shared-secret-of-at-least-32-bytes!';
const hs = { privateKey: new TextEncoder().encode(SECRET), alg: 'HS256' };
const ISS = 'https://issuer.test';

let up: TestUpstream;
let gw: TestGateway;

before(async () => {
  up = await startUpstream((_req, res) => res.writeHead(200, { 'content-type': 'text/plain', 'x-old': 'o1' }).end('ok'));
  gw = await startGateway(`
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
routes:
  - name: templated
    match: { prefix: /t }
    upstream: app
    policies:
      auth:
        methods: { jwt: { keys: [{ alg: HS256, secret: "${SECRET}" }], issuer: ${ISS} } }
        anonymous: true
      headers:
        request:
          set: { x-consumer: "\${consumer.id}", x-caller: "\${client.ip} via \${route}" }
          add: { x-request: "\${request.id}", x-tenant-copy: "\${header.x-tenant}", x-ref: "\${query.ref}" }
          rename: { x-legacy: x-modern }
          remove: [x-debug]
        response:
          rename: { x-old: x-new }
          add: { x-served-for: "\${consumer.id}" }
      transform:
        request:
          query:
            remove: [debug]
            rename: { q: search }
            add: { caller: "\${consumer.id}", from: "\${query.ref}" }
  - name: body
    match: { prefix: /b }
    upstream: app
    policies:
      transform:
        request:
          body:
            maxBytes: 4096
            gzip: true
            maxDecompressedBytes: 65536
            operations:
              - remove: [debug]
              - rename: { from: user, to: account.user }
              - set: { path: source, value: gateway }
            mask: { detect: [card], keys: [password] }
  - name: bomb
    match: { prefix: /z }
    upstream: app
    policies:
      transform:
        request: { body: { gzip: true, maxBytes: 262144, maxDecompressedBytes: 1048576, operations: [{ remove: [x] }] } }
  - name: strict
    match: { prefix: /s }
    upstream: app
    policies:
      transform:
        request: { body: { operations: [{ remove: [x] }] } }
`);
});
after(async () => {
  await gw.stop();
  await up.close();
});

const last = () => up.received.at(-1)!;

test('headers: templates fill in the consumer, request id, client address, route and request headers', async () => {
  const token = await signToken({ sub: 'ada', iss: ISS }, hs);
  const r = await send(gw.port, { path: '/t/x', headers: { authorization: `Bearer ${token}`, 'x-tenant': 'acme', 'x-legacy': 'L', 'x-debug': '1', 'x-consumer': 'forged' } });
  assert.equal(r.status, 200);
  const h = last().headers;
  assert.equal(h['x-consumer'], 'ada', 'set replaces what the client sent');
  assert.equal(h['x-caller'], '127.0.0.1 via templated');
  assert.equal(h['x-request'], r.headers['x-request-id']);
  assert.equal(h['x-tenant-copy'], 'acme');
  assert.equal(h['x-modern'], 'L');
  assert.equal(h['x-legacy'], undefined);
  assert.equal(h['x-debug'], undefined);
  // response: the upstream's x-old moved to x-new; an added header with the consumer
  assert.equal(r.headers['x-old'], undefined);
  assert.equal(r.headers['x-new'], 'o1');
  assert.equal(r.headers['x-served-for'], 'ada');
  // without a consumer the variable is empty
  await send(gw.port, { path: '/t/y' });
  assert.equal(last().headers['x-consumer'], '');
});

test('query: remove, rename (every value), add with templates, all percent-encoded', async () => {
  const token = await signToken({ sub: 'ada', iss: ISS }, hs);
  await send(gw.port, { path: '/t/q?debug=1&q=a%20b&keep=1&q=c&ref=x%26y', headers: { authorization: `Bearer ${token}` } });
  const url = new URL(last().url, 'http://x');
  assert.equal(url.searchParams.get('debug'), null);
  assert.deepEqual(url.searchParams.getAll('search'), ['a b', 'c']);
  assert.equal(url.searchParams.get('q'), null);
  assert.equal(url.searchParams.get('keep'), '1');
  assert.equal(url.searchParams.get('caller'), 'ada');
  assert.equal(url.searchParams.get('from'), 'x&y');
});

test('a query value with CR LF put into a header template cannot add a header line', async () => {
  const before = up.received.length;
  await send(gw.port, { path: '/t/i?ref=a%0d%0ax-injected:%201', headers: { 'x-tenant': 't' } });
  assert.equal(up.received.length, before + 1);
  assert.equal(last().headers['x-injected'], undefined);
  assert.equal(last().headers['x-ref'], 'a  x-injected: 1');
  assert.equal(new URL(last().url, 'http://x').searchParams.get('from'), 'a  x-injected: 1');
});

test('JSON request bodies: operations and masking, forwarded with the new Content-Length', async () => {
  const body = JSON.stringify({ user: 'ada', debug: true, card: '4111111111111111', password: 'p', notCard: '4111111111111112' });
  const r = await send(gw.port, { method: 'POST', path: '/b/1', headers: { 'content-type': 'application/json' }, body });
  assert.equal(r.status, 200);
  const seen = last();
  assert.deepEqual(JSON.parse(seen.body.toString()), { card: '[redacted]', password: '[redacted]', notCard: '4111111111111112', account: { user: 'ada' }, source: 'gateway' });
  assert.equal(Number(seen.headers['content-length']), seen.body.length);
});

test('a chunked request body is held, transformed and forwarded with a Content-Length', async () => {
  const r = await send(gw.port, { method: 'POST', path: '/b/2', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, body: '{"debug":1,"a":2}' });
  assert.equal(r.status, 200);
  assert.equal(last().body.toString(), '{"a":2,"source":"gateway"}');
  assert.equal(last().headers['transfer-encoding'], undefined);
  assert.equal(Number(last().headers['content-length']), last().body.length);
});

test('non-JSON bodies pass as they are', async () => {
  await send(gw.port, { method: 'POST', path: '/b/3', headers: { 'content-type': 'application/octet-stream' }, body: '{"debug":1}' });
  assert.equal(last().body.toString(), '{"debug":1}');
});

test('malformed client JSON is a 400, too large a 413; nothing reaches the upstream', async () => {
  const before = up.received.length;
  assertProblem(await send(gw.port, { method: 'POST', path: '/b/4', headers: { 'content-type': 'application/json' }, body: '{"user":' }), 400, 'NG_ERR_TRANSFORM_BAD_JSON');
  assertProblem(await send(gw.port, { method: 'POST', path: '/b/5', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pad: 'x'.repeat(5000) }) }), 413, 'NG_ERR_TRANSFORM_BODY_TOO_LARGE');
  assertProblem(
    await send(gw.port, { method: 'POST', path: '/b/6', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, body: JSON.stringify({ pad: 'x'.repeat(5000) }) }),
    413,
    'NG_ERR_TRANSFORM_BODY_TOO_LARGE',
  );
  assert.equal(up.received.length, before);
  assert.equal((await send(gw.port, { method: 'POST', path: '/b/7', headers: { 'content-type': 'application/json' }, body: '{}' })).status, 200);
});

test('gzip request bodies are decoded, transformed and sent on decoded', async () => {
  const body = gzipSync(JSON.stringify({ debug: 1, card: '4111 1111 1111 1111' }));
  const r = await send(gw.port, { method: 'POST', path: '/b/8', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body });
  assert.equal(r.status, 200);
  assert.equal(last().headers['content-encoding'], undefined);
  assert.deepEqual(JSON.parse(last().body.toString()), { card: '[redacted]', source: 'gateway' });
});

test('a zip bomb stops at the decoded bound with 413; corrupt gzip and other codings are refused', async () => {
  const before = up.received.length;
  // 64 KiB of gzip that would inflate to 64 MiB
  const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024, 32), { level: 9 });
  assert.ok(bomb.length < 128 * 1024);
  const r = await send(gw.port, { method: 'POST', path: '/z/9', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: bomb });
  assertProblem(r, 413, 'NG_ERR_TRANSFORM_BODY_TOO_LARGE');
  assertProblem(await send(gw.port, { method: 'POST', path: '/b/10', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: 'not gzip at all' }), 415, 'NG_ERR_TRANSFORM_BAD_ENCODING');
  assertProblem(await send(gw.port, { method: 'POST', path: '/b/11', headers: { 'content-type': 'application/json', 'content-encoding': 'br' }, body: 'x' }), 415, 'NG_ERR_TRANSFORM_BAD_ENCODING');
  // a route that does not decode gzip refuses it rather than forwarding it untransformed
  assertProblem(await send(gw.port, { method: 'POST', path: '/s/1', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: gzipSync('{"x":1}') }), 415, 'NG_ERR_TRANSFORM_BAD_ENCODING');
  assert.equal(up.received.length, before);
  assert.equal((await send(gw.port, { method: 'POST', path: '/s/2', headers: { 'content-type': 'application/json' }, body: '{"x":1,"y":2}' })).status, 200);
  assert.equal(last().body.toString(), '{"y":2}');
});

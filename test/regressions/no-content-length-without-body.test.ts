import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { rawRequest } from '../helpers/raw.js';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * uWS 20.30 turns endWithoutBody(undefined) into "Content-Length: 9223372036854775808". Responses without a body
 * and without a known length (a 204 preflight answer, an upstream 204 or 304, HEAD of a chunked resource) must
 * carry no Content-Length at all (RFC 9110 8.6 forbids it on 204).
 */

let up: TestUpstream;
let gw: TestGateway;

before(async () => {
  up = await startUpstream((req, res) => {
    if (req.url === '/204') res.writeHead(204).end();
    else if (req.url === '/304') res.writeHead(304, { etag: '"v1"' }).end();
    else {
      res.writeHead(200, { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' });
      res.end(req.method === 'HEAD' ? undefined : 'chunked body');
    }
  });
  gw = await startGateway(`
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
routes:
  - { name: r, match: { prefix: / }, upstream: app, policies: { cors: { origins: ["https://app.example.com"] } } }
`);
});
after(async () => {
  await gw.stop();
  await up.close();
});

const head = (method: string, path: string, extra = '') => `${method} ${path} HTTP/1.1\r\nhost: x\r\n${extra}\r\n`;

test('a gateway-answered 204 (CORS preflight) has no Content-Length', async () => {
  const r = await rawRequest(gw.port, head('OPTIONS', '/x', 'origin: https://app.example.com\r\naccess-control-request-method: GET\r\n'), 300);
  assert.equal(r.status, 204);
  assert.equal(r.headers['content-length'], undefined, r.text);
});

test('upstream 204 and 304 answers pass without a Content-Length', async () => {
  const a = await rawRequest(gw.port, head('GET', '/204'), 300);
  assert.equal(a.status, 204);
  assert.equal(a.headers['content-length'], undefined, a.text);
  const b = await rawRequest(gw.port, head('GET', '/304', 'if-none-match: "v1"\r\n'), 300);
  assert.equal(b.status, 304);
  assert.equal(b.headers['content-length'], undefined, b.text);
  assert.equal(b.headers['etag'], '"v1"');
});

test('HEAD of a resource of unknown length has no invented Content-Length', async () => {
  const r = await rawRequest(gw.port, head('HEAD', '/chunked'), 300);
  assert.equal(r.status, 200);
  assert.ok(r.headers['content-length'] === undefined || r.headers['content-length'] !== '9223372036854775808', r.text);
  assert.equal(r.body, '');
});

test('after a bodiless answer the same connection serves the next request', async () => {
  const socket = connect(gw.port, '127.0.0.1');
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => (text += d));
  const until = async (re: RegExp) => {
    for (let i = 0; i < 200 && !re.test(text); i++) await sleep(10);
  };
  socket.write(head('GET', '/204'));
  await until(/\r\n\r\n/);
  assert.match(text, /^HTTP\/1\.1 204/);
  socket.write(head('GET', '/chunked'));
  await until(/chunked body/);
  socket.destroy();
  assert.match(text, /chunked body/, 'a bogus Content-Length would have swallowed the second response');
});

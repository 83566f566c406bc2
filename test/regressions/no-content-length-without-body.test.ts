import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { RawClient, type ParsedResponse } from '../helpers/raw-client.js';

/**
 * uWS 20.30 turns endWithoutBody(undefined) into "Content-Length: 9223372036854775808". Responses without a body
 * and without a known length (a 204 preflight answer, an upstream 204 or 304, HEAD of a chunked resource) must
 * carry no Content-Length at all (RFC 9110 8.6 forbids it on 204, and on a HEAD answer allows only the length a GET
 * would have had, which the gateway does not know for a chunked resource).
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

/** One request on a fresh connection, read with strict framing (waits for the response, not for a silence). */
async function exchange(bytes: string, opts: { noBody?: boolean } = {}): Promise<ParsedResponse> {
  const c = await RawClient.connect(gw.port);
  try {
    c.send(bytes);
    return await c.readResponse(opts);
  } finally {
    c.close();
  }
}

test('a gateway-answered 204 (CORS preflight) has no Content-Length', async () => {
  const r = await exchange(head('OPTIONS', '/x', 'origin: https://app.example.com\r\naccess-control-request-method: GET\r\n'));
  assert.equal(r.status, 204);
  assert.equal(r.fields.get('content-length'), undefined, r.raw);
});

test('upstream 204 and 304 answers pass without a Content-Length', async () => {
  const a = await exchange(head('GET', '/204'));
  assert.equal(a.status, 204);
  assert.equal(a.fields.get('content-length'), undefined, a.raw);
  const b = await exchange(head('GET', '/304', 'if-none-match: "v1"\r\n'));
  assert.equal(b.status, 304);
  assert.equal(b.fields.get('content-length'), undefined, b.raw);
  assert.equal(b.headers['etag'], '"v1"');
});

test('HEAD of a resource of unknown length has no invented Content-Length', async () => {
  // RFC 9110 8.6: a HEAD answer may carry Content-Length only with the length the GET body would have; the upstream
  // sends that body chunked, so the gateway knows no length and must send none (not a guess, not 0)
  const c = await RawClient.connect(gw.port);
  try {
    c.send(head('HEAD', '/chunked'));
    const r = await c.readResponse({ noBody: true });
    assert.equal(r.status, 200);
    assert.equal(r.fields.get('content-length'), undefined, r.raw);
    // and no body bytes follow the head: the next response on the connection starts clean
    c.send(head('GET', '/chunked'));
    const next = await c.readResponse();
    assert.equal(next.status, 200, next.raw);
    assert.equal(next.body, 'chunked body');
  } finally {
    c.close();
  }
});

test('after a bodiless answer the same connection serves the next request', async () => {
  const c = await RawClient.connect(gw.port);
  try {
    c.send(head('GET', '/204'));
    const first = await c.readResponse();
    assert.equal(first.status, 204);
    c.send(head('GET', '/chunked'));
    const second = await c.readResponse();
    assert.equal(second.status, 200, second.raw);
    assert.equal(second.body, 'chunked body');
  } finally {
    c.close();
  }
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startRawUpstream } from '../helpers/upstream.js';
import { closeAll, send } from '../helpers/http.js';

/**
 * Every Proxy-* response field is hop-by-hop and dropped, but a field named exactly "Proxy-" (the prefix alone,
 * six characters) slipped past the length check and was forwarded to the client.
 */

const T = { timeout: 30_000 };
let up: Awaited<ReturnType<typeof startRawUpstream>>;
let gw: TestGateway;

before(async () => {
  up = await startRawUpstream((socket) => socket.write('HTTP/1.1 200 OK\r\nProxy-: hop\r\nProxy-X: hop\r\nX-Kept: 1\r\nContent-Length: 2\r\n\r\nok'));
  gw = await startGateway(`
upstreams:
  up: { nodes: [{ url: ${up.url} }] }
routes:
  - { name: r, match: { prefix: / }, upstream: up }
`);
}, T);
after(() => closeAll(() => gw?.stop(), () => up?.close()), T);

test('a response field named "Proxy-" is dropped like every Proxy-* field', T, async () => {
  const res = await send(gw.port, { path: '/' });
  assert.equal(res.status, 200);
  assert.equal(res.headers['x-kept'], '1');
  assert.deepEqual(res.rawHeaders.filter((h, k) => k % 2 === 0 && h.toLowerCase().startsWith('proxy-')), []);
});

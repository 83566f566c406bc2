import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startRawUpstream } from '../helpers/upstream.js';
import { rawRequest } from '../helpers/raw.js';

/**
 * Response field values with bytes >= 0x80 (obs-text, or UTF-8 a server chose to send) reach the client as the
 * upstream sent them. They were once decoded as latin1 and handed to uWS as strings, which re-encoded every such
 * byte as two bytes of UTF-8 ("café" arrived as "cafÃ©"). Checked on the plain path and on a route whose
 * policies edit response headers (a different write path).
 */

const UTF8_NAME = Buffer.from('café', 'utf8'); // 63 61 66 c3 a9
const LATIN1_BYTE = Buffer.from([0x61, 0xe9, 0x62]); // "a", 0xe9, "b": not UTF-8 at all

let upstream: Awaited<ReturnType<typeof startRawUpstream>>;
let gw: TestGateway;

before(async () => {
  upstream = await startRawUpstream((socket) => {
    socket.write(
      Buffer.concat([
        Buffer.from('HTTP/1.1 200 OK\r\nX-Name: '),
        UTF8_NAME,
        Buffer.from('\r\nX-Raw: '),
        LATIN1_BYTE,
        Buffer.from('\r\nX-Drop: gone\r\nContent-Length: 2\r\n\r\nok'),
      ]),
    );
  });
  gw = await startGateway(`
upstreams:
  raw: { nodes: [{ url: ${upstream.url} }] }
routes:
  - { name: edited, match: { prefix: /edited }, upstream: raw, policies: { headers: { response: { remove: [x-drop] } } } }
  - { name: plain, match: { prefix: / }, upstream: raw }
`);
});

after(async () => {
  await gw.stop();
  await upstream.close();
});

for (const path of ['/plain', '/edited']) {
  test(`bytes >= 0x80 in response field values pass unchanged (${path})`, async () => {
    const res = await rawRequest(gw.port, `GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`);
    assert.equal(res.status, 200);
    const bytes = Buffer.from(res.text, 'latin1');
    assert.ok(bytes.includes(Buffer.concat([Buffer.from('X-Name: '), UTF8_NAME, Buffer.from('\r\n')])), res.text);
    assert.ok(bytes.includes(Buffer.concat([Buffer.from('X-Raw: '), LATIN1_BYTE, Buffer.from('\r\n')])), res.text);
    assert.equal(res.body, 'ok');
    if (path === '/edited') assert.ok(!res.text.toLowerCase().includes('x-drop'), 'the policy still removes fields');
  });
}

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { rawRequest } from '../helpers/raw.js';

/**
 * uWS wrote "uWebSockets: 20" into every response (a server fingerprint), and a headers policy could not remove it
 * because uWS adds it after the handler's own fields. Each worker thread now turns it off for its event loop; the
 * requests below reach both workers (on fresh connections) and cover a proxied response, a policy-edited one, a
 * HEAD, and a problem+json error written by the gateway itself.
 */

let upstream: TestUpstream;
let gw: TestGateway;

before(async () => {
  upstream = await startUpstream();
  gw = await startGateway(
    `
upstreams:
  app: { nodes: [{ url: ${upstream.url} }] }
routes:
  - { name: edited, match: { prefix: /edited }, upstream: app, policies: { headers: { response: { remove: [uwebsockets] } } } }
  - { name: plain, match: { prefix: /plain }, upstream: app }
`,
    { workers: 2 },
  );
});

after(async () => {
  await gw.stop();
  await upstream.close();
});

const requests = [
  'GET /plain HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n',
  'GET /edited HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n',
  'HEAD /plain HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n',
  'GET /no-such-route HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n',
];

test('no response carries the uWebSockets fingerprint header, from any worker', async () => {
  const statuses = new Set<number>();
  // New connections until both workers have answered (the kernel spreads them), bounded in count.
  for (let round = 0; round < 50; round++) {
    for (const bytes of requests) {
      const res = await rawRequest(gw.port, bytes);
      assert.ok(res.status > 0, `an answer to ${JSON.stringify(bytes)}`);
      statuses.add(res.status);
      assert.ok(!/^uwebsockets:/im.test(res.text.split('\r\n\r\n')[0]), `fingerprint in:\n${res.text}`);
    }
    const workers = (gw.gateway.status().workers as Array<{ requests: number }>).map((w) => w.requests);
    if (round >= 1 && workers.every((n) => n > 0)) break;
  }
  const served = (gw.gateway.status().workers as Array<{ requests: number }>).filter((w) => w.requests > 0).length;
  assert.equal(served, 2, 'both workers answered');
  assert.ok(statuses.has(200) && statuses.has(404), `statuses seen: ${[...statuses].join(', ')}`);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocketServer } from 'ws';
import { startGateway } from '../helpers/gateway.js';
import { nextMessage, open, refused } from '../helpers/ws-client.js';

// An https:// node is reached over wss://, with its certificate checked as for HTTP upstreams.

test('a wss upstream: an untrusted certificate is refused with 502; with checks off (NANOGATE_UPSTREAM_TLS_INSECURE=1) messages relay', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nanogate-wss-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  const server = createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) });
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  const seen: string[] = [];
  wss.on('connection', (ws, req) => {
    seen.push(String(req.headers['x-forwarded-proto']));
    ws.on('message', (d, b) => ws.send(d, { binary: b }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const yaml = `
upstreams:
  secure: { nodes: [{ url: https://127.0.0.1:${port} }] }
routes:
  - { name: secure, match: { prefix: /s }, upstream: secure, stripPrefix: true, websocket: {} }
`;
  const strict = await startGateway(yaml);
  try {
    const r = await refused(`${strict.url.replace('http:', 'ws:')}/s/echo`);
    assert.equal(r.status, 502);
    assert.equal(JSON.parse(r.body).code, 'NG_ERR_UPSTREAM_CONNECT');
    assert.equal(seen.length, 0);
  } finally {
    await strict.stop();
  }
  process.env.NANOGATE_UPSTREAM_TLS_INSECURE = '1';
  const lax = await startGateway(yaml);
  try {
    const c = await open(`${lax.url.replace('http:', 'ws:')}/s/echo`);
    c.send('over tls');
    assert.equal((await nextMessage(c)).data.toString(), 'over tls');
    assert.deepEqual(seen, ['http'], 'the client spoke plain ws to the gateway');
    c.close();
  } finally {
    delete process.env.NANOGATE_UPSTREAM_TLS_INSECURE;
    await lax.stop();
    for (const ws of wss.clients) ws.terminate();
    await new Promise((r) => server.close(r));
  }
});

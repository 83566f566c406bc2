import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import http2 from 'node:http2';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import pino from 'pino';
import { Gateway } from '../../src/control/gateway.js';
import { compileConfig } from '../../src/config/compile.js';
import { loadConfigText } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/errors.js';
import { makeCa, makeLeaf, type TestCa } from '../helpers/certs.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

/**
 * Client certificates on the node:http2 listener (listen.http2.clientCertificates): verified against the CA bundle,
 * optional or required per SNI name, bound to consumers by fingerprint, subject or SAN (the auth policy's clientCert
 * method), and passed upstream in configured headers that a client can never set itself. Certificates made by
 * openssl here; a real gateway, a real upstream, node:http2 and node:https clients.
 */

let dir: string;
let ca: TestCa;
let other: TestCa;
let upstream: TestUpstream;
let gw: Gateway;
let strict: Gateway;
let aliceSha = '';
type Pair = { cert: Buffer; key: Buffer };
const client: Record<string, Pair> = {};

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nanogate-mtls-'));
  ca = makeCa(dir, 'clients-ca');
  other = makeCa(dir, 'other-ca');
  makeLeaf(dir, 'server', ca, ['localhost', 'secure.localhost']);
  for (const [name, signer] of [['alice', ca], ['bob', ca], ['carol', ca], ['dave', ca], ['mallory', other]] as const) {
    const p = makeLeaf(dir, name, signer, [`${name}.client`], { clientAuth: true });
    client[name] = { cert: readFileSync(p.cert), key: readFileSync(p.key) };
  }
  aliceSha = new X509Certificate(client.alice.cert).fingerprint256;
  upstream = await startUpstream();
  const routes = `
upstreams:
  app: { nodes: [{ url: ${upstream.url} }] }
consumers:
  - { id: alice, certificates: [{ sha256: "${aliceSha}" }] }
  - { id: carol, certificates: [{ san: "DNS:carol.client" }] }
  - { id: dave, certificates: [{ subject: "CN=dave.client" }] }
routes:
  - name: private
    match: { path: /private }
    upstream: app
    policies:
      auth: { methods: { clientCert: {} }, identityHeaders: { consumerId: x-consumer-id } }
  - { name: open, match: { path: /* }, upstream: app }
`;
  const tls = `tls: { cert: ${join(dir, 'server.pem')}, key: ${join(dir, 'server-key.pem')} }`;
  gw = await start(`
listen:
  host: 127.0.0.1
  port: 0
  ${tls}
  http2:
    port: 0
    clientCertificates:
      ca: ${ca.cert}
      mode: optional
      hosts: [{ hostnames: [secure.localhost], mode: required }]
      headers: { subject: x-client-cert-subject, sha256: x-client-cert-sha256, san: x-client-cert-san }
${routes}`);
  strict = await start(`
listen:
  host: 127.0.0.1
  port: 0
  ${tls}
  http2: { port: 0, clientCertificates: { ca: ${ca.cert} } }
${routes}`);
});

after(async () => {
  await gw?.stop();
  await strict?.stop();
  await upstream?.close();
});

async function start(yaml: string): Promise<Gateway> {
  const file = join(dir, `gw-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, `admin: { host: 127.0.0.1, port: 0 }\n${yaml}`);
  const g = new Gateway({ configFile: file, workers: 1, logger: pino({ level: process.env.NANOGATE_TEST_LOG ?? 'silent' }) });
  await g.start();
  return g;
}

interface Outcome {
  /** the HTTP status, or "refused" when the connection was closed or the handshake failed before an answer */
  status: number | 'refused';
  body: string;
}

/** one HTTP/2 request on a connection of its own, with `who`'s certificate (none: no certificate) */
function h2(g: Gateway, path: string, who: string | null, headers: Record<string, string> = {}, servername = 'localhost'): Promise<Outcome> {
  return new Promise((resolve) => {
    const creds = who === null ? {} : { cert: client[who].cert, key: client[who].key };
    const s = http2.connect(`https://127.0.0.1:${g.http2Port}`, { ca: readFileSync(ca.cert), servername, ...creds });
    let done = false;
    const finish = (o: Outcome) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve(o);
    };
    s.on('error', () => finish({ status: 'refused', body: '' }));
    s.on('close', () => finish({ status: 'refused', body: '' }));
    const st = s.request({ ':path': path, ...headers });
    let status = 0;
    let body = '';
    st.on('response', (h) => (status = Number(h[':status'])));
    st.on('data', (c) => (body += c));
    // a stream that ends without a response head: the connection was cut under it
    st.on('end', () => finish(status === 0 ? { status: 'refused', body: '' } : { status, body }));
    st.on('error', () => finish({ status: 'refused', body: '' }));
    st.end();
  });
}

const seen = (o: Outcome) => JSON.parse(o.body).headers as Record<string, string | undefined>;

test('optional name without a certificate: served, without certificate headers, and a client-sent copy is removed', async () => {
  const o = await h2(gw, '/open', null, { 'x-client-cert-subject': 'CN=admin', 'x-client-cert-sha256': 'f'.repeat(64) });
  assert.equal(o.status, 200);
  const h = seen(o);
  assert.equal(h['x-client-cert-subject'], undefined);
  assert.equal(h['x-client-cert-sha256'], undefined);
});

test('optional name without a certificate on a route that authenticates by certificate: 401 NG_ERR_AUTH_MISSING', async () => {
  const o = await h2(gw, '/private', null);
  assert.equal(o.status, 401);
  assert.equal(JSON.parse(o.body).code, 'NG_ERR_AUTH_MISSING');
});

test('a certificate bound by fingerprint identifies its consumer; the verified values replace spoofed ones upstream', async () => {
  const o = await h2(gw, '/private', 'alice', { 'x-client-cert-sha256': 'f'.repeat(64), 'x-consumer-id': 'root' });
  assert.equal(o.status, 200);
  const h = seen(o);
  assert.equal(h['x-consumer-id'], 'alice');
  assert.equal(h['x-client-cert-sha256'], aliceSha.replace(/:/g, '').toLowerCase());
  assert.equal(h['x-client-cert-subject'], 'CN=alice.client');
  assert.equal(h['x-client-cert-san'], 'DNS:alice.client, IP Address:127.0.0.1');
});

test('bindings by SAN and by subject identify their consumers', async () => {
  assert.equal(seen(await h2(gw, '/private', 'carol'))['x-consumer-id'], 'carol');
  assert.equal(seen(await h2(gw, '/private', 'dave'))['x-consumer-id'], 'dave');
});

test('a valid certificate bound to no consumer: 401 on the authenticated route, served with its headers elsewhere', async () => {
  const o = await h2(gw, '/private', 'bob');
  assert.equal(o.status, 401);
  assert.equal(JSON.parse(o.body).code, 'NG_ERR_AUTH_UNKNOWN_CONSUMER');
  const open = await h2(gw, '/open', 'bob');
  assert.equal(open.status, 200);
  assert.equal(seen(open)['x-client-cert-subject'], 'CN=bob.client');
});

test('a certificate from another CA is refused, also where certificates are optional', async () => {
  assert.equal((await h2(gw, '/open', 'mallory')).status, 'refused');
});

test('a name whose mode is required refuses a connection without a certificate, and serves one with it', async () => {
  assert.equal((await h2(gw, '/open', null, {}, 'secure.localhost')).status, 'refused');
  assert.equal((await h2(gw, '/open', 'alice', {}, 'secure.localhost')).status, 200);
});

test('every name required: the handshake itself refuses a client without a certificate or with a foreign one', async () => {
  assert.equal((await h2(strict, '/open', null)).status, 'refused');
  assert.equal((await h2(strict, '/open', 'mallory')).status, 'refused');
  const o = await h2(strict, '/private', 'alice');
  assert.equal(o.status, 200);
  assert.equal(seen(o)['x-consumer-id'], 'alice');
  // default headers: subject and fingerprint
  assert.equal(seen(o)['x-client-cert-subject'], 'CN=alice.client');
});

function https(port: number, path: string, who: string | null, headers: Record<string, string> = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const creds = who === null ? {} : { cert: client[who].cert, key: client[who].key };
    const options = { host: '127.0.0.1', port, path, servername: 'localhost', ca: readFileSync(ca.cert), ALPNProtocols: ['http/1.1'], agent: false, headers, ...creds };
    const req = httpsRequest(options as RequestOptions, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', () => resolve({ status: 'refused', body: '' }));
    req.end();
  });
}

test('HTTP/1.1 on the HTTP/2 port identifies the certificate too; the uWS listener, which cannot read one, answers 401', async () => {
  const o = await https(gw.http2Port, '/private', 'alice');
  assert.equal(o.status, 200);
  assert.equal(seen(o)['x-consumer-id'], 'alice');
  const u = await https(gw.port, '/private', 'alice');
  assert.equal(u.status, 401);
});

test('the uWS listener drops client-sent certificate headers too: an upstream never sees a spoofed one', async () => {
  const u = await https(gw.port, '/open', null, { 'x-client-cert-subject': 'CN=admin', 'x-client-cert-sha256': 'f'.repeat(64), 'x-other': 'kept' });
  assert.equal(u.status, 200);
  const h = seen(u);
  assert.equal(h['x-client-cert-subject'], undefined);
  assert.equal(h['x-client-cert-sha256'], undefined);
  assert.equal(h['x-other'], 'kept');
});

test('config: a certificate bound twice, a CA bundle that cannot be read, and a reserved JWT issuer are refused with their paths', () => {
  const issues = (yaml: string) => {
    try {
      compileConfig(loadConfigText(yaml, 'test.yaml', {}), join(dir, 'test.yaml'));
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.issues.map((i) => `${i.path}: ${i.message}`).join('\n');
    }
    return '';
  };
  const base = `upstreams: { app: { nodes: [{ url: http://127.0.0.1:1 }] } }\nroutes: [{ name: a, match: { path: /* }, upstream: app }]\n`;
  const listen = (ca: string) => `listen: { port: 8443, tls: { cert: ${join(dir, 'server.pem')}, key: ${join(dir, 'server-key.pem')} }, http2: { port: 9443, clientCertificates: { ca: ${ca} } } }\n`;
  assert.match(issues(listen(ca.cert) + base + `consumers:\n  - { id: a, certificates: [{ sha256: "${aliceSha}" }] }\n  - { id: b, certificates: [{ sha256: "${aliceSha.replace(/:/g, '').toLowerCase()}" }] }\n`), /^consumers\[1\]\.certificates\[0\]: this certificate binding is already used by consumers\[0\]/m);
  assert.match(issues(listen(join(dir, 'missing.pem')) + base), /^listen\.http2\.clientCertificates\.ca: cannot read ".*missing\.pem": ENOENT/m);
  assert.match(issues(listen(ca.cert) + base + `consumers:\n  - { id: a, jwt: [{ issuer: "\\u0000cert:sha256", subject: x }] }\n`), /^consumers\[0\]\.jwt\[0\]\.issuer: an issuer may not start with U\+0000/m);
  assert.equal(issues(listen(ca.cert) + base), '');
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { connect as tlsConnect, createServer as createTlsServer, type PeerCertificate } from 'node:tls';
import { createServer as createHttpsServer, request as httpsRequest, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { Gateway } from '../../src/control/gateway.js';
import { compileConfig } from '../../src/config/compile.js';
import { loadConfigText } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/errors.js';
import { makeCa, makeLeaf, type TestCa } from '../helpers/certs.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

/**
 * TLS on the listener (SNI, protocol floor, reload without a restart, expiry gauge) and to upstreams (private CA,
 * wrong CA, verify off, client certificate), against real sockets and certificates made by openssl here.
 */

let dir: string;
let ca: TestCa;
let otherCa: TestCa;
let upstream: TestUpstream;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nanogate-tls-'));
  ca = makeCa(dir, 'test-ca');
  otherCa = makeCa(dir, 'other-ca');
  makeLeaf(dir, 'default', ca, ['default.test'], { days: 30 });
  makeLeaf(dir, 'a', ca, ['a.test']);
  makeLeaf(dir, 'b', ca, ['b.test', 'www.b.test']);
  upstream = await startUpstream((req, res) => {
    const wait = Number(new URL(req.url!, 'http://x').searchParams.get('wait') ?? 0);
    setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok'), wait);
  });
});

after(async () => {
  await upstream?.close();
});

interface Running {
  gateway: Gateway;
  port: number;
  logs: string[];
  file: string;
}

async function start(yaml: string): Promise<Running> {
  const file = join(dir, `gateway-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, `admin: { host: 127.0.0.1, port: 0 }\n${yaml}`);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const gateway = new Gateway({ configFile: file, workers: 1, logger: pino({ level: 'info' }, sink) });
  await gateway.start();
  return { gateway, port: gateway.port, logs, file };
}

const listener = (extra = '') => `
listen:
  host: 127.0.0.1
  port: 0
  tls:
    cert: ${join(dir, 'default.pem')}
    key: ${join(dir, 'default-key.pem')}
    servers:
      - { hostnames: [a.test], cert: ${join(dir, 'a.pem')}, key: ${join(dir, 'a-key.pem')} }
      - { hostnames: [b.test, www.b.test], cert: ${join(dir, 'b.pem')}, key: ${join(dir, 'b-key.pem')} }
${extra}
upstreams:
  app: { nodes: [{ url: ${upstream.url} }] }
routes:
  - { name: all, match: { path: /* }, upstream: app }
`;

/** the certificate the gateway presents for `servername` (none: no SNI), on a new connection */
function peer(port: number, servername: string | undefined): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: readFileSync(ca.cert), ...(servername ? { servername } : {}), rejectUnauthorized: false }, () => {
      const cert = s.getPeerCertificate();
      s.end();
      resolve(cert);
    });
    s.on('error', reject);
  });
}

function get(port: number, path: string, servername = 'a.test', agent: false | import('node:https').Agent = false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path, servername, ca: readFileSync(ca.cert), agent, headers: { host: servername } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('SNI picks the certificate of each host name, and the default one for an unknown name or no name', async () => {
  const g = await start(listener());
  try {
    assert.equal((await peer(g.port, 'a.test')).subject.CN, 'a.test');
    assert.equal((await peer(g.port, 'b.test')).subject.CN, 'b.test');
    assert.equal((await peer(g.port, 'www.b.test')).subject.CN, 'b.test');
    assert.equal((await peer(g.port, 'unknown.test')).subject.CN, 'default.test');
    assert.equal((await peer(g.port, undefined)).subject.CN, 'default.test');
    // and requests pass through, verified against the CA
    assert.deepEqual(await get(g.port, '/x', 'a.test'), { status: 200, body: 'ok' });
  } finally {
    await g.gateway.stop();
  }
});

test('TLS 1.1 is refused by the listener (while the same client completes a TLS 1.1 handshake elsewhere)', async () => {
  const old = { minVersion: 'TLSv1' as const, maxVersion: 'TLSv1.1' as const, ciphers: 'DEFAULT@SECLEVEL=0', rejectUnauthorized: false };
  const handshake = (port: number) =>
    new Promise<string>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port, servername: 'a.test', ...old }, () => {
        const v = s.getProtocol() ?? '?';
        s.end();
        resolve(v);
      });
      s.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`));
    });
  // control: a node:tls server that allows TLS 1.1 shows that this client really offers it
  const control = createTlsServer({ cert: readFileSync(join(dir, 'a.pem')), key: readFileSync(join(dir, 'a-key.pem')), ...old }, (s) => s.end());
  await new Promise<void>((r) => control.listen(0, '127.0.0.1', r));
  const g = await start(listener());
  try {
    assert.equal(await handshake((control.address() as AddressInfo).port), 'TLSv1.1');
    const got = await handshake(g.port);
    assert.match(got, /^error /, `the gateway accepted ${got}`);
  } finally {
    control.close();
    await g.gateway.stop();
  }
});

test('the expiry of every certificate is a gauge, and one close to expiry is warned about at load', async () => {
  makeLeaf(dir, 'short', ca, ['short.test'], { days: 3 });
  const g = await start(listener(`    expiryWarningDays: 14\n`).replace(`- { hostnames: [a.test], cert: ${join(dir, 'a.pem')}`, `- { hostnames: [short.test], cert: ${join(dir, 'short.pem')}, key: ${join(dir, 'short-key.pem')} }\n      - { hostnames: [a.test], cert: ${join(dir, 'a.pem')}`));
  try {
    const text = g.gateway.renderMetrics();
    const value = (name: string) => Number(text.match(new RegExp(`nanogate_tls_certificate_expiry_seconds\\{certificate="${name}"\\} (-?\\d+)`))?.[1]);
    const day = 86400;
    assert.ok(value('default') > 29 * day && value('default') <= 30 * day + 60, `default: ${value('default')}`);
    assert.ok(value('short.test') > 2 * day && value('short.test') <= 3 * day + 60, `short.test: ${value('short.test')}`);
    const warned = g.logs.filter((l) => l.includes('"level":40') && l.includes('expires in'));
    assert.equal(warned.length, 1, g.logs.join(''));
    assert.match(warned[0], /short\.test/);
  } finally {
    await g.gateway.stop();
  }
});

test('validate refuses a key that is not the certificate\'s, an unreadable file and a wrong passphrase, with the path', () => {
  const compile = (tls: string) => compileConfig(loadConfigText(`listen:\n  tls:\n${tls}\nupstreams: { app: { nodes: [{ url: http://127.0.0.1:1 }] } }\nroutes: [{ name: r, match: { path: /* }, upstream: app }]\n`, join(dir, 'v.yaml'), {}), join(dir, 'v.yaml'));
  const refused = (tls: string): string => {
    try {
      compile(tls);
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.message;
    }
    assert.fail('accepted');
  };
  assert.match(refused(`    cert: a.pem\n    key: b-key.pem`), /listen\.tls\.key.*is not the private key of the certificate/);
  assert.match(refused(`    cert: a.pem\n    key: missing.pem`), /listen\.tls\.key.*cannot read.*ENOENT/);
  assert.match(refused(`    cert: a-key.pem\n    key: a-key.pem`), /listen\.tls\.cert.*is not a PEM certificate/);
  assert.match(refused(`    cert: default.pem\n    key: default-key.pem\n    servers: [{ hostnames: [x.test], cert: b.pem, key: a-key.pem }]`), /listen\.tls\.servers\[0\]\.key/);
  // relative paths are read next to the config file
  assert.equal(compile(`    cert: a.pem\n    key: a-key.pem`).plan.listen.tls?.certificates[0].subject, 'CN=a.test');
});

test('a changed certificate is served to new connections without a restart, while a long request on an old connection completes', async () => {
  const live = mkdtempSync(join(dir, 'live-'));
  copyFileSync(join(dir, 'a.pem'), join(live, 'cert.pem'));
  copyFileSync(join(dir, 'a-key.pem'), join(live, 'key.pem'));
  const g = await start(`
listen:
  host: 127.0.0.1
  port: 0
  tls: { cert: ${join(live, 'cert.pem')}, key: ${join(live, 'key.pem')} }
upstreams:
  app: { nodes: [{ url: ${upstream.url} }] }
routes:
  - { name: all, match: { path: /* }, upstream: app }
`);
  try {
    const before = await peer(g.port, 'a.test');
    assert.equal(before.subject.CN, 'a.test');
    const long = get(g.port, '/slow?wait=1500', 'a.test');
    await new Promise((r) => setTimeout(r, 200));
    // a renewal as tools do it: new files written aside, then renamed over the old ones (key first, then cert)
    makeLeaf(live, 'next', ca, ['a.test']);
    renameSync(join(live, 'next-key.pem'), join(live, 'key.pem'));
    renameSync(join(live, 'next.pem'), join(live, 'cert.pem'));
    let after = before;
    for (let i = 0; i < 100 && after.serialNumber === before.serialNumber; i++) {
      await new Promise((r) => setTimeout(r, 50));
      // A connect the kernel queued on the old listen socket as it closed is reset: the SO_REUSEPORT caveat of
      // docs/tls.md, which a loaded machine (a slow accept loop) makes likelier. A client retries it; so does this.
      after = await peer(g.port, 'a.test').catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ECONNRESET') throw err;
        return before;
      });
    }
    assert.notEqual(after.serialNumber, before.serialNumber, 'a new connection gets the new certificate');
    assert.equal(after.subject.CN, 'a.test');
    assert.deepEqual(await long, { status: 200, body: 'ok' }, 'the request on the old connection completes');
    assert.deepEqual(await get(g.port, '/x', 'a.test'), { status: 200, body: 'ok' });
    assert.ok(g.logs.some((l) => l.includes('reloaded after a certificate file change')));
  } finally {
    await g.gateway.stop();
  }
});

test('a certificate change that does not match its key is refused; the previous certificate keeps serving', async () => {
  const live = mkdtempSync(join(dir, 'live-'));
  copyFileSync(join(dir, 'a.pem'), join(live, 'cert.pem'));
  copyFileSync(join(dir, 'a-key.pem'), join(live, 'key.pem'));
  const g = await start(`
listen:
  host: 127.0.0.1
  port: 0
  tls: { cert: ${join(live, 'cert.pem')}, key: ${join(live, 'key.pem')} }
upstreams:
  app: { nodes: [{ url: ${upstream.url} }] }
routes:
  - { name: all, match: { path: /* }, upstream: app }
`);
  try {
    const serial = (await peer(g.port, 'a.test')).serialNumber;
    copyFileSync(join(dir, 'b.pem'), join(live, 'cert.pem'));
    for (let i = 0; i < 100 && !g.logs.some((l) => l.includes('certificate change refused')); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(g.logs.some((l) => l.includes('certificate change refused') && l.includes('is not the private key')), g.logs.join(''));
    assert.equal((await peer(g.port, 'a.test')).serialNumber, serial);
    assert.deepEqual(await get(g.port, '/x', 'a.test'), { status: 200, body: 'ok' });
  } finally {
    await g.gateway.stop();
  }
});

// ------------------------------------------------------------------------------------------------ upstreams

async function httpsUpstream(opts: { requestCert?: boolean } = {}): Promise<{ server: HttpsServer; port: number; seen: string[] }> {
  makeLeaf(dir, 'upstream', ca, ['upstream.test']);
  const seen: string[] = [];
  const server = createHttpsServer(
    { cert: readFileSync(join(dir, 'upstream.pem')), key: readFileSync(join(dir, 'upstream-key.pem')), ...(opts.requestCert ? { requestCert: true, rejectUnauthorized: true, ca: readFileSync(ca.cert) } : {}) },
    (req, res) => {
      const c = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
      seen.push(String(c?.subject?.CN ?? '-'));
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`secure ${req.url}`);
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, seen };
}

const plainListener = (upstreamTls: string, port: number, extra = '') => `
listen: { host: 127.0.0.1, port: 0 }
upstreams:
  app:
    nodes: [{ url: https://127.0.0.1:${port} }]
    tls: ${upstreamTls}
${extra}
routes:
  - { name: all, match: { path: /* }, upstream: app }
`;

async function plainGet(port: number, path: string): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: r.status, body: await r.text() };
}

test('an upstream signed by a private CA is reached with tls.ca (no NODE_EXTRA_CA_CERTS), and so is its health check', async () => {
  // the process-wide extra CAs (if any) do not hold this test's CA: only tls.ca can make the chain verify
  assert.ok(!process.env.NODE_EXTRA_CA_CERTS || !readFileSync(process.env.NODE_EXTRA_CA_CERTS, 'utf8').includes(readFileSync(ca.cert, 'utf8').trim()));
  const u = await httpsUpstream();
  const g = await start(plainListener(`{ ca: ${ca.cert}, servername: upstream.test }`, u.port, '    healthCheck: { path: /health, intervalMs: 300, timeoutMs: 250, healthyThreshold: 1, unhealthyThreshold: 3 }'));
  try {
    assert.deepEqual(await plainGet(g.port, '/hello'), { status: 200, body: 'secure /hello' });
    for (let i = 0; i < 100 && !u.seen.length; i++) await new Promise((r) => setTimeout(r, 50));
    const before = u.seen.length;
    // two more checks, however late their timers run (a TLS failure would fail every one: three in a row log it)
    for (let i = 0; i < 200 && u.seen.length < before + 2; i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(u.seen.length >= before + 2, 'the health checks reach the upstream through the same TLS settings');
    assert.ok(!g.logs.some((l) => l.includes('failed its health checks')), g.logs.join(''));
  } finally {
    await g.gateway.stop();
    u.server.close();
  }
});

test('an upstream whose certificate the configured CA did not sign gets a 502 with a stable code and no internals', async () => {
  const u = await httpsUpstream();
  const g = await start(plainListener(`{ ca: ${otherCa.cert}, servername: upstream.test }`, u.port));
  try {
    const r = await fetch(`http://127.0.0.1:${g.port}/x`);
    const body = await r.text();
    assert.equal(r.status, 502);
    assert.equal(JSON.parse(body).code, 'NG_ERR_UPSTREAM_CONNECT');
    assert.doesNotMatch(body, /127\.0\.0\.1|CERT|SSL|certificate|upstream\.test|at /);
    assert.equal(u.seen.length, 0);
  } finally {
    await g.gateway.stop();
    u.server.close();
  }
});

test('verify: false reaches an upstream with an unknown CA, with a warning at load', async () => {
  const u = await httpsUpstream();
  const g = await start(plainListener('{ verify: false }', u.port));
  try {
    assert.deepEqual(await plainGet(g.port, '/v'), { status: 200, body: 'secure /v' });
    assert.ok(g.logs.some((l) => l.includes('"level":40') && l.includes('upstreams.app.tls.verify is false')), g.logs.join(''));
  } finally {
    await g.gateway.stop();
    u.server.close();
  }
});

test('an upstream that requires a client certificate gets the configured one (mTLS); without it, 502', async () => {
  makeLeaf(dir, 'client', ca, ['nanogate-client'], { clientAuth: true });
  const u = await httpsUpstream({ requestCert: true });
  const withCert = await start(plainListener(`{ ca: ${ca.cert}, servername: upstream.test, cert: ${join(dir, 'client.pem')}, key: ${join(dir, 'client-key.pem')} }`, u.port));
  try {
    assert.deepEqual(await plainGet(withCert.port, '/m'), { status: 200, body: 'secure /m' });
    assert.deepEqual(u.seen, ['nanogate-client']);
  } finally {
    await withCert.gateway.stop();
  }
  const without = await start(plainListener(`{ ca: ${ca.cert}, servername: upstream.test }`, u.port));
  try {
    const r = await fetch(`http://127.0.0.1:${without.port}/m`);
    assert.equal(r.status, 502);
    assert.match((await r.json()).code, /^NG_ERR_UPSTREAM_(CONNECT|RESET)$/);
  } finally {
    await without.gateway.stop();
    u.server.close();
  }
});

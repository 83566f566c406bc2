import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import http2, { type ClientHttp2Session } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import pino from 'pino';
import { Gateway } from '../../src/control/gateway.js';
import { compileConfig } from '../../src/config/compile.js';
import { loadConfigText } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/errors.js';
import { makeCa, makeLeaf, type TestCa } from '../helpers/certs.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

/**
 * The node:http2 listener (listen.http2): HTTP/2 and HTTP/1.1 (ALPN) on one TLS port and h2c, feeding the same
 * routes and policies as the uWS listener, with bodies streamed both ways, many streams on one connection and a
 * client that gives up mid-response. Real gateway, real upstream, node:http2 clients.
 */

const BIG = 5 * 1024 * 1024;
let dir: string;
let ca: TestCa;
let upstream: TestUpstream;
let gw: Gateway;
let h2Port: number;
let uwsPort: number;
let aborted = 0;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nanogate-h2-'));
  ca = makeCa(dir, 'h2-ca');
  makeLeaf(dir, 'server', ca, ['localhost']);
  upstream = await startUpstream(
    (req, res) => {
      if (req.url === '/big') {
        // 5 MB in 64 KiB writes, honouring backpressure
        const chunk = Buffer.alloc(65536, 'b');
        let left = BIG;
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BIG) });
        const pump = () => {
          while (left > 0) {
            const n = Math.min(left, chunk.length);
            left -= n;
            if (!res.write(chunk.subarray(0, n))) return void res.once('drain', pump);
          }
          res.end();
        };
        return pump();
      }
      if (req.url === '/slow') {
        // a head, a first chunk, then nothing until the client has gone
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first');
        res.on('close', () => aborted++);
        return;
      }
      if (req.url === '/echo-body') {
        // the request body back, hashed and counted, streaming
        const h = createHash('sha256');
        let n = 0;
        req.on('data', (c: Buffer) => {
          h.update(c);
          n += c.length;
        });
        req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ bytes: n, sha256: h.digest('hex') })));
        return;
      }
      const body: Buffer[] = [];
      req.on('data', (c: Buffer) => body.push(c));
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, httpVersion: req.httpVersion })));
    },
    { stream: true },
  );
  const file = join(dir, 'gateway.yaml');
  writeFileSync(
    file,
    `
listen:
  host: 127.0.0.1
  port: 0
  tls: { cert: ${join(dir, 'server.pem')}, key: ${join(dir, 'server-key.pem')} }
  http2: { port: 0 }
admin: { host: 127.0.0.1, port: 0 }
upstreams:
  app: { nodes: [{ url: ${upstream.url} }] }
routes:
  - name: limited
    match: { path: /limited }
    upstream: app
    policies:
      rateLimit: { limits: [{ key: ip, rate: 2, per: hour, burst: 2 }] }
  - name: all
    match: { path: /* }
    upstream: app
    policies:
      headers:
        request: { set: { x-from-gateway: "yes" } }
        response: { set: { x-policy: applied } }
`,
  );
  gw = new Gateway({ configFile: file, workers: 1, logger: pino({ level: process.env.NANOGATE_TEST_LOG ?? 'silent' }) });
  await gw.start();
  h2Port = gw.http2Port;
  uwsPort = gw.port;
});

after(async () => {
  await gw?.stop();
  await upstream?.close();
});

function connect(port = h2Port): ClientHttp2Session {
  const s = http2.connect(`https://localhost:${port}`, { ca: readFileSync(ca.cert) });
  s.on('error', () => {});
  return s;
}

interface H2Answer {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
}

function h2req(s: ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const st = s.request(headers);
    const chunks: Buffer[] = [];
    let head: http2.IncomingHttpHeaders = {};
    st.on('response', (h) => (head = h));
    st.on('data', (c: Buffer) => chunks.push(c));
    st.on('end', () => resolve({ status: Number(head[':status']), headers: head, body: Buffer.concat(chunks) }));
    st.on('error', reject);
    if (body !== undefined) st.end(body);
    else st.end();
  });
}

test('an HTTP/2 request reaches the upstream through the route and its headers policy, and comes back with them', async () => {
  const s = connect();
  try {
    const r = await h2req(s, { ':path': '/hello?x=1', ':method': 'GET' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-policy'], 'applied');
    assert.ok(r.headers['x-request-id']);
    assert.ok(String(r.headers.via).includes('nanogate'));
    const seen = JSON.parse(r.body.toString());
    assert.equal(seen.url, '/hello?x=1');
    assert.equal(seen.headers['x-from-gateway'], 'yes');
    // :authority became the Host the upstream sees; the scheme is https
    assert.equal(seen.headers['x-forwarded-host'], `localhost:${h2Port}`);
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
  } finally {
    s.close();
  }
});

test('the rate limit counts HTTP/2 and uWS requests of the route together (one plan, one limiter)', async () => {
  const s = connect();
  try {
    const a = await h2req(s, { ':path': '/limited' });
    assert.equal(a.status, 200);
    const b = await fetchUws('/limited');
    assert.equal(b, 200);
    const c = await h2req(s, { ':path': '/limited' });
    assert.equal(c.status, 429);
    assert.equal(c.headers['content-type'], 'application/problem+json');
    assert.equal(JSON.parse(c.body.toString()).code, 'NG_ERR_RATE_LIMITED');
  } finally {
    s.close();
  }
});

function fetchUws(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port: uwsPort, path, servername: 'localhost', ca: readFileSync(ca.cert) }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end();
  });
}

test('a 5 MB response and a 5 MB request body stream through HTTP/2 intact', async () => {
  const s = connect();
  try {
    const down = await h2req(s, { ':path': '/big' });
    assert.equal(down.status, 200);
    assert.equal(down.body.length, BIG);
    assert.ok(down.body.every((b) => b === 0x62));
    const up = Buffer.alloc(BIG);
    for (let i = 0; i < up.length; i++) up[i] = i & 0xff;
    // no content-length: an HTTP/2 body framed by its DATA frames alone
    const r = await h2req(s, { ':path': '/echo-body', ':method': 'POST' }, up);
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body.toString());
    assert.equal(seen.bytes, BIG);
    assert.equal(seen.sha256, createHash('sha256').update(up).digest('hex'));
  } finally {
    s.close();
  }
});

test('HTTP/1.1 over TLS on the same port (ALPN http/1.1) is served by the same routes', async () => {
  const { status, body, alpn } = await new Promise<{ status: number; body: string; alpn: string | false }>((resolve, reject) => {
    const options = { host: '127.0.0.1', port: h2Port, path: '/v1', servername: 'localhost', ca: readFileSync(ca.cert), ALPNProtocols: ['http/1.1'] };
    const req = httpsRequest(options as import('node:https').RequestOptions, (res) => {
      let b = '';
      const alpn = (res.socket as import('node:tls').TLSSocket).alpnProtocol ?? false;
      res.on('data', (c) => (b += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: b, alpn }));
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(status, 200);
  assert.equal(alpn, 'http/1.1');
  const seen = JSON.parse(body);
  assert.equal(seen.url, '/v1');
  assert.equal(seen.headers['x-from-gateway'], 'yes');
});

test('100 concurrent streams on one HTTP/2 connection all get their own answer', async () => {
  const s = connect();
  try {
    const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => h2req(s, { ':path': `/n/${i}` })));
    answers.forEach((r, i) => {
      assert.equal(r.status, 200);
      assert.equal(JSON.parse(r.body.toString()).url, `/n/${i}`);
    });
  } finally {
    s.close();
  }
});

test('a client that resets its stream mid-response frees the upstream request; the connection keeps serving', async () => {
  const s = connect();
  try {
    const before = aborted;
    await new Promise<void>((resolve, reject) => {
      const st = s.request({ ':path': '/slow' });
      st.on('data', () => {
        st.close(http2.constants.NGHTTP2_CANCEL);
        resolve();
      });
      st.on('error', reject);
    });
    // the gateway gives up its upstream request: the upstream sees its socket close
    for (let i = 0; i < 100 && aborted === before; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(aborted, before + 1);
    const r = await h2req(s, { ':path': '/after' });
    assert.equal(r.status, 200);
  } finally {
    s.close();
  }
});

test('a route that does not exist gets the problem+json answer over HTTP/2', async () => {
  const s = connect();
  try {
    const r = await h2req(s, { ':path': '/../x' });
    assert.equal(r.headers['content-type'], 'application/problem+json');
    assert.ok(r.status >= 400 && r.status < 500);
  } finally {
    s.close();
  }
});

test('h2c: cleartext HTTP/2 with prior knowledge beside a plain uWS listener', async () => {
  const file = join(dir, 'h2c.yaml');
  writeFileSync(
    file,
    `
listen: { host: 127.0.0.1, port: 0, http2: { port: 0, h2c: true } }
admin: { host: 127.0.0.1, port: 0 }
upstreams:
  app: { nodes: [{ url: ${upstream.url} }] }
routes:
  - { name: all, match: { path: /* }, upstream: app }
`,
  );
  const g = new Gateway({ configFile: file, workers: 1, logger: pino({ level: 'silent' }) });
  await g.start();
  try {
    const s = http2.connect(`http://127.0.0.1:${g.http2Port}`);
    s.on('error', () => {});
    try {
      const r = await h2req(s, { ':path': '/clear' });
      assert.equal(r.status, 200);
      const seen = JSON.parse(r.body.toString());
      assert.equal(seen.url, '/clear');
      assert.equal(seen.headers['x-forwarded-proto'], 'http');
    } finally {
      s.close();
    }
  } finally {
    await g.stop();
  }
});

test('listen.http2 over TLS without listen.tls, or on listen.port, is refused with its path', () => {
  const bad = (listen: string) => {
    try {
      compileConfig(loadConfigText(`listen: ${listen}\nupstreams: { app: { nodes: [{ url: http://127.0.0.1:1 }] } }\nroutes: [{ name: a, match: { path: /* }, upstream: app }]\n`, 'test.yaml', {}), 'test.yaml');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.issues.map((i) => `${i.path}: ${i.message}`).join('\n');
    }
    return '';
  };
  assert.match(bad('{ port: 8080, http2: { port: 8443 } }'), /^listen\.http2: HTTP\/2 over TLS needs listen\.tls/m);
  assert.match(bad('{ port: 8080, http2: { port: 8080, h2c: true } }'), /^listen\.http2\.port: 8080 is listen\.port/m);
  assert.match(bad('{ port: 8080, http2: { port: 8443, h2c: true, clientCertificates: { ca: /nonexistent.pem } } }'), /^listen\.http2\.clientCertificates: client certificates need TLS/m);
});

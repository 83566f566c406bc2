/**
 * Storing while streaming: the first client gets each chunk as the origin sends it (the cache copies, it does not
 * hold), the complete body is stored at its end, a body over maxObjectBytes streams through and is not stored, and
 * a body cut short is never stored. Cached responses pass the response phase (headers policy, CORS) like fresh ones.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startCacheOrigin, type CacheOrigin } from '../helpers/cache-origin.js';
import { send } from '../helpers/http.js';

let origin: CacheOrigin;
let gw: TestGateway;
let release: (() => void) | null = null;

before(async () => {
  origin = await startCacheOrigin();
  gw = await startGateway(`
upstreams:
  origin: { nodes: [{ url: ${origin.url} }] }
routes:
  - name: zipped
    match: { prefix: /zip }
    upstream: origin
    policies:
      cache: {}
      compression: { encodings: [gzip], minBytes: 16 }
  - name: stream
    match: { prefix: /st }
    upstream: origin
    policies:
      cache: { maxObjectBytes: 100000 }
      headers: { response: { set: { x-frame-options: DENY } } }
      cors: { origins: [https://app.example] }
`);
});
after(async () => {
  await gw.stop();
  await origin.close();
});

test('the first client gets the first chunk before the origin has finished; the whole body is then stored', async () => {
  origin.on('/st/live', (_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=600', 'content-type': 'text/plain' });
    res.write('first-part;');
    release = () => res.end('second-part');
  });
  const firstChunk = await new Promise<string>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: gw.port, path: '/st/live', agent: false }, (res) => {
      let all = '';
      res.once('data', (c: Buffer) => {
        resolve(c.toString());
        res.on('data', (d: Buffer) => (all += d.toString()));
      });
      res.on('end', () => void all);
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(firstChunk, 'first-part;', 'the chunk arrived while the origin still held the rest');
  release!();
  // once the body is complete, the next request is a hit with the whole body
  let hit = await send(gw.port, { path: '/st/live' });
  for (let i = 0; i < 50 && !/; hit/.test(String(hit.headers['cache-status'])); i++) {
    await new Promise((r) => setTimeout(r, 20));
    hit = await send(gw.port, { path: '/st/live' });
  }
  assert.match(String(hit.headers['cache-status']), /; hit/);
  assert.equal(hit.text, 'first-part;second-part');
  assert.equal(origin.count('/st/live'), 1);
});

test('a body larger than maxObjectBytes streams through whole and is not stored', async () => {
  const big = Buffer.alloc(300_000, 'x');
  origin.on('/st/big', (_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=600', 'content-type': 'application/octet-stream' });
    res.write(big.subarray(0, 150_000));
    setTimeout(() => res.end(big.subarray(150_000)), 20);
  });
  const a = await send(gw.port, { path: '/st/big' });
  assert.equal(a.body.length, big.length);
  const b = await send(gw.port, { path: '/st/big' });
  assert.equal(b.body.length, big.length);
  assert.equal(origin.count('/st/big'), 2);
});

test('a Content-Length larger than maxObjectBytes is not stored, and says so', async () => {
  const big = Buffer.alloc(200_000, 'y');
  origin.on('/st/biglen', (_req, res) => void res.writeHead(200, { 'cache-control': 'max-age=600', 'content-length': String(big.length) }).end(big));
  const a = await send(gw.port, { path: '/st/biglen' });
  assert.equal(a.body.length, big.length);
  assert.match(String(a.headers['cache-status']), /detail=too-large/);
  await send(gw.port, { path: '/st/biglen' });
  assert.equal(origin.count('/st/biglen'), 2);
});

test('a body the origin cuts short is never stored', async () => {
  origin.on('/st/cut', (_req, res, n) => {
    if (n > 1) return void res.writeHead(200, { 'cache-control': 'max-age=600', 'content-type': 'text/plain' }).end('whole');
    res.writeHead(200, { 'cache-control': 'max-age=600', 'content-length': '100', 'content-type': 'text/plain' });
    res.write('partial');
    setTimeout(() => res.socket?.destroy(), 20);
  });
  await send(gw.port, { path: '/st/cut' }).catch(() => null);
  const b = await send(gw.port, { path: '/st/cut' });
  assert.equal(b.text, 'whole');
});

test('a cached response passes the response phase: the headers policy and CORS apply to hits too', async () => {
  origin.on('/st/phase', (_req, res) => void res.writeHead(200, { 'cache-control': 'max-age=600', 'content-type': 'text/plain' }).end('shared'));
  await send(gw.port, { path: '/st/phase' });
  const hit = await send(gw.port, { path: '/st/phase', headers: { origin: 'https://app.example' } });
  assert.match(String(hit.headers['cache-status']), /; hit/);
  assert.equal(hit.headers['x-frame-options'], 'DENY');
  assert.equal(hit.headers['access-control-allow-origin'], 'https://app.example');
  const other = await send(gw.port, { path: '/st/phase', headers: { origin: 'https://evil.example' } });
  assert.equal(other.headers['access-control-allow-origin'], undefined);
  assert.equal(other.text, 'shared');
});

test('with compression on the route the identity body is stored; a hit is compressed for a client that asks, identity for one that does not', async () => {
  const text = 'compressible '.repeat(200);
  origin.on('/zip/doc', (_req, res) => void res.writeHead(200, { 'cache-control': 'max-age=600', 'content-type': 'text/plain' }).end(text));
  const first = await send(gw.port, { path: '/zip/doc', headers: { 'accept-encoding': 'gzip' } });
  assert.equal(first.headers['content-encoding'], 'gzip');
  const plain = await send(gw.port, { path: '/zip/doc' });
  assert.match(String(plain.headers['cache-status']), /; hit/);
  assert.equal(plain.headers['content-encoding'], undefined);
  assert.equal(plain.text, text);
  const zipped = await send(gw.port, { path: '/zip/doc', headers: { 'accept-encoding': 'gzip' } });
  assert.match(String(zipped.headers['cache-status']), /; hit/);
  assert.equal(zipped.headers['content-encoding'], 'gzip');
  assert.equal(gunzipSync(zipped.body).toString(), text);
  assert.equal(origin.count('/zip/doc'), 1);
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { brotliDecompressSync, createBrotliDecompress, createGunzip, gunzipSync, gzipSync } from 'node:zlib';
import { closeAll, send, fieldValues, waitFor, type HttpResult } from '../helpers/http.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { closedPort, startUpstream, type TestUpstream } from '../helpers/upstream.js';

/**
 * The compression policy against a real upstream: every compressed answer is decoded here and compared byte for byte
 * with what the upstream sent. The response-phase seams it stands on are tested through it: a policy reading the
 * upstream head (Content-Type, Content-Encoding, all Vary lines), a body filter changing framing, and a prepared
 * byte response (the route fallback) passing the headers policy and the filter like an upstream one.
 */

const T = { timeout: 30_000 };

/** A JSON document of about `size` bytes that compresses like real API output (repeated keys, varying values). */
function jsonBody(size: number): Buffer {
  const items: string[] = [];
  let length = 2;
  for (let i = 0; length < size; i++) {
    const item = JSON.stringify({ id: i, name: `item-${i}`, price: (i * 37) % 1000, tags: ['a', 'b', String(i % 7)] });
    items.push(item);
    length += item.length + 1;
  }
  return Buffer.from(`[${items.join(',')}]`);
}

const BIG = jsonBody(20_000);
const SMALL = jsonBody(300);
const PNG = Buffer.alloc(4096, 7);
const FALLBACK = jsonBody(3000).toString();
/** 5 MB of base64 text: compressible enough to be typical, not so much that the output is tiny */
const STREAM_TOTAL = 5 * 1024 * 1024;
const STREAM_CHUNK = 64 * 1024;
function streamChunk(i: number): Buffer {
  const raw = createHash('sha512').update(String(i)).digest();
  let s = '';
  while (s.length < STREAM_CHUNK) s += raw.toString('base64') + '\n' + `line ${i} of the streamed body\n`;
  return Buffer.from(s.slice(0, STREAM_CHUNK));
}

let up: TestUpstream;
let gw: TestGateway;
let slowEnded = false;
let abortedSeen = 0;

function answer(req: IncomingMessage, res: ServerResponse): void {
  const path = req.url!.split('?')[0];
  switch (path) {
    case '/json':
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': BIG.length, etag: '"v1"', 'accept-ranges': 'bytes' });
      return void res.end(BIG);
    case '/weak-etag':
      res.writeHead(200, { 'content-type': 'application/json', etag: 'W/"v2"' });
      return void res.end(BIG);
    case '/small':
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': SMALL.length });
      return void res.end(SMALL);
    case '/small-chunked':
      // no Content-Length: compressed whatever its size
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(SMALL.subarray(0, 100));
      return void res.end(SMALL.subarray(100));
    case '/png':
      res.writeHead(200, { 'content-type': 'image/png' });
      return void res.end(PNG);
    case '/svg':
      res.writeHead(200, { 'content-type': 'IMAGE/SVG+XML' });
      return void res.end(BIG);
    case '/no-type':
      res.writeHead(200);
      return void res.end(BIG);
    case '/encoded': {
      const z = gzipSync(BIG);
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': z.length });
      return void res.end(z);
    }
    case '/no-transform':
      res.writeHead(200, [['Content-Type', 'text/html'], ['Cache-Control', 'public'], ['Cache-Control', 'max-age=60, No-Transform']]);
      return void res.end(BIG);
    case '/vary':
      res.writeHead(200, [['Content-Type', 'application/json'], ['Vary', 'Origin'], ['Vary', 'Cookie']]);
      return void res.end(BIG);
    case '/vary-ae':
      res.writeHead(200, { 'content-type': 'application/json', vary: 'Accept-Encoding' });
      return void res.end(BIG);
    case '/range':
      res.writeHead(206, { 'content-type': 'application/json', 'content-range': `bytes 0-1999/${BIG.length}` });
      return void res.end(BIG.subarray(0, 2000));
    case '/no-content':
      res.writeHead(204, { 'content-type': 'application/json' });
      return void res.end();
    case '/not-modified':
      res.writeHead(304, { 'content-type': 'application/json', etag: '"v1"' });
      return void res.end();
    case '/stream': {
      res.writeHead(200, { 'content-type': 'text/plain' });
      let i = 0;
      const pump = () => {
        while (i < STREAM_TOTAL / STREAM_CHUNK) if (!res.write(streamChunk(i++))) return void res.once('drain', pump);
        res.end();
      };
      return pump();
    }
    case '/slow': {
      slowEnded = false;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      let n = 0;
      const timer = setInterval(() => {
        res.write(`data: event ${n}\n\n`);
        if (++n === 5) {
          clearInterval(timer);
          res.end();
          slowEnded = true;
        }
      }, 100);
      return void res.on('close', () => clearInterval(timer));
    }
    case '/endless': {
      res.writeHead(200, { 'content-type': 'text/plain' });
      let i = 0;
      const timer = setInterval(() => res.write(streamChunk(i++).subarray(0, 8192)), 5);
      return void res.on('close', () => {
        clearInterval(timer);
        if (!res.writableFinished) abortedSeen++;
      });
    }
    case '/reset':
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(BIG.subarray(0, 8000));
      return void setTimeout(() => req.socket.destroy(), 50);
    default:
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('none');
  }
}

before(async () => {
  up = await startUpstream(answer, { stream: true });
  gw = await startGateway(`
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
  gone: { nodes: [{ url: "http://127.0.0.1:${await closedPort()}" }] }
routes:
  - name: gz
    match: { prefix: /gz }
    upstream: app
    stripPrefix: true
    policies:
      compression: { encodings: [gzip] }
  - name: both
    match: { prefix: /both }
    upstream: app
    stripPrefix: true
    policies:
      compression: { encodings: [br, gzip], brotli: { quality: 5 } }
  - name: gzip-first
    match: { prefix: /gzfirst }
    upstream: app
    stripPrefix: true
    policies:
      compression: { encodings: [gzip, br] }
  - name: fallback
    match: { prefix: /fb }
    upstream: gone
    fallback:
      status: 200
      headers: { content-type: application/json, x-internal: secret, cache-control: max-age=5 }
      body: '${FALLBACK}'
    policies:
      headers: { response: { remove: [x-internal], set: { cache-control: no-store, x-served-by: fallback } } }
      compression: {}
  - { name: plain, match: { prefix: /plain }, upstream: app, stripPrefix: true }
`);
});
after(() => closeAll(() => gw.stop(), () => up.close()));

function get(path: string, acceptEncoding?: string, method = 'GET'): Promise<HttpResult> {
  return send(gw.port, { path, method, headers: acceptEncoding === undefined ? {} : { 'accept-encoding': acceptEncoding } });
}

function decode(r: HttpResult): Buffer {
  const ce = r.headers['content-encoding'];
  if (ce === 'gzip') return gunzipSync(r.body);
  if (ce === 'br') return brotliDecompressSync(r.body);
  assert.equal(ce, undefined, `unexpected content-encoding ${ce}`);
  return r.body;
}

test('negotiation on Accept-Encoding: q-values, "*", identity, refusals and no header', T, async () => {
  const table: [string | undefined, string, string | undefined][] = [
    [undefined, '/both/json', undefined],
    ['', '/both/json', undefined],
    ['gzip', '/both/json', 'gzip'],
    ['br', '/both/json', 'br'],
    ['gzip, br', '/both/json', 'br'], // equal weights: the route's order
    ['gzip, br', '/gzfirst/json', 'gzip'],
    ['br;q=0.5, gzip', '/both/json', 'gzip'],
    ['BR;Q=1, GZIP;q=0.9', '/both/json', 'br'],
    ['x-gzip', '/gz/json', 'gzip'],
    ['*', '/both/json', 'br'],
    ['*;q=0.5, br;q=0', '/both/json', 'gzip'],
    ['gzip;q=0, br;q=0', '/both/json', undefined],
    ['*;q=0', '/both/json', undefined],
    ['identity;q=0, gzip', '/both/json', 'gzip'],
    ['gzip;q=0.4, identity;q=0.8', '/both/json', undefined],
    ['deflate, zstd', '/both/json', undefined],
    ['br;q=2, gzip;q=0.1', '/both/json', 'gzip'], // a malformed weight drops that member
    ['br', '/gz/json', undefined], // not offered on that route
  ];
  for (const [ae, path, want] of table) {
    const r = await get(path, ae);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-encoding'], want, `Accept-Encoding ${JSON.stringify(ae)} on ${path}`);
    assert.deepEqual(decode(r), BIG, `body for ${JSON.stringify(ae)}`);
    // eligible for compression, so the answer varies on Accept-Encoding whether or not this one was compressed
    assert.equal(r.headers.vary, 'Accept-Encoding', `Vary for ${JSON.stringify(ae)}`);
  }
});

test('a compressed response loses Content-Length and Accept-Ranges, keeps its type, and its strong ETag turns weak', T, async () => {
  const r = await get('/gz/json', 'gzip');
  assert.equal(r.headers['content-encoding'], 'gzip');
  assert.equal(r.headers['content-length'], undefined);
  assert.equal(r.headers['transfer-encoding'], 'chunked');
  assert.equal(r.headers['accept-ranges'], undefined);
  assert.equal(r.headers['content-type'], 'application/json; charset=utf-8');
  assert.equal(r.headers.etag, 'W/"v1"');
  assert.ok(r.body.length < BIG.length / 3, `gzip output ${r.body.length} of ${BIG.length}`);
  assert.deepEqual(gunzipSync(r.body), BIG);

  const weak = await get('/gz/weak-etag', 'gzip');
  assert.equal(weak.headers.etag, 'W/"v2"');

  // the same response uncompressed keeps everything the upstream sent
  const plain = await get('/gz/json', 'identity');
  assert.equal(plain.headers['content-length'], String(BIG.length));
  assert.equal(plain.headers.etag, '"v1"');
  assert.equal(plain.headers['accept-ranges'], 'bytes');
});

test('minBytes applies to a Content-Length below it; a chunked body is compressed whatever its size', T, async () => {
  const small = await get('/gz/small', 'gzip');
  assert.equal(small.headers['content-encoding'], undefined);
  assert.equal(small.headers['content-length'], String(SMALL.length));
  assert.equal(small.headers.vary, undefined);
  assert.deepEqual(small.body, SMALL);

  const chunked = await get('/gz/small-chunked', 'gzip');
  assert.equal(chunked.headers['content-encoding'], 'gzip');
  assert.deepEqual(gunzipSync(chunked.body), SMALL);
});

test('content types: listed ones (case-insensitive, parameters ignored) are compressed, others and untyped ones are not', T, async () => {
  const png = await get('/gz/png', 'gzip');
  assert.equal(png.headers['content-encoding'], undefined);
  assert.deepEqual(png.body, PNG);
  const svg = await get('/gz/svg', 'gzip');
  assert.equal(svg.headers['content-encoding'], 'gzip');
  assert.deepEqual(gunzipSync(svg.body), BIG);
  const untyped = await get('/gz/no-type', 'gzip');
  assert.equal(untyped.headers['content-encoding'], undefined);
  assert.deepEqual(untyped.body, BIG);
});

test('an already encoded body and Cache-Control: no-transform (in any of its lines) pass untouched', T, async () => {
  const enc = await get('/gz/encoded', 'gzip, br');
  assert.equal(enc.headers['content-encoding'], 'gzip');
  assert.deepEqual(gunzipSync(enc.body), BIG); // decoded once: not compressed a second time
  const nt = await get('/both/no-transform', 'gzip, br');
  assert.equal(nt.headers['content-encoding'], undefined);
  assert.deepEqual(nt.body, BIG);
});

test('HEAD, 204, 304 and 206 are never compressed', T, async () => {
  const head = await get('/gz/json', 'gzip', 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-encoding'], undefined);
  assert.equal(head.headers['content-length'], String(BIG.length));
  const nc = await get('/gz/no-content', 'gzip');
  assert.equal(nc.status, 204);
  assert.equal(nc.headers['content-encoding'], undefined);
  const nm = await get('/gz/not-modified', 'gzip');
  assert.equal(nm.status, 304);
  assert.equal(nm.headers['content-encoding'], undefined);
  const range = await get('/gz/range', 'gzip');
  assert.equal(range.status, 206);
  assert.equal(range.headers['content-encoding'], undefined);
  assert.equal(range.headers['content-range'], `bytes 0-1999/${BIG.length}`);
  assert.deepEqual(range.body, BIG.subarray(0, 2000));
});

test('Vary: Accept-Encoding is merged into every Vary line of the upstream, and not repeated', T, async () => {
  // the policy reads both of the upstream's Vary field lines (PolicyContext.responseHeaderValues)
  const r = await get('/gz/vary', 'gzip');
  assert.equal(r.headers['content-encoding'], 'gzip');
  assert.deepEqual(fieldValues(r.rawHeaders, 'vary'), ['Origin, Cookie, Accept-Encoding']);
  const already = await get('/gz/vary-ae', 'gzip');
  assert.deepEqual(fieldValues(already.rawHeaders, 'vary'), ['Accept-Encoding']);
  assert.deepEqual(gunzipSync(already.body), BIG);
});

test('a prepared byte response (the route fallback) passes the headers policy and the body filter', T, async () => {
  const plain = await get('/fb', undefined);
  assert.equal(plain.status, 200);
  assert.equal(plain.text, FALLBACK);
  assert.equal(plain.headers['content-length'], String(Buffer.byteLength(FALLBACK)));
  assert.equal(plain.headers['x-internal'], undefined, 'removed by the headers policy');
  assert.deepEqual(fieldValues(plain.rawHeaders, 'cache-control'), ['no-store'], 'replaced, not added to');
  assert.equal(plain.headers['x-served-by'], 'fallback');

  const br = await get('/fb', 'br');
  assert.equal(br.headers['content-encoding'], 'br');
  assert.equal(br.headers['content-length'], undefined);
  assert.equal(br.headers['x-internal'], undefined);
  assert.equal(br.headers['x-served-by'], 'fallback');
  assert.equal(brotliDecompressSync(br.body).toString(), FALLBACK);
});

test('a 5 MB streamed body is compressed as it streams, to a slow reader, with both codings', T, async () => {
  const expected = createHash('sha256');
  for (let i = 0; i < STREAM_TOTAL / STREAM_CHUNK; i++) expected.update(streamChunk(i));
  const want = expected.digest('hex');
  for (const coding of ['gzip', 'br']) {
    const got = await new Promise<{ sha: string; bytes: number; wire: number; ce: string | undefined }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: gw.port, path: '/both/stream', headers: { 'accept-encoding': coding }, agent: false }, (res) => {
        let wire = 0;
        // fed by hand, not piped: a pipe would resume the response whenever the decoder drains, undoing the pauses
        const decoder = coding === 'gzip' ? createGunzip() : createBrotliDecompress();
        res.on('data', (c: Buffer) => {
          wire += c.length;
          decoder.write(c);
        });
        res.on('end', () => decoder.end());
        const hash = createHash('sha256');
        let bytes = 0;
        let since = 0;
        decoder.on('data', (c: Buffer) => {
          hash.update(c);
          bytes += c.length;
          // a slow link: a pause every 512 KiB of decoded text, so the gateway meets backpressure
          if (bytes - since > 512 * 1024) {
            since = bytes;
            res.pause();
            setTimeout(() => res.resume(), 5);
          }
        });
        decoder.on('end', () => resolve({ sha: hash.digest('hex'), bytes, wire, ce: res.headers['content-encoding'] }));
        decoder.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(got.ce, coding);
    assert.equal(got.bytes, STREAM_TOTAL);
    assert.equal(got.sha, want, `${coding}: decoded bytes differ`);
    assert.ok(got.wire < STREAM_TOTAL, `${coding}: ${got.wire} bytes on the wire`);
  }
});

test('a slow upstream (an event every 100 ms) reaches the client event by event, before the upstream ends', T, async () => {
  const seen: string[] = [];
  let beforeEnd = 0;
  await new Promise<void>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: gw.port, path: '/gz/slow', headers: { 'accept-encoding': 'gzip' }, agent: false }, (res) => {
      assert.equal(res.headers['content-encoding'], 'gzip');
      const gunzip = createGunzip();
      gunzip.on('data', (c: Buffer) => {
        seen.push(c.toString());
        if (!slowEnded) beforeEnd++;
      });
      gunzip.on('end', resolve);
      gunzip.on('error', reject);
      res.pipe(gunzip);
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(seen.join(''), [0, 1, 2, 3, 4].map((n) => `data: event ${n}\n\n`).join(''));
  // every event but the last has its own flush; at least the first ones arrive while the upstream still streams
  assert.ok(beforeEnd >= 3, `${beforeEnd} decoded pieces arrived before the upstream ended (of ${seen.length})`);
});

test('a client that goes away mid-stream frees its stream and the upstream request; the gateway goes on serving', T, async () => {
  const before = abortedSeen;
  for (let i = 0; i < 10; i++) {
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: gw.port, path: '/both/endless', headers: { 'accept-encoding': i % 2 ? 'gzip' : 'br' }, agent: false }, (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          if (bytes > 2000) {
            req.destroy();
            resolve();
          }
        });
      });
      req.on('error', (e) => (req.destroyed ? resolve() : reject(e)));
      req.end();
    });
  }
  // the gateway abandons the upstream request of each: the upstream sees every one closed before it finished
  assert.ok(await waitFor(() => abortedSeen - before === 10, 5000), `${abortedSeen - before} of 10 upstream requests closed`);
  const r = await get('/gz/json', 'gzip');
  assert.deepEqual(gunzipSync(r.body), BIG);
});

test('an upstream reset mid-body cuts the client connection (an incomplete gzip stream), and the next request is served', T, async () => {
  const outcome = await new Promise<string>((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port: gw.port, path: '/gz/reset', headers: { 'accept-encoding': 'gzip' }, agent: false }, (res) => {
      assert.equal(res.headers['content-encoding'], 'gzip');
      res.on('data', () => {});
      res.on('end', () => resolve('complete'));
      res.on('aborted', () => resolve('aborted'));
      res.on('error', () => resolve('aborted'));
    });
    req.on('error', () => resolve('aborted'));
    req.end();
  });
  assert.equal(outcome, 'aborted');
  const r = await get('/gz/json', 'gzip');
  assert.deepEqual(gunzipSync(r.body), BIG);
});

test('a route without the policy is untouched', T, async () => {
  const r = await get('/plain/json', 'gzip, br');
  assert.equal(r.headers['content-encoding'], undefined);
  assert.equal(r.headers.vary, undefined);
  assert.equal(r.headers['content-length'], String(BIG.length));
  assert.deepEqual(r.body, BIG);
});

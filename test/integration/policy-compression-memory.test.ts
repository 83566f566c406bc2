import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { createGunzip } from 'node:zlib';
import { closeAll } from '../helpers/http.js';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

/**
 * Compression streams and memory. The gateway runs as its own process so that its resident memory (VmRSS in /proc)
 * is its own; the upstream writes as fast as it may and the client reads slowly or not at all, so only backpressure
 * through the zlib stream keeps bodies out of the gateway's memory.
 *
 * On loopback the kernel's socket buffers between the three parties hold about 10 MB (measured here: with a client
 * that stops reading, an upstream gets 8.5-10 MB out before it blocks), so a 5 MB body fits in them whole and the
 * first test only checks the bytes of a slow download. The second one is the memory test: a 48 MB body to a
 * client that stops reading must leave the upstream blocked, not buffered in the gateway.
 */

const T = { timeout: 60_000 };
const CHUNK = 64 * 1024;

/** 16 distinct 64 KiB pieces of base64 text (compresses to about 3/4), cycled: a piece repeats 1 MiB later */
const PIECES = Array.from({ length: 16 }, (_, i) => {
  const out = Buffer.allocUnsafe(CHUNK);
  let o = 0;
  let k = 0;
  while (o < CHUNK) o += out.write(createHash('sha512').update(`piece ${i} ${k++}`).digest('base64') + '\n', o, 'latin1');
  return out;
});

let up: TestUpstream;
let gw: GatewayProcess;
/** what the upstream has handed to its socket for the current response, and whether it got to the end */
let written = 0;
let finished = false;

function sha(total: number): string {
  const h = createHash('sha256');
  for (let i = 0; i < total / CHUNK; i++) h.update(PIECES[i % 16]);
  return h.digest('hex');
}

before(async () => {
  up = await startUpstream(
    (req, res) => {
      const total = Number(new URL(req.url!, 'http://x').searchParams.get('mb')) * 1024 * 1024;
      written = 0;
      finished = false;
      res.writeHead(200, { 'content-type': 'text/plain' });
      let i = 0;
      const pump = () => {
        while (i < total / CHUNK) {
          const ok = res.write(PIECES[i++ % 16]);
          written += CHUNK;
          if (!ok) return void res.once('drain', pump);
        }
        res.end();
        finished = true;
      };
      pump();
    },
    { stream: true },
  );
  gw = await startGatewayProcess(`
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
routes:
  - name: big
    match: { prefix: / }
    upstream: app
    policies:
      compression: { encodings: [gzip] }
`);
});
after(() => closeAll(() => gw?.stop(), () => up?.close()));

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

/**
 * One download through gunzip. `onFirstData(res)` may pause the response (and resume it later); resolves with the
 * decoded size and hash.
 */
function download(mb: number, onFirstData?: (res: IncomingMessage) => void): Promise<{ bytes: number; sha: string; wire: number }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: gw.port, path: `/?mb=${mb}`, headers: { 'accept-encoding': 'gzip' }, agent: false }, (res) => {
      assert.equal(res.headers['content-encoding'], 'gzip');
      let wire = 0;
      // fed by hand, not piped: a pipe resumes the response whenever gunzip drains, overriding the test's pause
      const gunzip = createGunzip();
      res.on('data', (c: Buffer) => {
        if (wire === 0) onFirstData?.(res);
        wire += c.length;
        gunzip.write(c);
      });
      res.on('end', () => gunzip.end());
      const hash = createHash('sha256');
      let bytes = 0;
      gunzip.on('data', (c: Buffer) => {
        bytes += c.length;
        hash.update(c);
      });
      gunzip.on('end', () => resolve({ bytes, sha: hash.digest('hex'), wire }));
      gunzip.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A slow link: the reader stops for 30 ms after every 256 KiB. */
function slowly(res: IncomingMessage): void {
  let since = 0;
  let seen = 0;
  res.on('data', (c: Buffer) => {
    seen += c.length;
    if (seen - since > 256 * 1024) {
      since = seen;
      res.pause();
      setTimeout(() => res.resume(), 30);
    }
  });
}

test('5 MB bodies compressed for a slow reader arrive whole and in order, three times over', T, async () => {
  // No RSS figure here: a 5 MB body fits in the loopback socket buffers whole (see above), so growth says nothing
  // about backpressure and only measures the garbage collector's timing. The next test is the memory test.
  for (let i = 0; i < 3; i++) {
    const r = await download(5, slowly);
    assert.equal(r.bytes, 5 * 1024 * 1024);
    assert.equal(r.sha, sha(5 * 1024 * 1024));
    assert.ok(r.wire > 3 * 1024 * 1024 && r.wire < 5 * 1024 * 1024, `the compressed body is ${r.wire} bytes`);
  }
});

test('a client that stops reading holds the upstream back through the compressor; the body is whole once it reads on', T, async () => {
  const MB = 48;
  const base = rssBytes(gw.child.pid!);
  let held = 0;
  let peak = 0;
  const r = await download(MB, (res) => {
    res.pause();
    void (async () => {
      // wait until the upstream makes no progress for 500 ms (or gets to the end, which would be the failure)
      let last = -1;
      for (let i = 0; i < 40 && !finished && written !== last; i++) {
        last = written;
        await new Promise((w) => setTimeout(w, 500));
      }
      held = written;
      peak = rssBytes(gw.child.pid!);
      res.resume();
    })();
  });
  assert.equal(r.bytes, MB * 1024 * 1024);
  assert.equal(r.sha, sha(MB * 1024 * 1024));
  assert.ok(held < 24 * 1024 * 1024, `the upstream got ${(held / 1048576).toFixed(1)} MiB of ${MB} out while the client read nothing`);
  assert.ok(peak - base < 16 * 1024 * 1024, `RSS grew by ${((peak - base) / 1048576).toFixed(1)} MiB while the client read nothing`);
});

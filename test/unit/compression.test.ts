import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createGzip, gunzipSync } from 'node:zlib';
import { negotiate } from '../../src/policies/compression/negotiate.js';
import { ZlibFilter, gzipFilter } from '../../src/policies/compression/encoder.js';
import { loadConfigText } from '../../src/config/load.js';
import { compileConfig } from '../../src/config/compile.js';
import { ConfigError } from '../../src/config/errors.js';
import type { BodySink } from '../../src/pipeline/policy.js';

const OFFER = ['br', 'gzip'];

test('Accept-Encoding negotiation (RFC 9110 12.5.3): weights, "*", identity, refusals, malformed members', () => {
  const table: [string | undefined, string | null][] = [
    [undefined, null], // no header: not compressed (see negotiate.ts)
    ['', null],
    ['gzip', 'gzip'],
    ['GZip', 'gzip'],
    ['x-gzip', 'gzip'],
    ['gzip, br', 'br'], // equal weights: the offer's order
    ['gzip;q=1.0, br;q=0.999', 'gzip'],
    ['br;q=0.001', 'br'],
    ['br;q=0, gzip;q=0', null],
    ['br;q=0.000', null],
    ['*', 'br'],
    ['*;q=0', null],
    ['*;q=0.3, gzip;q=0.5', 'gzip'],
    ['*;q=0.6, gzip;q=0.5', 'br'],
    ['gzip;q=0, *', 'br'],
    ['br;q=0, *;q=0.1', 'gzip'],
    ['identity', null],
    ['identity;q=0', null],
    ['identity;q=0, gzip', 'gzip'],
    ['gzip;q=0.5, identity', null], // identity weighs more
    ['gzip;q=0.5, identity;q=0.5', 'gzip'],
    ['deflate, compress', null],
    ['gzip ; q=0.8 , br ; q=0.9', 'br'], // whitespace around ";" and ","
    ['br;level=1;q=0.2, gzip;q=0.1', 'br'], // other parameters are ignored
    ['br;q=1.5, gzip', 'gzip'], // an invalid qvalue drops its member
    ['br;q=0.1234, gzip;q=0.1', 'gzip'],
    ['br;q=, gzip;q=0.1', 'gzip'],
    ['br;q=x', null],
    [',,gzip,,', 'gzip'],
    ['br;q=0, br;q=1, gzip;q=0.5', 'gzip'], // the first mention counts
  ];
  for (const [header, want] of table) {
    const i = negotiate(header, OFFER);
    assert.equal(i < 0 ? null : OFFER[i], want, `Accept-Encoding: ${JSON.stringify(header)}`);
  }
  assert.equal(negotiate('gzip, br', ['gzip', 'br']), 0, 'the offer\'s order breaks a tie');
  assert.equal(negotiate('br', ['gzip']), -1);
});

/** A sink that collects what the filter passes on. */
function collector(): BodySink & { out: Buffer[]; ended: Promise<unknown>; failed: string[]; resumed: number } {
  let end!: () => void;
  const ended = new Promise<void>((r) => (end = r));
  const s = {
    out: [] as Buffer[],
    failed: [] as string[],
    resumed: 0,
    ended,
    push(c: Buffer) {
      s.out.push(c);
      return true;
    },
    end,
    resume() {
      s.resumed++;
    },
    fail(reason: string) {
      s.failed.push(reason);
      end();
    },
  };
  return s;
}

test('a gzip filter flushes each write: its output so far decodes to everything it was given', async () => {
  const f = gzipFilter({ level: 6, windowBits: 15, memLevel: 8 });
  const sink = collector();
  const chunk = Buffer.from('data: one event\n\n');
  f.onChunk(chunk, sink);
  chunk.fill(0); // the filter copied it: the upstream's read buffer is reused at once
  while (sink.out.length === 0) await new Promise((r) => setImmediate(r));
  // a partial gzip stream (no trailer yet) decodes as far as it goes
  const partial = gunzipSync(Buffer.concat(sink.out), { finishFlush: 2 /* Z_SYNC_FLUSH */ });
  assert.equal(partial.toString(), 'data: one event\n\n');
  f.onEnd(sink);
  await sink.ended;
  assert.equal(gunzipSync(Buffer.concat(sink.out)).toString(), 'data: one event\n\n');
  f.onClose();
});

test('onClose destroys the zlib stream (its memory is freed at once); an error reaches the sink, never the process', async () => {
  const stream = createGzip();
  const f = new ZlibFilter(stream);
  const sink = collector();
  f.onChunk(Buffer.from('x'), sink);
  f.onClose();
  f.onClose();
  assert.equal(stream.destroyed, true);

  const failing = createGzip();
  const g = new ZlibFilter(failing);
  const s2 = collector();
  g.onChunk(Buffer.from('y'), s2);
  const closed = new Promise((r) => failing.once('close', r));
  failing.destroy(new Error('native failure'));
  await closed;
  assert.deepEqual(s2.failed, ['compression failed: native failure']);
  g.onClose();
});

function compile(policy: string) {
  return compileConfig(
    loadConfigText(`upstreams:\n  app: { nodes: [{ url: "http://127.0.0.1:9001" }] }\nroutes:\n  - { name: a, match: { prefix: /a }, upstream: app, policies: { compression: ${policy} } }\n`, 'gw.yaml', {}),
    'gw.yaml',
  );
}

test('config: defaults filled in, bad values refused with the path', () => {
  const { plan } = compile('{}');
  const data = plan.routes[0].policies![0].data as { encodings: string[]; minBytes: number; gzip: { level: number }; brotli: { quality: number; window: number } };
  assert.deepEqual(data.encodings, ['br', 'gzip']);
  assert.equal(data.minBytes, 1024);
  assert.equal(data.gzip.level, 6);
  assert.equal(data.brotli.quality, 4);
  assert.equal(data.brotli.window, 18);
  for (const [bad, path] of [
    ['{ gzip: { level: 11 } }', 'routes[0].policies.compression.gzip.level'],
    ['{ brotli: { window: 30 } }', 'routes[0].policies.compression.brotli.window'],
    ['{ encodings: [deflate] }', 'routes[0].policies.compression.encodings[0]'],
    ['{ encodings: [gzip, gzip] }', 'routes[0].policies.compression.encodings'],
    ['{ contentTypes: ["*/*"] }', 'routes[0].policies.compression.contentTypes[0]'],
    ['{ minbytes: 10 }', 'routes[0].policies.compression.minbytes'],
  ]) {
    assert.throws(
      () => compile(bad),
      (err: unknown) => err instanceof ConfigError && err.message.includes(`gw.yaml: ${path}`),
      `${bad} should be refused at ${path}`,
    );
  }
});

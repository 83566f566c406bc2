import { test } from 'node:test';
import assert from 'node:assert/strict';
import { H1Decoder, H1_BODY, H1_END, H1_ERROR, H1_HEAD, MAX_HEAD_BYTES } from '../../src/upstream/h1-decoder.js';
import { comparable, decode, loadCorpus, prng, type DecodeOptions, type Outcome } from '../helpers/h1-decode.js';
import { CASES, b, longHead, type Case } from '../helpers/h1-cases.js';

/**
 * The upstream response decoder, fed the hostile responses a smuggling attempt is made of. Each case names the
 * RFC 9112 (or 9110) section that decides it; each is also decoded byte by byte and at every 2-way split, which
 * must give exactly what one-shot delivery gives.
 */

function check(c: Case, got: Outcome): void {
  const e = c.expect;
  if ('error' in e) {
    assert.equal(got.error, e.error, `${c.name} (RFC ${c.rfc})`);
    return;
  }
  assert.equal(got.error, null, `${c.name} (RFC ${c.rfc}) refused: ${got.error}`);
  const r = got.responses[0];
  assert.ok(r, `${c.name}: no response`);
  assert.equal(r.status, e.status, c.name);
  assert.equal(r.body, e.body, c.name);
  if (e.extra !== undefined) assert.equal(got.extra, e.extra, `${c.name}: bytes left after the response`);
  else assert.equal(got.extra, 0, `${c.name}: bytes left after the response`);
  if (e.interim !== undefined) assert.equal(r.interim, e.interim, `${c.name}: interim responses`);
  if (e.close !== undefined) assert.equal(r.close, e.close, `${c.name}: close`);
  if (e.endedAtClose !== undefined) assert.equal(r.endedAtClose, e.endedAtClose, `${c.name}: ended at close`);
  if (e.headers !== undefined) assert.deepEqual(r.headers, e.headers, c.name);
}

/** byte by byte, every 2-way split (or 64 seeded ones past 4 KiB), each against one-shot delivery */
export function assertSplitInvariant(name: string, input: Buffer, opts: DecodeOptions = {}): Outcome {
  const whole = decode(input, [], opts);
  const expected = comparable(whole);
  assert.deepEqual(comparable(decode(input, Array.from({ length: input.length }, (_, i) => i), opts)), expected, `${name}: byte by byte`);
  const rnd = prng(input.length);
  const cuts = input.length <= 4096 ? Array.from({ length: input.length - 1 }, (_, i) => i + 1) : Array.from({ length: 64 }, () => 1 + Math.floor(rnd() * (input.length - 1)));
  for (const cut of cuts) assert.deepEqual(comparable(decode(input, [cut], opts)), expected, `${name}: split at ${cut}`);
  return whole;
}

for (const c of CASES) {
  test(`${c.name} (RFC ${c.rfc})`, () => {
    check(c, decode(c.input, [], c.opts));
    assertSplitInvariant(c.name, c.input, c.opts);
  });
}

test('every corpus input gives the same events byte by byte and at every 2-way split as in one read', () => {
  const corpus = loadCorpus();
  assert.ok(corpus.length >= 20);
  for (const { name, input, opts } of corpus) assertSplitInvariant(name, input, opts);
});

test('pipelined responses in one read are decoded one after another, each framed by its own request', () => {
  const input = b(
    'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na' +
      'HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n' + // answers a HEAD: no body
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nc\r\n0\r\n\r\n' +
      'HTTP/1.1 204 No Content\r\n\r\n' +
      'HTTP/1.1 200 OK\r\n\r\nto the end',
  );
  const opts = { heads: [false, true, false, false, false] };
  const got = assertSplitInvariant('pipelined', input, opts);
  assert.equal(got.error, null);
  assert.deepEqual(got.responses.map((r) => [r.status, r.body]), [[200, 'a'], [200, ''], [200, 'c'], [204, ''], [200, 'to the end']]);
  assert.equal(got.responses[2].interim, 1);
  assert.equal(got.responses[4].endedAtClose, true);
});

test('a 64 KiB head delivered one byte at a time is copied a bounded number of times (linear, not quadratic)', () => {
  const text = longHead(MAX_HEAD_BYTES);
  const input = b(text + '\r\n\r\nok');
  const got = decode(input, Array.from({ length: input.length }, (_, i) => i));
  assert.equal(got.error, null);
  assert.equal(got.responses[0].headers[1].length, text.length - 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pad: '.length);
  // each byte once on arrival, plus the doublings (less than the final size); concatenating per read is n^2/2 = 2 GiB
  assert.ok(got.copied <= 2 * input.length, `${got.copied} bytes copied for a ${input.length}-byte head`);
  // and the same head in one read is parsed where it lies, without a copy
  assert.equal(decode(input).copied, 0);
});

test('body slices are views of the read, never copies, and a chunked body comes as its chunk-data ranges', () => {
  const dec = new H1Decoder();
  const buf = b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n');
  dec.begin(false);
  const events: (number | string)[] = [];
  let pos = 0;
  for (let i = 0; i < 10; i++) {
    const ev = dec.execute(buf, pos, buf.length);
    pos = dec.pos;
    events.push(ev === H1_BODY ? buf.toString('latin1', dec.bodyStart, dec.bodyEnd) : ev);
    if (ev === H1_END || ev === H1_ERROR) break;
  }
  assert.deepEqual(events, [H1_HEAD, 'abc', 'de', H1_END]);
  assert.equal(pos, buf.length);
  assert.equal(dec.copiedBytes, 0);
});

test('bytes after a response that nobody asked for are refused, not read as another response', () => {
  const dec = new H1Decoder();
  const buf = b('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n');
  dec.begin(false);
  assert.equal(dec.execute(buf, 0, buf.length), H1_HEAD);
  assert.equal(dec.execute(buf, dec.pos, buf.length), H1_END);
  assert.equal(dec.execute(buf, dec.pos, buf.length), H1_ERROR);
  assert.equal(dec.error, 'bytes after the end of the response');
});

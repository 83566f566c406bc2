import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResponseHead, parseResponseHead } from '../../src/upstream/h1-parse.js';

/** The response head parser: which field lines are forwarded, as strings and as the raw bytes the client gets. */

function parse(text: string): ResponseHead {
  const head = new ResponseHead();
  assert.equal(parseResponseHead(text, head, false, Buffer.from(text, 'latin1'), 0), true, head.error ?? '');
  return head;
}

function forwardedBytes(head: ResponseHead): string {
  const out = Buffer.alloc(4096);
  return out.toString('latin1', 0, head.copyLines(out, 0));
}

test('framing and hop-by-hop fields are dropped, the rest forwarded as received', () => {
  const head = parse('HTTP/1.1 200 OK\r\nServer: s\r\nDate: d\r\nContent-Length: 2\r\nX-A:  spaced  \r\nProxy-Foo: p\r\nKeep-Alive: 5');
  assert.equal(head.contentLength, 2);
  assert.deepEqual(head.list(), ['Server', 's', 'X-A', 'spaced']);
  assert.equal(forwardedBytes(head), '\r\nServer: s\r\nX-A:  spaced  ');
});

test('fields named by Connection are hop-by-hop too and leave both forms', () => {
  const head = parse('HTTP/1.1 200 OK\r\nA: 1\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\nB: 2\r\nC: 3\r\nContent-Length: 2');
  assert.equal(head.close, false);
  assert.deepEqual(head.list(), ['A', '1', 'B', '2', 'C', '3']);
  assert.equal(forwardedBytes(head), '\r\nA: 1\r\nB: 2\r\nC: 3');
});

test('a broken field line is refused with the precise reason', () => {
  for (const [line, reason] of [
    [' folded', 'obsolete line folding'],
    ['No-Colon', 'header line without a colon'],
    ['Bad Name: x', 'invalid header name'],
    ['X: a\x01b', 'control character in a header value'],
  ]) {
    const head = new ResponseHead();
    assert.equal(parseResponseHead(`HTTP/1.1 200 OK\r\nA: 1\r\n${line}`, head, false), false, line);
    assert.equal(head.error, reason);
  }
});

test('a head equal to the last one parsed gives the same result; HEAD, a failure and other bytes are parsed afresh', () => {
  const text = 'HTTP/1.1 200 OK\r\nServer: s\r\nDate: Thu, 03 Dec 2026 11:00:00 GMT\r\nContent-Length: 5\r\nConnection: keep-alive, x-hop\r\nX-Hop: h\r\nX-A: a';
  const first = parse(text);
  // a new string with the same bytes, in another place of another buffer: the offsets are into its own text
  const again = new ResponseHead();
  const copy = ' '.repeat(7) + text;
  assert.equal(parseResponseHead(copy.slice(7), again, false, Buffer.from(copy, 'latin1'), 7), true);
  for (const h of [first, again]) {
    assert.equal(h.status, 200);
    assert.equal(h.bodyKind, 1 /* BODY_LENGTH */);
    assert.equal(h.contentLength, 5);
    assert.equal(h.close, false);
    assert.equal(h.date, 'Thu, 03 Dec 2026 11:00:00 GMT');
    assert.deepEqual(h.list(), ['Server', 's', 'X-A', 'a']);
    assert.equal(forwardedBytes(h), '\r\nServer: s\r\nX-A: a');
  }
  // the same bytes answering a HEAD request have no body
  const head = new ResponseHead();
  assert.equal(parseResponseHead(text, head, true, Buffer.from(text, 'latin1'), 0), true);
  assert.equal(head.bodyKind, 0 /* BODY_NONE */);
  // an invalid head in between is refused, and is not remembered as the last one
  const bad = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6';
  const refused = new ResponseHead();
  assert.equal(parseResponseHead(bad, refused, false), false);
  assert.equal(parseResponseHead(bad, new ResponseHead(), false), false);
  assert.equal(parse(text).contentLength, 5);
  assert.equal(parse(text.replace('Content-Length: 5', 'Content-Length: 7')).contentLength, 7);
  // an empty text never matches the empty "no last head"
  assert.equal(parseResponseHead('', new ResponseHead(), false), false);
});

test('the raw field lines are copied byte for byte whatever their lengths, offsets and bytes', () => {
  // values from empty to past the 256-byte bulk threshold, obs-text included, in a source buffer at an offset
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  const fields: string[] = [];
  for (let n = 0; n < 40; n++) {
    const length = n < 12 ? n : next() % 320;
    let v = '';
    for (let i = 0; i < length; i++) {
      const c = 0x21 + (next() % 0xde); // visible ASCII and obs-text, DEL left out
      v += String.fromCharCode(c >= 0x7f ? c + 1 : c);
    }
    fields.push(`X-F${n}: ${v}`);
  }
  const text = 'HTTP/1.1 200 OK\r\n' + fields.join('\r\n') + '\r\nContent-Length: 0';
  const prefix = 'HTTP/1.1 204 No Content\r\n\r\n'; // a response before it in the same read
  const source = Buffer.from(prefix + text + '\r\n\r\n', 'latin1');
  const head = new ResponseHead();
  assert.equal(parseResponseHead(text, head, false, source, prefix.length), true, head.error ?? '');
  for (const at of [0, 1, 2, 3]) {
    const out = Buffer.alloc(16384, 0x2e);
    const end = head.copyLines(out, at);
    assert.equal(out.toString('latin1', at, end), '\r\n' + fields.join('\r\n'), `output offset ${at}`);
    assert.equal(out[at - 1] ?? 0x2e, 0x2e, 'nothing written before the offset');
    assert.equal(out[end], 0x2e, 'nothing written after the end');
  }
  assert.equal(head.copyLines(Buffer.alloc(100), 0), -1, 'a head buffer too small is reported, not overrun');
});

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

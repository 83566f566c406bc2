import { MAX_CHUNK_EXT_BYTES, MAX_HEAD_BYTES, MAX_TRAILER_BYTES } from '../../src/upstream/h1-decoder.js';
import type { DecodeOptions } from './h1-decode.js';

/**
 * Hostile upstream responses and what the decoder must make of each, with the RFC 9112 (or 9110) section that
 * decides it. Used by the decoder's unit test and by the differential check against llhttp.
 */

export const b = (s: string) => Buffer.from(s, 'latin1');
export const ok = (status: number, body = '', extra: Partial<{ extra: number; interim: number; close: boolean; endedAtClose: boolean; headers: string[] }> = {}) => ({ status, body, ...extra });

export interface Case {
  name: string;
  rfc: string;
  input: Buffer;
  opts?: DecodeOptions;
  /** the completed response, or the reason it is refused */
  expect: ReturnType<typeof ok> | { error: string };
}

export const longHead = (bytes: number) => {
  const start = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pad: ';
  return start + 'p'.repeat(bytes - start.length);
};

export const CASES: Case[] = [
  // ------------------------------------------------------------------ framing by length
  { name: 'Content-Length body', rfc: '9112 6.3 item 6', input: b('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello'), expect: ok(200, 'hello') },
  { name: 'Content-Length: 5, 5 is one length', rfc: '9110 8.6', input: b('HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello'), expect: ok(200, 'hello') },
  { name: 'two identical Content-Length fields', rfc: '9110 8.6', input: b('HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\nhello'), expect: ok(200, 'hello') },
  { name: 'Content-Length: 5, 6', rfc: '9112 6.3 item 5', input: b('HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!'), expect: { error: 'invalid Content-Length' } },
  { name: 'two differing Content-Length fields', rfc: '9112 6.3 item 5', input: b('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!'), expect: { error: 'conflicting Content-Length headers' } },
  { name: 'Content-Length with a sign', rfc: '9110 8.6 (1*DIGIT)', input: b('HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello'), expect: { error: 'invalid Content-Length' } },
  { name: 'Content-Length in hex', rfc: '9110 8.6 (1*DIGIT)', input: b('HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\nhello'), expect: { error: 'invalid Content-Length' } },
  { name: 'empty Content-Length', rfc: '9110 8.6 (1*DIGIT)', input: b('HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n'), expect: { error: 'invalid Content-Length' } },
  { name: 'Content-Length: 5,,5', rfc: '9110 8.6 (list of valid lengths)', input: b('HTTP/1.1 200 OK\r\nContent-Length: 5,,5\r\n\r\nhello'), expect: { error: 'invalid Content-Length' } },
  { name: 'Content-Length followed by a 0xA0 byte', rfc: '9110 8.6 (1*DIGIT; 0xA0 is obs-text, not OWS)', input: b('HTTP/1.1 200 OK\r\nContent-Length: 2\xa0\r\n\r\nok'), expect: { error: 'invalid Content-Length' } },
  { name: 'a body cut short by close', rfc: '9112 8 (incomplete message)', input: b('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'), expect: { error: 'connection closed mid-body' } },
  // ------------------------------------------------------------------ Transfer-Encoding
  { name: 'chunked body', rfc: '9112 7.1', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n'), expect: ok(200, 'hello world') },
  { name: 'mixed-case Chunked', rfc: '9112 7 (coding names are case-insensitive)', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: ChUnKeD\r\n\r\n2\r\nok\r\n0\r\n\r\n'), expect: ok(200, 'ok') },
  { name: 'upper-case hex chunk sizes', rfc: '9112 7.1 (HEXDIG)', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n'), expect: ok(200, '0123456789') },
  { name: 'Transfer-Encoding: chunked with a trailing tab', rfc: '9110 5.5 (OWS is not part of the value)', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\t\r\n\r\n2\r\nok\r\n0\r\n\r\n'), expect: ok(200, 'ok') },
  { name: 'Content-Length with a trailing tab', rfc: '9110 5.5 (OWS is not part of the value)', input: b('HTTP/1.1 200 OK\r\nContent-Length: 2\t\r\n\r\nok'), expect: ok(200, 'ok') },
  { name: 'Transfer-Encoding: gzip, chunked (a coding we cannot forward)', rfc: '9112 6.1; 9110 7.6.1 (TE is hop-by-hop)', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n'), expect: { error: 'unsupported Transfer-Encoding' } },
  { name: 'Transfer-Encoding: chunked, gzip (chunked not final)', rfc: '9112 6.3 item 4 (we refuse rather than read to close)', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n'), expect: { error: 'unsupported Transfer-Encoding' } },
  { name: 'chunked applied twice', rfc: '9112 6.1 (chunked MUST NOT be applied more than once)', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'), expect: { error: 'unsupported Transfer-Encoding' } },
  { name: 'Transfer-Encoding: identity', rfc: '9112 7 (identity is no longer a coding)', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nabc'), expect: { error: 'unsupported Transfer-Encoding' } },
  { name: 'Transfer-Encoding with Content-Length', rfc: '9112 6.3 item 3 (ought to be handled as an error)', input: b('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'), expect: { error: 'both Content-Length and Transfer-Encoding' } },
  { name: 'chunk size of 13 hex digits', rfc: '9112 7.1 (recipient MUST anticipate and reject overflow)', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000\r\n'), expect: { error: 'chunk size too large' } },
  { name: 'chunk size with 0x', rfc: '9112 7.1 (1*HEXDIG)', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n'), expect: { error: 'invalid chunk size' } },
  { name: 'chunk size with a leading space', rfc: '9112 7.1 (1*HEXDIG)', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n'), expect: { error: 'invalid chunk size' } },
  { name: 'chunk-size line ending in bare LF', rfc: '9112 7.1, 2.2 (we refuse bare LF)', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n'), expect: { error: 'invalid chunk size' } },
  { name: 'chunk extension ending in bare LF', rfc: '9112 7.1.1, 2.2', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nhello\r\n0\r\n\r\n'), expect: { error: 'invalid chunk extension' } },
  { name: 'chunk data longer than its size', rfc: '9112 7.1', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello!\r\n0\r\n\r\n'), expect: { error: 'chunk data longer than its size' } },
  { name: 'chunk data ending in CR alone', rfc: '9112 7.1', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r0\r\n\r\n'), expect: { error: 'invalid chunk data line ending' } },
  { name: 'chunk extensions are ignored', rfc: '9112 7.1.1', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=val;q="a b"\r\nhello\r\n1 ; x\r\n!\r\n0;end\r\n\r\n'), expect: ok(200, 'hello!') },
  { name: 'whitespace after the chunk size, then no extension', rfc: '9112 7.1.1 (BWS ";" …: neither size nor extension)', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n0\r\n\r\n'), expect: { error: 'invalid chunk size' } },
  { name: 'trailing whitespace after the chunk size', rfc: '9112 7.1.1 (BWS; harmless, accepted)', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 \t\r\nhello\r\n0\r\n\r\n'), expect: ok(200, 'hello') },
  { name: 'a chunk extension at the limit', rfc: '9112 7.1.1', input: b(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;${'e'.repeat(MAX_CHUNK_EXT_BYTES)}\r\nok\r\n0\r\n\r\n`), expect: ok(200, 'ok') },
  { name: 'a chunk extension over 16 KiB', rfc: '9112 7.1.1 (a limit, as Node has since CVE-2024-22019)', input: b(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;${'e'.repeat(MAX_CHUNK_EXT_BYTES + 1)}\r\nok\r\n0\r\n\r\n`), expect: { error: 'chunk extension too long' } },
  { name: 'NUL in a chunk extension', rfc: '9110 5.6.2 (token), 5.6.4 (quoted-string)', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\0\r\nhello\r\n0\r\n\r\n'), expect: { error: 'invalid chunk extension' } },
  { name: 'trailer fields are read and dropped', rfc: '9112 7.1.2', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 1\r\nX-More: 2\r\n\r\n'), expect: ok(200, 'ok') },
  { name: 'a trailer section at the limit', rfc: '9112 7.1.2', input: b(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: ${'t'.repeat(MAX_TRAILER_BYTES - 7)}\r\n\r\n`), expect: ok(200, '') },
  { name: 'a trailer section over 16 KiB', rfc: '9112 7.1.2 (a recipient limit)', input: b(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: ${'t'.repeat(MAX_TRAILER_BYTES)}\r\n\r\n`), expect: { error: 'trailer section too large' } },
  { name: 'last chunk then bare LF', rfc: '9112 7.1, 2.2 (we refuse bare LF)', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n'), expect: { error: 'invalid trailer section' } },
  { name: 'a trailer line without a colon', rfc: '9112 7.1.2 (trailer-section = *( field-line CRLF ))', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n world\r\n0\r\n\r\n'), expect: { error: 'invalid trailer section' } },
  { name: 'a trailer field with an empty name', rfc: '9112 7.1.2; 9110 5.1 (field-name = token)', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n: x\r\n\r\n'), expect: { error: 'invalid trailer section' } },
  { name: 'a control character in a trailer value', rfc: '9110 5.5', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\x1eb\r\n\r\n'), expect: { error: 'invalid trailer section' } },
  { name: 'NUL in a trailer', rfc: '9110 5.5', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: \0\r\n\r\n'), expect: { error: 'invalid trailer section' } },
  { name: 'chunked body cut short by close', rfc: '9112 8 (incomplete message)', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel'), expect: { error: 'connection closed mid-body' } },
  // ------------------------------------------------------------------ bodies that do not exist
  { name: '100 Continue and 103 Early Hints before the final response', rfc: '9110 15.2; 9112 6.3 item 1', input: b('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'), expect: ok(200, 'ok', { interim: 2 }) },
  { name: 'a 1xx never has a body, whatever it says', rfc: '9112 6.3 item 1', input: b('HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'), expect: ok(200, 'ok', { interim: 1 }) },
  { name: '101 Switching Protocols (never asked for)', rfc: '9110 15.2.2, 7.8', input: b('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'), expect: { error: 'unexpected protocol switch' } },
  { name: 'the answer to HEAD has no body despite Content-Length', rfc: '9112 6.3 item 1; 9110 9.3.2', input: b('HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n'), opts: { heads: [true] }, expect: ok(200, '') },
  { name: 'the answer to HEAD has no body despite chunked', rfc: '9112 6.3 item 1', input: b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'), opts: { heads: [true] }, expect: ok(200, '') },
  { name: '204 with a body: the bytes are not its body', rfc: '9112 6.3 item 1; 9110 15.3.5', input: b('HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello'), expect: ok(204, '', { extra: 5 }) },
  { name: '304 with a body: the bytes are not its body', rfc: '9112 6.3 item 1; 9110 15.4.5', input: b('HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'), expect: ok(304, '', { extra: 15 }) },
  { name: 'no length and no chunking: the body runs to close', rfc: '9112 6.3 item 8', input: b('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close'), expect: ok(200, 'until close', { close: true, endedAtClose: true }) },
  { name: 'HTTP/1.0 closes unless it asks to be kept', rfc: '9112 9.3', input: b('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok'), expect: ok(200, 'ok', { close: true }) },
  { name: 'HTTP/1.0 with keep-alive stays open', rfc: '9112 9.3; RFC 7230 A.1.2', input: b('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok'), expect: ok(200, 'ok', { close: false }) },
  { name: 'Connection: close', rfc: '9112 9.6', input: b('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok'), expect: ok(200, 'ok', { close: true }) },
  // ------------------------------------------------------------------ the head itself
  { name: 'a head of exactly 64 KiB', rfc: '9112 2.3; 9110 5.4 (a recipient limit)', input: b(longHead(MAX_HEAD_BYTES) + '\r\n\r\nok'), expect: ok(200, 'ok') },
  { name: 'a head of 64 KiB + 1', rfc: '9110 5.4', input: b(longHead(MAX_HEAD_BYTES + 1) + '\r\n\r\nok'), expect: { error: 'response head too large' } },
  { name: 'a head of 100 KiB', rfc: '9110 5.4', input: b(longHead(100 * 1024) + '\r\n\r\nok'), expect: { error: 'response head too large' } },
  { name: 'bare LF line endings throughout', rfc: '9112 2.2 (a recipient MAY accept; we refuse)', input: b('HTTP/1.1 200 OK\nContent-Length: 2\n\nok'), expect: { error: 'bare LF in the response head' } },
  { name: 'a bare LF hiding a field in the reason phrase', rfc: '9112 2.2, 4', input: b('HTTP/1.1 200 OK\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nok'), expect: { error: 'bare LF in the response head' } },
  { name: 'a bare LF hiding a field in a value', rfc: '9112 2.2, 5', input: b('HTTP/1.1 200 OK\r\nX-A: 1\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nok'), expect: { error: 'bare LF in the response head' } },
  { name: 'a head of bare LFs that never ends in CRLFCRLF', rfc: '9112 2.2', input: b('HTTP/1.1 200 OK\nContent-Length: 0\n\n'), opts: { close: false }, expect: { error: 'bare LF in the response head' } },
  { name: 'obs-fold', rfc: '9112 5.2 (a proxy MUST reject with 502 or replace by SP)', input: b('HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 0\r\n\r\n'), expect: { error: 'obsolete line folding' } },
  { name: 'obs-fold with a tab', rfc: '9112 5.2', input: b('HTTP/1.1 200 OK\r\nX-A: one\r\n\ttwo\r\nContent-Length: 0\r\n\r\n'), expect: { error: 'obsolete line folding' } },
  { name: 'NUL in a field value', rfc: '9110 5.5 (reject or replace by SP)', input: b('HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n'), expect: { error: 'control character in a header value' } },
  { name: 'CR alone in a field value', rfc: '9110 5.5', input: b('HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n'), expect: { error: 'control character in a header value' } },
  { name: 'whitespace before the colon', rfc: '9112 5.1', input: b('HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok'), expect: { error: 'invalid header name' } },
  { name: 'a field line without a colon', rfc: '9112 5', input: b('HTTP/1.1 200 OK\r\nnonsense\r\nContent-Length: 0\r\n\r\n'), expect: { error: 'header line without a colon' } },
  { name: 'an empty field name', rfc: '9110 5.1 (field-name = token)', input: b('HTTP/1.1 200 OK\r\n: x\r\nContent-Length: 0\r\n\r\n'), expect: { error: 'invalid header name' } },
  { name: 'a field named only Proxy- is hop-by-hop too', rfc: '9110 7.6.1 (the Proxy- prefix)', input: b('HTTP/1.1 200 OK\r\nProxy-:Thing: p\r\nServer: s\r\nContent-Length: 0\r\n\r\n'), expect: ok(200, '', { headers: ['Server', 's'] }) },
  { name: 'a 0xA0 byte at the end of a value is kept (OWS is SP and HTAB only)', rfc: '9110 5.6.3, 5.5', input: b('HTTP/1.1 200 OK\r\nX-A: a\xa0 \r\nContent-Length: 0\r\n\r\n'), expect: ok(200, '', { headers: ['X-A', 'a\xa0'] }) },
  { name: 'obs-text in a value is kept byte for byte', rfc: '9110 5.5 (obs-text)', input: b('HTTP/1.1 200 OK\r\nX-A: caf\xe9\r\nContent-Length: 0\r\n\r\n'), expect: ok(200, '', { headers: ['X-A', 'caf\xe9'] }) },
  // ------------------------------------------------------------------ status lines
  { name: 'status line without a reason phrase or its SP', rfc: '9112 4 (SHOULD ignore the reason; accepted as llhttp does)', input: b('HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n'), expect: ok(404) },
  { name: 'status line with an empty reason phrase', rfc: '9112 4', input: b('HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n'), expect: ok(404) },
  { name: 'reason phrase with obs-text and a tab', rfc: '9112 4 (reason-phrase)', input: b('HTTP/1.1 200 \xe9t\xe9\tok\r\nContent-Length: 0\r\n\r\n'), expect: ok(200) },
  { name: 'CR alone in the reason phrase', rfc: '9112 4 (reason-phrase has no CTL)', input: b('HTTP/1.1 200 O\rK\r\nContent-Length: 0\r\n\r\n'), expect: { error: 'control character in the reason phrase' } },
  { name: 'NUL in the reason phrase', rfc: '9112 4', input: b('HTTP/1.1 200 O\0K\r\nContent-Length: 0\r\n\r\n'), expect: { error: 'control character in the reason phrase' } },
  { name: 'four-digit status', rfc: '9112 4 (status-code = 3DIGIT)', input: b('HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n'), expect: { error: 'malformed status line' } },
  { name: 'two spaces before the status', rfc: '9112 4', input: b('HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n'), expect: { error: 'malformed status code' } },
  { name: 'status 600', rfc: '9110 15 (100-599)', input: b('HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n'), expect: { error: 'malformed status code' } },
  { name: 'status 099', rfc: '9110 15 (100-599)', input: b('HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n'), expect: { error: 'malformed status code' } },
  { name: 'status 20x', rfc: '9112 4 (3DIGIT)', input: b('HTTP/1.1 20x OK\r\nContent-Length: 0\r\n\r\n'), expect: { error: 'malformed status code' } },
  { name: 'HTTP/1.2', rfc: '9112 2.3 (a 1.x we do not speak)', input: b('HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n'), expect: { error: 'unsupported HTTP version' } },
  { name: 'HTTP/2 on an HTTP/1.1 connection', rfc: '9112 2.3', input: b('HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n'), expect: { error: 'malformed status line' } },
  { name: 'lower-case http', rfc: '9112 2.3 (HTTP-name is case-sensitive)', input: b('http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'), expect: { error: 'malformed status line' } },
  { name: 'a blank line before the status line', rfc: '9112 2.2 (only a server skips it, for requests)', input: b('\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'), expect: { error: 'malformed status line' } },
  { name: 'not HTTP at all (ICY)', rfc: '9112 4', input: b('ICY 200 OK\r\nContent-Length: 0\r\n\r\n'), expect: { error: 'malformed status line' } },
  { name: 'no space after the status code', rfc: '9112 4', input: b('HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n'), expect: { error: 'malformed status line' } },
  { name: 'a head cut short by close', rfc: '9112 8 (incomplete message)', input: b('HTTP/1.1 200 OK\r\nContent-Len'), expect: { error: 'connection closed before the response head ended' } },
];


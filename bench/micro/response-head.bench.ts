/**
 * parseResponseHead: the strict parse of every upstream response head (status line, header validation, framing
 * and hop-by-hop handling). Inputs: a minimal head, a typical API response, a large one with cookies, a chunked one.
 */
import { defineSuite, consume } from '../../src/bench/micro-api.js';
import { parseResponseHead, ResponseHead } from '../../src/upstream/h1-parse.js';

const HEADS: Record<string, string> = {
  'minimal (3 headers)': 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100\r\nconnection: keep-alive',
  'nginx-like (6 headers)':
    'HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 22 Nov 2026 02:28:01 GMT\r\nContent-Type: application/json\r\nContent-Length: 1234\r\nConnection: keep-alive\r\nETag: "5f8a-1234"',
  'large (16 headers, cookies)': [
    'HTTP/1.1 200 OK',
    'Server: origin',
    'Date: Sun, 22 Nov 2026 02:28:01 GMT',
    'Content-Type: application/json; charset=utf-8',
    'Content-Length: 48213',
    'Connection: keep-alive',
    'Cache-Control: private, max-age=0, no-cache',
    'Vary: Accept-Encoding, Origin',
    'ETag: W/"bc45-18c9a1f0"',
    'Set-Cookie: session=0123456789abcdef0123456789abcdef; Path=/; HttpOnly; Secure; SameSite=Lax',
    'Set-Cookie: prefs=compact; Path=/; Max-Age=31536000',
    'X-Request-Id: 7f3a9c2e-1b4d-4e8f-9a6b-2c1d0e9f8a7b',
    'X-RateLimit-Limit: 1000',
    'X-RateLimit-Remaining: 998',
    'Strict-Transport-Security: max-age=63072000; includeSubDomains',
    'X-Content-Type-Options: nosniff',
    'Access-Control-Allow-Origin: https://app.example.com',
  ].join('\r\n'),
  'chunked (4 headers)': 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nCache-Control: no-cache\r\nConnection: keep-alive',
};

export default defineSuite({
  name: 'response-head',
  description: 'parseResponseHead(text, head, false) on typical upstream response heads',
  cases() {
    const head = new ResponseHead();
    return Object.entries(HEADS).map(([name, text]) => {
      if (!parseResponseHead(text, head, false)) throw new Error(`response-head: "${name}" was refused: ${head.error}`);
      const reps = 16;
      return {
        name,
        ops: reps,
        fn: () => {
          for (let i = 0; i < reps; i++) consume(parseResponseHead(text, head, false));
        },
      };
    });
  },
});

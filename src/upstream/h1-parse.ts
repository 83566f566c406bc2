/**
 * Strict parsing of an HTTP/1.1 response head (RFC 9112 sections 4-6), as strict as the front end is with requests:
 * obs-fold, whitespace before a colon, control characters in values, a second differing Content-Length,
 * Content-Length together with Transfer-Encoding, and transfer codings other than "chunked" are all refused.
 */

export const BODY_NONE = 0;
export const BODY_LENGTH = 1;
export const BODY_CHUNKED = 2;
export const BODY_UNTIL_CLOSE = 3;

/** Hop-by-hop and framing headers the gateway never forwards in a response (uWS writes its own framing and Date). */
const DROP_RESPONSE = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'content-length', 'date', 'proxy-authenticate', 'proxy-authorization',
  // the gateway writes its own request id on every response
  'x-request-id',
]);

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const BAD_VALUE = /[\0-\x08\x0a-\x1f\x7f]/;

export class ResponseHead {
  status = 0;
  /** forwarded headers, flat: name, value, name, value… (reused between responses of one connection) */
  readonly headers: string[] = [];
  bodyKind = BODY_NONE;
  contentLength = -1;
  /** the upstream asked to close the connection, or spoke HTTP/1.0 */
  close = false;
  error: string | null = null;

  reset(): void {
    this.status = 0;
    this.headers.length = 0;
    this.bodyKind = BODY_NONE;
    this.contentLength = -1;
    this.close = false;
    this.error = null;
  }
}

function fail(head: ResponseHead, why: string): false {
  head.error = why;
  return false;
}

/**
 * Parses `text` (the head without its final CRLFCRLF, decoded as latin1) into `head`.
 * `requestMethodIsHead` decides framing per RFC 9112 6.3. Returns false with head.error set when invalid.
 */
export function parseResponseHead(text: string, head: ResponseHead, requestMethodIsHead: boolean): boolean {
  head.reset();
  let lineEnd = text.indexOf('\r\n');
  if (lineEnd < 0) lineEnd = text.length;
  // status-line = HTTP-version SP status-code SP [ reason-phrase ]
  if (!text.startsWith('HTTP/1.') || text.charCodeAt(8) !== 32) return fail(head, 'malformed status line');
  const minor = text.charCodeAt(7) - 48;
  if (minor !== 0 && minor !== 1) return fail(head, 'unsupported HTTP version');
  const s0 = text.charCodeAt(9) - 48, s1 = text.charCodeAt(10) - 48, s2 = text.charCodeAt(11) - 48;
  if (s0 < 1 || s0 > 5 || s1 < 0 || s1 > 9 || s2 < 0 || s2 > 9) return fail(head, 'malformed status code');
  if (lineEnd > 12 && text.charCodeAt(12) !== 32) return fail(head, 'malformed status line');
  head.status = s0 * 100 + s1 * 10 + s2;
  head.close = minor === 0;

  let chunked = false;
  let transferEncoding = false;
  let extraConnectionTokens: string[] | null = null;
  const headers = head.headers;
  let pos = lineEnd + 2;
  while (pos < text.length) {
    let end = text.indexOf('\r\n', pos);
    if (end < 0) end = text.length;
    const first = text.charCodeAt(pos);
    if (first === 32 || first === 9) return fail(head, 'obsolete line folding');
    const colon = text.indexOf(':', pos);
    if (colon < 0 || colon > end) return fail(head, 'header line without a colon');
    const name = text.slice(pos, colon);
    if (!TOKEN.test(name)) return fail(head, 'invalid header name');
    let vs = colon + 1;
    let ve = end;
    while (vs < ve && (text.charCodeAt(vs) === 32 || text.charCodeAt(vs) === 9)) vs++;
    while (ve > vs && (text.charCodeAt(ve - 1) === 32 || text.charCodeAt(ve - 1) === 9)) ve--;
    const value = text.slice(vs, ve);
    if (BAD_VALUE.test(value)) return fail(head, 'control character in a header value');
    pos = end + 2;
    const lower = name.toLowerCase();
    // Proxy-* fields are all hop-by-hop (RFC 9110 7.6.1 lists the ones in use; the prefix is reserved for them).
    if (!DROP_RESPONSE.has(lower) && !(lower.charCodeAt(0) === 112 && lower.startsWith('proxy-'))) {
      headers.push(name, value);
      continue;
    }
    if (lower === 'content-length') {
      const n = parseContentLength(value);
      if (n < 0) return fail(head, 'invalid Content-Length');
      if (head.contentLength >= 0 && head.contentLength !== n) return fail(head, 'conflicting Content-Length headers');
      head.contentLength = n;
    } else if (lower === 'transfer-encoding') {
      transferEncoding = true;
      if (value.toLowerCase() !== 'chunked' || chunked) return fail(head, `unsupported Transfer-Encoding "${value}"`);
      chunked = true;
    } else if (lower === 'connection') {
      for (const raw of value.split(',')) {
        const token = raw.trim().toLowerCase();
        if (token === 'close') head.close = true;
        else if (token === 'keep-alive') { if (minor === 0) head.close = false; }
        else if (token) (extraConnectionTokens ??= []).push(token);
      }
    }
  }
  if (transferEncoding && head.contentLength >= 0) return fail(head, 'both Content-Length and Transfer-Encoding');
  if (extraConnectionTokens) {
    // Headers named by Connection are hop-by-hop too (RFC 9110 7.6.1).
    for (let i = headers.length - 2; i >= 0; i -= 2) {
      if (extraConnectionTokens.includes(headers[i].toLowerCase())) headers.splice(i, 2);
    }
  }

  const status = head.status;
  if (requestMethodIsHead || status === 204 || status === 304 || status < 200) head.bodyKind = BODY_NONE;
  else if (chunked) head.bodyKind = BODY_CHUNKED;
  else if (head.contentLength >= 0) head.bodyKind = head.contentLength === 0 ? BODY_NONE : BODY_LENGTH;
  else {
    head.bodyKind = BODY_UNTIL_CLOSE;
    head.close = true;
  }
  return true;
}

/** Content-Length: 1*DIGIT, or a list of identical values ("5, 5"); -1 when invalid. */
export function parseContentLength(value: string): number {
  let result = -1;
  for (const part of value.includes(',') ? value.split(',') : [value]) {
    const v = part.trim();
    if (v.length === 0 || v.length > 15) return -1;
    let n = 0;
    for (let i = 0; i < v.length; i++) {
      const d = v.charCodeAt(i) - 48;
      if (d < 0 || d > 9) return -1;
      n = n * 10 + d;
    }
    if (result >= 0 && result !== n) return -1;
    result = n;
  }
  return result;
}

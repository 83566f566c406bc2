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
/** the names of DROP_RESPONSE by length, to match a field name in place (dropIndex) */
const DROP_NAMES = [...DROP_RESPONSE];
const DROP_BY_LENGTH: (number[] | undefined)[] = [];
DROP_NAMES.forEach((n, i) => (DROP_BY_LENGTH[n.length] ??= []).push(i));
const N_CONTENT_LENGTH = DROP_NAMES.indexOf('content-length');
const N_DATE = DROP_NAMES.indexOf('date');
const N_TRANSFER_ENCODING = DROP_NAMES.indexOf('transfer-encoding');
const N_CONNECTION = DROP_NAMES.indexOf('connection');

/** `text` from `at` starts with the lower-case `name`, in any case (a field name: token characters only) */
function nameAt(text: string, at: number, name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    // | 0x20 lower-cases a letter; of the token characters only letters map onto letters, and '-' onto itself
    if ((text.charCodeAt(at + i) | 0x20) !== name.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * The index in DROP_NAMES of the field name at [pos, pos + length), -2 for another Proxy-* name (all hop-by-hop:
 * RFC 9110 7.6.1 lists the ones in use, the prefix is reserved for them), -1 for a name that is forwarded. Compared in
 * place: no lower-cased copy, no hash, for the four or five names a typical response has.
 */
function dropIndex(text: string, pos: number, length: number): number {
  const list = DROP_BY_LENGTH[length];
  if (list !== undefined) {
    for (let k = 0; k < list.length; k++) if (nameAt(text, pos, DROP_NAMES[list[k]])) return list[k];
  }
  return length >= 6 && nameAt(text, pos, 'proxy-') ? -2 : -1;
}

/**
 * Every field line at once (RFC 9110 5.1, 5.5): a token, a colon, then visible characters, SP, HTAB or obs-text.
 * One linear scan instead of a test per line; it also refuses obs-fold (a line that starts with SP or HTAB),
 * whitespace before the colon, and CR, LF or NUL inside a line.
 */
const FIELD_LINES = /(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*(?:\r\n(?!$)|$))*$/y;

/**
 * The headers a response forwards, as its two consumers want them: raw bytes copied straight into the client's
 * response head (no string per field, bytes >= 0x80 left as they came), or name/value strings for policies.
 */
export interface ForwardedHeaders {
  /** name, value, name, value… (values decoded as latin1, one char per byte) */
  list(): readonly string[];
  /**
   * Writes each forwarded field line, preceded by CRLF, into `out` from `offset`; returns the offset after them,
   * or -1 when they do not fit.
   */
  copyLines(out: Buffer, offset: number): number;
  /** the upstream's Date header, which is not among the forwarded fields; undefined when absent or not kept */
  readonly date?: string;
}

export class ResponseHead implements ForwardedHeaders {
  status = 0;
  bodyKind = BODY_NONE;
  contentLength = -1;
  /** the upstream asked to close the connection, or spoke HTTP/1.0 */
  close = false;
  error: string | null = null;
  /** the upstream's Date (dropped from the forwarded fields: uWS writes its own), for a cache's age arithmetic */
  date: string | undefined = undefined;
  /** the head as latin1 text, and where its bytes are (valid only while the response head is handled) */
  text = '';
  source: Buffer | null = null;
  base = 0;
  /** forwarded field lines: [start, end) offsets into `text`, adjacent lines merged into one range */
  readonly keep: number[] = [];
  #list: string[] = [];
  #listed = false;

  reset(): void {
    this.status = 0;
    this.bodyKind = BODY_NONE;
    this.contentLength = -1;
    this.close = false;
    this.error = null;
    this.date = undefined;
    // pop, not `length = 0`: that is a generic store through the length accessor (≈450 instructions; docs/performance.md)
    const keep = this.keep;
    while (keep.length > 0) keep.pop();
    this.#listed = false;
  }

  list(): readonly string[] {
    if (this.#listed) return this.#list;
    const out = this.#list;
    while (out.length > 0) out.pop();
    const text = this.text;
    forEachKeptLine(text, this.keep, (start, colon, end) => out.push(text.slice(start, colon), trimOws(text.slice(colon + 1, end))));
    this.#listed = true;
    return out;
  }

  copyLines(out: Buffer, offset: number): number {
    const src = this.source!;
    const sv = viewOf(src);
    const ov = outViewOf(out);
    const keep = this.keep;
    for (let k = 0; k < keep.length; k += 2) {
      const from = this.base + keep[k];
      const to = this.base + keep[k + 1];
      if (offset + 2 + (to - from) > out.length) return -1;
      ov.setUint16(offset, CRLF);
      offset += 2;
      if (to - from <= 256) {
        // A short range four bytes at a time through DataViews, the rest byte by byte: a byte store into a Buffer
        // costs several times a 32-bit DataView store, and a subarray for set() is an object per range.
        let i = from;
        for (; i + 4 <= to; i += 4, offset += 4) ov.setUint32(offset, sv.getUint32(i, true), true);
        for (; i < to; i++) out[offset++] = src[i];
      } else {
        out.set(src.subarray(from, to), offset);
        offset += to - from;
      }
    }
    return offset;
  }
}

const CRLF = 0x0d0a;
// DataViews of the last source and output buffers copyLines saw: the read buffer and the head buffer, nearly always
let viewedSource: Buffer | null = null;
let sourceView: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
let viewedOut: Buffer | null = null;
let outView: DataView<ArrayBufferLike> = sourceView;

function viewOf(b: Buffer): DataView<ArrayBufferLike> {
  if (b !== viewedSource) {
    viewedSource = b;
    sourceView = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  return sourceView;
}

function outViewOf(b: Buffer): DataView<ArrayBufferLike> {
  if (b !== viewedOut) {
    viewedOut = b;
    outView = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  return outView;
}

/** Forwarded headers held as strings (the undici path). */
export class HeaderList implements ForwardedHeaders {
  readonly #pairs: string[];
  constructor(pairs: string[]) {
    this.#pairs = pairs;
  }
  list(): readonly string[] {
    return this.#pairs;
  }
  copyLines(out: Buffer, offset: number): number {
    const pairs = this.#pairs;
    for (let i = 0; i < pairs.length; i += 2) {
      const line = '\r\n' + pairs[i] + ': ' + pairs[i + 1];
      if (offset + line.length > out.length) return -1;
      offset += out.write(line, offset, 'latin1');
    }
    return offset;
  }
}

function fail(head: ResponseHead, why: string): false {
  head.error = why;
  return false;
}

/** Names the precise reason a head failed FIELD_LINES (only runs for a refused response). */
function fieldLineError(text: string, from: number): string {
  let pos = from;
  while (pos < text.length) {
    let end = text.indexOf('\r\n', pos);
    if (end < 0) end = text.length;
    const line = text.slice(pos, end);
    const first = line.charCodeAt(0);
    if (first === 32 || first === 9) return 'obsolete line folding';
    const colon = line.indexOf(':');
    if (colon < 0) return 'header line without a colon';
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(line.slice(0, colon))) return 'invalid header name';
    if (/[\0-\x08\x0a-\x1f\x7f]/.test(line.slice(colon + 1))) return 'control character in a header value';
    pos = end + 2;
  }
  return 'malformed header section';
}

/**
 * Parses `text` (the head without its final CRLFCRLF, decoded as latin1) into `head`; `source`/`base` say where
 * its bytes are, for copyLines. `requestMethodIsHead` decides framing per RFC 9112 6.3. Returns false with
 * head.error set when invalid.
 */
export function parseResponseHead(text: string, head: ResponseHead, requestMethodIsHead: boolean, source: Buffer | null = null, base = 0): boolean {
  if (text.length !== 0 && text === lastText && requestMethodIsHead === lastIsHead) {
    // The same bytes as the last head this thread parsed (an upstream answering request after request for the same
    // resource within one second of its Date): the same result, without the scan (about 7,000 instructions of the
    // pass-through's 49,000, native-bench/instructions.sh). A miss costs the comparison, which stops at the first
    // byte that differs, and a copy of the result.
    head.reset();
    head.text = text;
    head.source = source;
    head.base = base;
    copyResult(last, head);
    return true;
  }
  if (parseFresh(text, head, requestMethodIsHead, source, base)) {
    lastText = text;
    lastIsHead = requestMethodIsHead;
    const keep = last.keep;
    while (keep.length > 0) keep.pop();
    copyResult(head, last);
    return true;
  }
  lastText = '';
  return false;
}

/** The last head parseResponseHead parsed well in this thread ('' when none), and what it parsed to. */
let lastText = '';
let lastIsHead = false;
const last = new ResponseHead();

/** What a parse decides, from one head to another whose keep list is empty. */
function copyResult(from: ResponseHead, to: ResponseHead): void {
  to.status = from.status;
  to.bodyKind = from.bodyKind;
  to.contentLength = from.contentLength;
  to.close = from.close;
  to.date = from.date;
  const keep = from.keep;
  for (let i = 0; i < keep.length; i++) to.keep.push(keep[i]);
}

function parseFresh(text: string, head: ResponseHead, requestMethodIsHead: boolean, source: Buffer | null, base: number): boolean {
  head.reset();
  head.text = text;
  head.source = source;
  head.base = base;
  let lineEnd = text.indexOf('\r\n');
  if (lineEnd < 0) lineEnd = text.length;
  // status-line = HTTP-version SP status-code SP [ reason-phrase ]
  if (!text.startsWith('HTTP/1.') || text.charCodeAt(8) !== 32) return fail(head, 'malformed status line');
  const minor = text.charCodeAt(7) - 48;
  if (minor !== 0 && minor !== 1) return fail(head, 'unsupported HTTP version');
  const s0 = text.charCodeAt(9) - 48, s1 = text.charCodeAt(10) - 48, s2 = text.charCodeAt(11) - 48;
  if (s0 < 1 || s0 > 5 || s1 < 0 || s1 > 9 || s2 < 0 || s2 > 9) return fail(head, 'malformed status code');
  if (lineEnd > 12 && text.charCodeAt(12) !== 32) return fail(head, 'malformed status line');
  // reason-phrase = *( HTAB / SP / VCHAR / obs-text ): a CR, LF or NUL here would hide a field line from us that
  // a lenient parser downstream sees (RFC 9112 4)
  for (let i = 13; i < lineEnd; i++) {
    const c = text.charCodeAt(i);
    if ((c < 32 && c !== 9) || c === 127) return fail(head, 'control character in the reason phrase');
  }
  head.status = s0 * 100 + s1 * 10 + s2;
  head.close = minor === 0;

  let pos = lineEnd + 2;
  if (pos < text.length) {
    FIELD_LINES.lastIndex = pos; // sticky: the match must start here and (by its $) run to the end
    if (!FIELD_LINES.test(text)) return fail(head, fieldLineError(text, pos));
  }
  let chunked = false;
  let transferEncoding = false;
  let extraConnectionTokens: string[] | null = null;
  const keep = head.keep;
  while (pos < text.length) {
    let end = text.indexOf('\r\n', pos);
    if (end < 0) end = text.length;
    const colon = text.indexOf(':', pos);
    const dropped = dropIndex(text, pos, colon - pos);
    if (dropped === -1) {
      // forwarded: extend the last range when this line follows it directly
      if (keep.length > 0 && keep[keep.length - 1] + 2 === pos) keep[keep.length - 1] = end;
      else keep.push(pos, end);
      pos = end + 2;
      continue;
    }
    let vs = colon + 1;
    let ve = end;
    while (vs < ve && (text.charCodeAt(vs) === 32 || text.charCodeAt(vs) === 9)) vs++;
    while (ve > vs && (text.charCodeAt(ve - 1) === 32 || text.charCodeAt(ve - 1) === 9)) ve--;
    const value = text.slice(vs, ve);
    pos = end + 2;
    if (dropped === N_CONTENT_LENGTH) {
      const n = parseContentLength(value);
      if (n < 0) return fail(head, 'invalid Content-Length');
      if (head.contentLength >= 0 && head.contentLength !== n) return fail(head, 'conflicting Content-Length headers');
      head.contentLength = n;
    } else if (dropped === N_DATE) {
      head.date = value;
    } else if (dropped === N_TRANSFER_ENCODING) {
      transferEncoding = true;
      if (value.toLowerCase() !== 'chunked' || chunked) return fail(head, 'unsupported Transfer-Encoding');
      chunked = true;
    } else if (dropped === N_CONNECTION) {
      const v = value.toLowerCase();
      if (v === 'keep-alive') {
        if (minor === 0) head.close = false;
        continue;
      }
      if (v === 'close') {
        head.close = true;
        continue;
      }
      for (const raw of v.split(',')) {
        const token = trimOws(raw);
        if (token === 'close') head.close = true;
        else if (token === 'keep-alive') { if (minor === 0) head.close = false; }
        else if (token) (extraConnectionTokens ??= []).push(token);
      }
    }
  }
  if (transferEncoding && head.contentLength >= 0) return fail(head, 'both Content-Length and Transfer-Encoding');
  if (extraConnectionTokens) dropNamedFields(head, extraConnectionTokens);

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

/** Headers named by Connection are hop-by-hop too (RFC 9110 7.6.1): their lines leave the kept ranges. */
function dropNamedFields(head: ResponseHead, names: readonly string[]): void {
  const text = head.text;
  const old = head.keep.splice(0);
  const keep = head.keep;
  forEachKeptLine(text, old, (start, colon, end) => {
    if (names.includes(text.slice(start, colon).toLowerCase())) return;
    if (keep.length > 0 && keep[keep.length - 1] + 2 === start) keep[keep.length - 1] = end;
    else keep.push(start, end);
  });
}

/** Calls `visit` with the start, colon and end offsets of each field line inside the [start, end) ranges of `keep`. */
function forEachKeptLine(text: string, keep: readonly number[], visit: (start: number, colon: number, end: number) => void): void {
  for (let k = 0; k < keep.length; k += 2) {
    const stop = keep[k + 1];
    let pos = keep[k];
    while (pos < stop) {
      let end = text.indexOf('\r\n', pos);
      if (end < 0 || end > stop) end = stop;
      visit(pos, text.indexOf(':', pos), end);
      pos = end + 2;
    }
  }
}

/**
 * Strips OWS (SP and HTAB, RFC 9110 5.6.3) from both ends. Not String.prototype.trim, which also strips U+00A0: a
 * latin1-decoded 0xA0 byte (obs-text) would vanish from a value, and "5\xa0" would pass as a Content-Length.
 */
function trimOws(s: string): string {
  let a = 0;
  let z = s.length;
  while (a < z && (s.charCodeAt(a) === 32 || s.charCodeAt(a) === 9)) a++;
  while (z > a && (s.charCodeAt(z - 1) === 32 || s.charCodeAt(z - 1) === 9)) z--;
  return a === 0 && z === s.length ? s : s.slice(a, z);
}

/** Content-Length: 1*DIGIT, or a list of identical values ("5, 5"); -1 when invalid. */
export function parseContentLength(value: string): number {
  let result = -1;
  for (const part of value.includes(',') ? value.split(',') : [value]) {
    const v = trimOws(part);
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

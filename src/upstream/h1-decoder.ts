import { BODY_CHUNKED, BODY_LENGTH, BODY_NONE, BODY_UNTIL_CLOSE, ResponseHead, parseResponseHead } from './h1-parse.js';

/**
 * The HTTP/1.1 response decoder: bytes in, events out, nothing else (no socket, no timer, no callback). The
 * connection (h1-pool.ts) feeds it each read and acts on what it returns; the tests feed it every split of hostile
 * inputs and compare with one-shot delivery (test/unit/h1-decoder.test.ts).
 *
 *   dec.begin(isHeadRequest)                        expect one response
 *   ev = dec.execute(buf, pos, end)                 decode from buf[pos, end) up to the next event
 *     H1_HEAD       the final head is in dec.head (valid until the next call); 1xx interim heads are skipped
 *     H1_BODY       body bytes are buf[dec.bodyStart, dec.bodyEnd): a view of the caller's buffer, never a copy
 *     H1_END        the response is complete; bytes from dec.pos belong to whatever comes next
 *     H1_ERROR      the response is refused, dec.error says why (stable text, the same for every split)
 *     H1_NEED_MORE  every byte up to `end` is used: call again with the next read
 *   dec.pos                                         where the next call starts, after every event
 *   dec.finish()                                    the stream closed: H1_END ends a close-delimited body
 *
 * A head that does not arrive in one read is copied into a buffer that doubles as it grows, and only the new bytes
 * are searched for its end, so an upstream that sends its head a byte at a time costs linear work (the previous
 * Buffer.concat of everything so far per read was quadratic: 2 GiB copied for a 64 KiB head).
 *
 * Strictness is RFC 9112 applied the way a proxy must (section numbers next to each check); where the RFC allows a
 * recipient to be lenient (bare LF, obs-fold, a non-final chunked) the decoder refuses, so that no two parsers on
 * the path can disagree about where a response ends.
 */

export const H1_NEED_MORE = 0;
export const H1_HEAD = 1;
export const H1_BODY = 2;
export const H1_END = 3;
export const H1_ERROR = 4;
export type H1Event = typeof H1_NEED_MORE | typeof H1_HEAD | typeof H1_BODY | typeof H1_END | typeof H1_ERROR;

/** head bytes before the blank line (RFC 9112 2.3 leaves the limit to the recipient; nginx's default is 4-32 KiB) */
export const MAX_HEAD_BYTES = 64 * 1024;
/** trailer-section bytes, read and dropped (RFC 9112 7.1.2) */
export const MAX_TRAILER_BYTES = 16 * 1024;
/** chunk-size line bytes after the size: extensions are ignored but must not be unbounded (Node's CVE-2024-22019) */
export const MAX_CHUNK_EXT_BYTES = 16 * 1024;
/** hex digits of a chunk size: 12 is 2^48-1 bytes, within a double's exact integers */
const MAX_CHUNK_DIGITS = 12;
/** a head whose blank line has not started within this many bytes is too large */
const HEAD_WINDOW = MAX_HEAD_BYTES + 4;
const CRLFCRLF = Buffer.from('\r\n\r\n');

const enum State {
  /** between responses: begin() not called */
  Idle,
  Head,
  /** a head without a body was returned: the next call returns H1_END */
  HeadDone,
  BodyLength,
  /** the last Content-Length bytes were returned: the next call returns H1_END */
  BodyDone,
  ChunkSize,
  /** whitespace after the size: a ";" (an extension) or the CR must follow */
  ChunkSizeBws,
  ChunkExt,
  ChunkSizeLf,
  ChunkData,
  ChunkDataCr,
  ChunkDataLf,
  /** at the start of a trailer line or inside one */
  Trailer,
  TrailerLf,
  UntilClose,
  Failed,
}

export class H1Decoder {
  readonly head = new ResponseHead();
  /** after every event: where the next call starts */
  pos = 0;
  /** after H1_BODY: the body bytes are [bodyStart, bodyEnd) of the buffer given to execute() */
  bodyStart = 0;
  bodyEnd = 0;
  /** after H1_ERROR */
  error = '';
  /** interim (1xx) heads skipped in the current response */
  interim = 0;
  /** bytes copied into the partial-head buffer since construction (appends and regrowth): linear in the head size */
  copiedBytes = 0;

  #state = State.Idle;
  #isHeadRequest = false;
  #remaining = 0;
  #chunkDigits = 0;
  #extBytes = 0;
  #trailerBytes = 0;
  #trailerLineStart = true;
  /** inside a trailer line: still in its field name (no colon yet) */
  #trailerName = true;
  /** a head split across reads: its bytes so far, in a buffer that doubles (null when none is pending) */
  #acc: Buffer | null = null;
  #accLength = 0;

  /** Expects the next response; `isHeadRequest` frames it per RFC 9112 6.3 (no body whatever the head says). */
  begin(isHeadRequest: boolean): void {
    this.#state = State.Head;
    this.#isHeadRequest = isHeadRequest;
    this.#accLength = 0;
    this.#acc = null;
    this.interim = 0;
    this.error = '';
  }

  /** true while the current response's body runs until the connection closes (RFC 9112 6.3 item 8) */
  get endsAtClose(): boolean {
    return this.#state === State.UntilClose;
  }

  /** true between an H1_END (or construction) and the next begin() */
  get idle(): boolean {
    return this.#state === State.Idle;
  }

  /** Decodes from buf[pos, end) up to the next event (see the file comment). */
  execute(buf: Buffer, pos: number, end: number): H1Event {
    for (;;) {
      switch (this.#state) {
        case State.Head: {
          if (pos >= end) return this.#needMore(end);
          const ev = this.#parseHead(buf, pos, end);
          if (ev !== H1_NEED_MORE || this.#state !== State.Head) return ev;
          pos = this.pos; // an interim head: the final one follows
          continue;
        }
        case State.HeadDone:
        case State.BodyDone:
          this.#state = State.Idle;
          this.pos = pos;
          return H1_END;
        case State.BodyLength: {
          if (pos >= end) return this.#needMore(end);
          const take = Math.min(this.#remaining, end - pos);
          this.#remaining -= take;
          if (this.#remaining === 0) this.#state = State.BodyDone;
          return this.#body(pos, pos + take);
        }
        case State.ChunkData: {
          if (pos >= end) return this.#needMore(end);
          const take = Math.min(this.#remaining, end - pos);
          this.#remaining -= take;
          if (this.#remaining === 0) this.#state = State.ChunkDataCr;
          return this.#body(pos, pos + take);
        }
        case State.UntilClose:
          if (pos >= end) return this.#needMore(end);
          return this.#body(pos, end);
        case State.Idle:
          if (pos >= end) return this.#needMore(end);
          // bytes after a complete response that nobody asked for: the stream is out of sync
          return this.#fail('bytes after the end of the response', pos);
        case State.Failed:
          this.pos = end;
          return H1_ERROR;
        default: {
          if (pos >= end) return this.#needMore(end);
          const ev = this.#chunkFraming(buf, pos, end);
          if (ev !== H1_NEED_MORE) return ev;
          pos = this.pos; // chunk data starts here (or the read is used up)
          continue;
        }
      }
    }
  }

  /** The byte stream ended: H1_END for a close-delimited body, H1_ERROR otherwise (RFC 9112 8: incomplete). */
  finish(): H1Event {
    if (this.#state === State.UntilClose || this.#state === State.HeadDone || this.#state === State.BodyDone) {
      this.#state = State.Idle;
      return H1_END;
    }
    if (this.#state === State.Failed) return H1_ERROR;
    if (this.#state === State.Idle) return H1_END;
    return this.#fail(this.#state === State.Head ? 'connection closed before the response head ended' : 'connection closed mid-body', this.pos);
  }

  #needMore(end: number): H1Event {
    this.pos = end;
    return H1_NEED_MORE;
  }

  #body(from: number, to: number): H1Event {
    this.bodyStart = from;
    this.bodyEnd = to;
    this.pos = to;
    return H1_BODY;
  }

  #fail(why: string, end: number): H1Event {
    this.#state = State.Failed;
    this.error = why;
    this.pos = end;
    this.#acc = null;
    return H1_ERROR;
  }

  // ------------------------------------------------------------------------------ head

  /**
   * Finds the end of the head and parses it. Every split of the input gives the same outcome: a bare LF anywhere
   * in the head (RFC 9112 2.2) is named first, then a head whose blank line has not begun within MAX_HEAD_BYTES,
   * then whatever parseResponseHead refuses.
   */
  #parseHead(buf: Buffer, pos: number, end: number): H1Event {
    let text: string;
    let source: Buffer;
    let base: number;
    let consumed: number;
    if (this.#accLength === 0) {
      // The common case: the whole head in one read, parsed where it lies.
      const at = buf.indexOf(CRLFCRLF, pos);
      if (at < 0 || at + 4 > end || at - pos > MAX_HEAD_BYTES) {
        const stop = Math.min(end, pos + HEAD_WINDOW);
        if (hasBareLf(buf, pos, pos, stop)) return this.#fail('bare LF in the response head', end);
        if (end - pos >= HEAD_WINDOW) return this.#fail('response head too large', end);
        this.#append(buf, pos, end);
        return this.#needMore(end);
      }
      text = buf.toString('latin1', pos, at);
      source = buf;
      base = pos;
      consumed = at + 4;
    } else {
      const from = this.#accLength;
      const taken = this.#append(buf, pos, end);
      const acc = this.#acc!;
      const length = this.#accLength;
      // only the new bytes, and the 3 before them in case the blank line straddles the reads
      const at = acc.subarray(0, length).indexOf(CRLFCRLF, Math.max(0, from - 3));
      const headEnd = at < 0 ? length : at;
      if (hasBareLf(acc, 0, from, headEnd)) return this.#fail('bare LF in the response head', end);
      if (at < 0) {
        if (length >= HEAD_WINDOW) return this.#fail('response head too large', end);
        return this.#needMore(pos + taken);
      }
      text = acc.toString('latin1', 0, at);
      source = acc;
      base = 0;
      consumed = pos + (at + 4 - from);
      this.#accLength = 0;
      this.#acc = null;
    }
    const head = this.head;
    if (!parseResponseHead(text, head, this.#isHeadRequest, source, base)) {
      // a bare LF always fails the parse; it is named as such whichever read it came in
      return this.#fail(hasBareLf(source, base, base, base + text.length) ? 'bare LF in the response head' : head.error!, end);
    }
    if (head.status < 200) {
      // RFC 9112 6.3 item 1 / RFC 9110 15.2: 1xx is interim and has no body. 101 would end HTTP on this
      // connection, and the gateway never asks for an upgrade.
      if (head.status === 101) return this.#fail('unexpected protocol switch', end);
      this.interim++;
      this.pos = consumed;
      return H1_NEED_MORE; // execute() goes on with the final head
    }
    switch (head.bodyKind) {
      case BODY_NONE:
        this.#state = State.HeadDone;
        break;
      case BODY_LENGTH:
        this.#state = State.BodyLength;
        this.#remaining = head.contentLength;
        break;
      case BODY_CHUNKED: {
        // Once the head is forwarded the client can only be cut off: when the first chunk-size line came in the
        // same read, check it first so that a broken one still gets a clean 502.
        const bad = chunkLineError(buf, consumed, end);
        if (bad !== null) return this.#fail(bad, end);
        this.#state = State.ChunkSize;
        this.#remaining = 0;
        this.#chunkDigits = 0;
        this.#extBytes = 0;
        break;
      }
      case BODY_UNTIL_CLOSE:
        this.#state = State.UntilClose;
        break;
    }
    this.pos = consumed;
    return H1_HEAD;
  }

  /** Copies buf[pos, end) after the partial head, at most up to HEAD_WINDOW bytes; returns how many it took. */
  #append(buf: Buffer, pos: number, end: number): number {
    const length = this.#accLength;
    const n = Math.min(end - pos, HEAD_WINDOW - length);
    let acc = this.#acc;
    if (acc === null || acc.length < length + n) {
      let size = acc === null ? 1024 : acc.length * 2;
      while (size < length + n) size *= 2;
      // past half the limit the next doubling would be cut to the limit anyway: go there at once
      const grown = Buffer.allocUnsafe(size > HEAD_WINDOW / 2 ? HEAD_WINDOW : size);
      if (acc !== null) {
        acc.copy(grown, 0, 0, length);
        this.copiedBytes += length;
      }
      acc = this.#acc = grown;
    }
    buf.copy(acc, length, pos, pos + n);
    this.copiedBytes += n;
    this.#accLength = length + n;
    return n;
  }

  // ------------------------------------------------------------------------------ chunked body

  /**
   * chunk-size [ chunk-ext ] CRLF … chunk-data CRLF … last-chunk trailer-section CRLF (RFC 9112 7.1). Returns
   * H1_NEED_MORE with `pos` at the first chunk-data byte (or at `end`), H1_END or H1_ERROR.
   */
  #chunkFraming(buf: Buffer, pos: number, end: number): H1Event {
    while (pos < end) {
      const c = buf[pos];
      switch (this.#state) {
        case State.ChunkSize: {
          const d = hexValue(c);
          if (d >= 0) {
            if (++this.#chunkDigits > MAX_CHUNK_DIGITS) return this.#fail('chunk size too large', end);
            this.#remaining = this.#remaining * 16 + d;
            pos++;
            continue;
          }
          if (this.#chunkDigits === 0) return this.#fail('invalid chunk size', end);
          if (c === 13) this.#state = State.ChunkSizeLf;
          else if (c === 59) this.#state = State.ChunkExt;
          else if (c === 32 || c === 9) this.#state = State.ChunkSizeBws;
          else return this.#fail('invalid chunk size', end);
          pos++;
          continue;
        }
        case State.ChunkSizeBws:
          // chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ) (RFC 9112 7.1.1): "5 x" is
          // neither a size nor an extension. Trailing BWS alone ("5 ") is harmless and accepted.
          if (c === 13) this.#state = State.ChunkSizeLf;
          else if (c === 59) this.#state = State.ChunkExt;
          else if (c !== 32 && c !== 9) return this.#fail('invalid chunk size', end);
          else if (++this.#extBytes > MAX_CHUNK_EXT_BYTES) return this.#fail('chunk extension too long', end);
          pos++;
          continue;
        case State.ChunkExt:
          // extensions are ignored, so their inner grammar is not checked; only what could end the line early
          if (c === 13) this.#state = State.ChunkSizeLf;
          // token, quoted-string and BWS hold no control character but HTAB (RFC 9110 5.6.2, 5.6.4)
          else if ((c < 32 && c !== 9) || c === 127) return this.#fail('invalid chunk extension', end);
          else if (++this.#extBytes > MAX_CHUNK_EXT_BYTES) return this.#fail('chunk extension too long', end);
          pos++;
          continue;
        case State.ChunkSizeLf:
          if (c !== 10) return this.#fail('invalid chunk size line ending', end);
          pos++;
          if (this.#remaining === 0) {
            this.#state = State.Trailer;
            this.#trailerBytes = 0;
            this.#trailerLineStart = true;
            this.#trailerName = true;
            continue;
          }
          this.#state = State.ChunkData;
          this.pos = pos;
          return H1_NEED_MORE;
        case State.ChunkDataCr:
          if (c !== 13) return this.#fail('chunk data longer than its size', end);
          this.#state = State.ChunkDataLf;
          pos++;
          continue;
        case State.ChunkDataLf:
          if (c !== 10) return this.#fail('invalid chunk data line ending', end);
          this.#state = State.ChunkSize;
          this.#remaining = 0;
          this.#chunkDigits = 0;
          this.#extBytes = 0;
          pos++;
          continue;
        case State.Trailer:
          // Trailer fields are read and dropped (the front end cannot send them, and none is needed for framing),
          // but each must still be a field line, token ":" value, ending in CRLF (RFC 9112 7.1.2, 2.2; RFC 9110
          // 5.5): lines that are not hint at a body the upstream framed differently from what it declared.
          if (++this.#trailerBytes > MAX_TRAILER_BYTES) return this.#fail('trailer section too large', end);
          if (c === 13) {
            if (!this.#trailerLineStart && this.#trailerName) return this.#fail('invalid trailer section', end);
            this.#state = State.TrailerLf;
          } else if (this.#trailerName) {
            if (c === 58 && !this.#trailerLineStart) this.#trailerName = false;
            else if (TCHAR[c] === 0) return this.#fail('invalid trailer section', end);
            this.#trailerLineStart = false;
          } else if ((c < 32 && c !== 9) || c === 127) return this.#fail('invalid trailer section', end);
          pos++;
          continue;
        case State.TrailerLf:
          if (++this.#trailerBytes > MAX_TRAILER_BYTES) return this.#fail('trailer section too large', end);
          if (c !== 10) return this.#fail('invalid trailer section', end);
          pos++;
          if (this.#trailerLineStart) {
            this.#state = State.Idle;
            this.pos = pos;
            return H1_END;
          }
          this.#trailerLineStart = true;
          this.#trailerName = true;
          this.#state = State.Trailer;
          continue;
        default:
          this.pos = pos;
          return H1_NEED_MORE;
      }
    }
    this.pos = pos;
    return H1_NEED_MORE;
  }
}

/** 1 for the bytes of a token (RFC 9110 5.6.2 tchar) */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1;

function hexValue(c: number): number {
  return c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
}

/** True when buf[from, to) holds an LF not preceded by CR, looking back no further than `start` (the head's). */
function hasBareLf(buf: Buffer, start: number, from: number, to: number): boolean {
  let i = buf.indexOf(10, from);
  while (i >= 0 && i < to) {
    if (i === start || buf[i - 1] !== 13) return true;
    i = buf.indexOf(10, i + 1);
  }
  return false;
}

/**
 * What the chunk decoder would say about the chunk-size line starting at `start`, as far as buf[start, end) goes:
 * null when it is fine so far (or not here yet), else the same reason the streaming decoder gives.
 */
function chunkLineError(buf: Buffer, start: number, end: number): string | null {
  let digits = 0;
  let i = start;
  for (; i < end && hexValue(buf[i]) >= 0; i++) if (++digits > MAX_CHUNK_DIGITS) return 'chunk size too large';
  if (i === end) return null;
  if (digits === 0) return 'invalid chunk size';
  while (i < end && (buf[i] === 32 || buf[i] === 9)) i++;
  return i === end || buf[i] === 59 || buf[i] === 13 ? null : 'invalid chunk size';
}

export { BODY_CHUNKED, BODY_LENGTH, BODY_NONE, BODY_UNTIL_CLOSE };

/**
 * A minimal HTTP/1.1 response reader for the load generator: it finds where each response ends (Content-Length,
 * chunked, or a bodiless status) and reports the status code and the body size. It does not validate beyond that:
 * the gateway's own strictness is tested elsewhere; here it must only be cheap and never lose count.
 */

const S_HEAD = 0;
const S_BODY = 1;
const S_CHUNK_SIZE = 2;
const S_CHUNK_DATA = 3;
const S_CHUNK_CRLF = 4;
const S_TRAILERS = 5;
const S_UNTIL_CLOSE = 6;

const CONTENT_LENGTH = /\r\ncontent-length[ \t]*:[ \t]*(\d+)/i;
const CHUNKED = /\r\ntransfer-encoding[ \t]*:[^\r]*chunked/i;
const CONNECTION_CLOSE = /\r\nconnection[ \t]*:[^\r]*\bclose\b/i;
const CRLFCRLF = Buffer.from('\r\n\r\n');

export interface ResponseSink {
  /**
   * One response is complete: its status, how many body bytes it carried, and whether the server said it closes
   * the connection (`Connection: close`, or HTTP/1.0): no further request may be sent on it (RFC 9112 9.6).
   */
  onResponse(status: number, bodyBytes: number, close: boolean): void;
}

export class ResponseReader {
  #state = S_HEAD;
  /** head bytes seen so far when a head spans several reads */
  #pending: Buffer | null = null;
  #remaining = 0;
  #status = 0;
  #bodyBytes = 0;
  #close = false;
  #line = '';
  /** the request in flight is a HEAD request: its response has no body whatever the headers say */
  headRequest = false;
  /** a malformed head was seen; the connection must be dropped */
  broken = false;
  readonly #sink: ResponseSink;

  constructor(sink: ResponseSink) {
    this.#sink = sink;
  }

  reset(): void {
    this.#state = S_HEAD;
    this.#pending = null;
    this.#remaining = 0;
    this.#line = '';
    this.broken = false;
  }

  /** The connection closed: a body that runs until close is complete now. */
  end(): void {
    if (this.#state === S_UNTIL_CLOSE) this.#done();
  }

  feed(buf: Buffer): void {
    let pos = 0;
    const len = buf.length;
    while (pos < len && !this.broken) {
      switch (this.#state) {
        case S_HEAD: {
          let data = buf;
          let from = pos;
          if (this.#pending !== null) {
            data = Buffer.concat([this.#pending, buf.subarray(pos)]);
            from = 0;
          }
          // A head split across reads is searched as a whole (pending + this read), so a split CRLFCRLF is found.
          const end = data.indexOf(CRLFCRLF, from);
          if (end < 0) {
            this.#pending = Buffer.from(data.subarray(from));
            if (this.#pending.length > 65536) this.broken = true;
            return;
          }
          const consumedFromBuf = this.#pending !== null ? end + 4 - this.#pending.length : end + 4 - pos;
          const head = data.toString('latin1', from, end);
          this.#pending = null;
          pos += consumedFromBuf;
          this.#startBody(head);
          break;
        }
        case S_BODY: {
          const take = Math.min(this.#remaining, len - pos);
          pos += take;
          this.#bodyBytes += take;
          this.#remaining -= take;
          if (this.#remaining === 0) this.#done();
          break;
        }
        case S_CHUNK_SIZE:
        case S_TRAILERS: {
          const nl = buf.indexOf(10, pos);
          const stop = nl < 0 ? len : nl + 1;
          this.#line += buf.toString('latin1', pos, stop);
          pos = stop;
          if (nl < 0) {
            if (this.#line.length > 4096) this.broken = true;
            break;
          }
          const line = this.#line.trim();
          this.#line = '';
          if (this.#state === S_TRAILERS) {
            if (line === '') this.#done();
            break;
          }
          const semi = line.indexOf(';');
          const size = parseInt(semi < 0 ? line : line.slice(0, semi), 16);
          if (!(size >= 0)) { this.broken = true; break; }
          if (size === 0) this.#state = S_TRAILERS;
          else {
            this.#remaining = size;
            this.#state = S_CHUNK_DATA;
          }
          break;
        }
        case S_CHUNK_DATA: {
          const take = Math.min(this.#remaining, len - pos);
          pos += take;
          this.#bodyBytes += take;
          this.#remaining -= take;
          if (this.#remaining === 0) {
            this.#remaining = 2;
            this.#state = S_CHUNK_CRLF;
          }
          break;
        }
        case S_CHUNK_CRLF: {
          const take = Math.min(this.#remaining, len - pos);
          pos += take;
          this.#remaining -= take;
          if (this.#remaining === 0) this.#state = S_CHUNK_SIZE;
          break;
        }
        case S_UNTIL_CLOSE:
          this.#bodyBytes += len - pos;
          pos = len;
          break;
      }
    }
  }

  #startBody(head: string): void {
    const status = head.startsWith('HTTP/1.') ? parseInt(head.slice(9, 12), 10) : NaN;
    if (!(status >= 100 && status <= 599)) {
      this.broken = true;
      return;
    }
    this.#status = status;
    this.#bodyBytes = 0;
    this.#close = head.charCodeAt(7) === 48 /* HTTP/1.0 */ || CONNECTION_CLOSE.test(head);
    // An interim response (100 Continue, 103 Early Hints) is followed by the real one.
    if (status < 200 && status !== 101) {
      this.#state = S_HEAD;
      return;
    }
    if (this.headRequest || status === 204 || status === 304) return this.#done();
    if (CHUNKED.test(head)) {
      this.#state = S_CHUNK_SIZE;
      return;
    }
    const m = CONTENT_LENGTH.exec(head);
    if (m !== null) {
      this.#remaining = Number(m[1]);
      if (this.#remaining === 0) return this.#done();
      this.#state = S_BODY;
      return;
    }
    this.#close = true;
    this.#state = S_UNTIL_CLOSE;
  }

  #done(): void {
    this.#state = S_HEAD;
    this.#sink.onResponse(this.#status, this.#bodyBytes, this.#close);
  }
}

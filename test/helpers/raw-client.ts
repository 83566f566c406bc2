import { connect, type Socket } from 'node:net';

export interface ParsedResponse {
  status: number;
  /** lower-case name -> every value, in order */
  fields: Map<string, string[]>;
  /** first value of each field, for assertProblem and quick reads */
  headers: Record<string, string>;
  body: string;
  /** the bytes of this response as received */
  raw: string;
}

/**
 * A keep-alive raw socket that reads responses one at a time with strict HTTP/1.1 framing (RFC 9112 6.3), so a test
 * can tell a body-less response (HEAD, 204, 304) from one that leaks bytes into the next response on the connection.
 */
export class RawClient {
  readonly socket: Socket;
  #buf = '';
  #closed = false;
  #wake: (() => void) | null = null;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => {
      this.#buf += d.toString('latin1');
      this.#notify();
    });
    socket.on('close', () => {
      this.#closed = true;
      this.#notify();
    });
    socket.on('end', () => {
      this.#closed = true;
      this.#notify();
    });
    socket.on('error', () => {});
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** bytes received and not yet consumed by readResponse */
  get pending(): string {
    return this.#buf;
  }

  send(bytes: string | Buffer): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  close(): void {
    this.socket.destroy();
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  /** Waits until `ready()` holds, the socket closes, or `timeoutMs` passes. */
  async #until(ready: () => boolean, timeoutMs: number): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (!ready()) {
      if (this.#closed) return ready();
      const left = end - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    return true;
  }

  /** Waits for the connection to close; true if it did within the time. */
  waitClosed(timeoutMs: number): Promise<boolean> {
    return this.#until(() => this.#closed, timeoutMs);
  }

  /** Collects whatever arrives within `ms` (for "nothing more was sent" checks). */
  async drain(ms: number): Promise<string> {
    await this.#until(() => false, ms);
    const out = this.#buf;
    this.#buf = '';
    return out;
  }

  /**
   * Reads one response. `noBody` says the request was HEAD (the client decides framing by the request, RFC 9112 6.3);
   * 1xx, 204 and 304 never have a body. Throws when the response is incomplete after `timeoutMs`.
   */
  async readResponse(opts: { noBody?: boolean; timeoutMs?: number } = {}): Promise<ParsedResponse> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    if (!(await this.#until(() => this.#buf.includes('\r\n\r\n'), timeoutMs))) {
      throw new Error(`no complete response head (closed=${this.#closed}): ${JSON.stringify(this.#buf.slice(0, 300))}`);
    }
    const headEnd = this.#buf.indexOf('\r\n\r\n');
    const lines = this.#buf.slice(0, headEnd).split('\r\n');
    const status = Number(lines[0].split(' ')[1]);
    const fields = new Map<string, string[]>();
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      const name = line.slice(0, i).toLowerCase();
      const value = line.slice(i + 1).trim();
      fields.set(name, [...(fields.get(name) ?? []), value]);
      headers[name] ??= value;
    }
    let pos = headEnd + 4;
    let body = '';
    const te = headers['transfer-encoding'];
    if (opts.noBody || status < 200 || status === 204 || status === 304) {
      // no body, whatever the fields say
    } else if (te !== undefined) {
      if (te.toLowerCase() !== 'chunked') throw new Error(`unexpected transfer-encoding ${te}`);
      for (;;) {
        if (!(await this.#until(() => this.#buf.indexOf('\r\n', pos) >= 0, timeoutMs))) throw new Error('incomplete chunk size line');
        const lineEnd = this.#buf.indexOf('\r\n', pos);
        const size = parseInt(this.#buf.slice(pos, lineEnd).split(';')[0], 16);
        if (!Number.isFinite(size)) throw new Error(`bad chunk size line ${JSON.stringify(this.#buf.slice(pos, lineEnd))}`);
        const dataStart = lineEnd + 2;
        if (size === 0) {
          // trailer section: lines until an empty one
          // lineEnd is the CRLF after "0": the trailer section ends at the first CRLFCRLF from there
          if (!(await this.#until(() => this.#buf.indexOf('\r\n\r\n', lineEnd) >= 0, timeoutMs))) throw new Error('incomplete last chunk');
          pos = this.#buf.indexOf('\r\n\r\n', lineEnd) + 4;
          break;
        }
        if (!(await this.#until(() => this.#buf.length >= dataStart + size + 2, timeoutMs))) throw new Error('incomplete chunk data');
        body += this.#buf.slice(dataStart, dataStart + size);
        if (this.#buf.slice(dataStart + size, dataStart + size + 2) !== '\r\n') throw new Error('chunk data not followed by CRLF');
        pos = dataStart + size + 2;
      }
    } else if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      if (!(await this.#until(() => this.#buf.length >= pos + length, timeoutMs))) throw new Error(`incomplete body: wanted ${length} bytes`);
      body = this.#buf.slice(pos, pos + length);
      pos += length;
    } else {
      await this.waitClosed(timeoutMs);
      body = this.#buf.slice(pos);
      pos = this.#buf.length;
    }
    const raw = this.#buf.slice(0, pos);
    this.#buf = this.#buf.slice(pos);
    return { status, fields, headers, body, raw };
  }
}

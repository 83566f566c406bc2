import { createServer, type Server, type Socket, type AddressInfo } from 'node:net';
import { request } from 'node:http';

/**
 * Node's own response parser (llhttp) as a second opinion: a raw `net` server on loopback answers each request
 * with the exact bytes of one input and closes, and `http.request` reads it. Nothing here is parsed by our code.
 */

export interface LlhttpOutcome {
  status: number;
  /** every received field as name, value, … (llhttp trims the values) */
  headers: string[];
  body: string;
  /** null when the response was read to its end; else the error code or event that ended it */
  error: string | null;
  /** 1xx responses llhttp reported before the final one */
  interim: number;
}

export class LlhttpOracle {
  readonly #server: Server;
  readonly #inputs = new Map<number, Buffer>();
  readonly #sockets = new Set<Socket>();
  #next = 0;
  #port = 0;

  constructor() {
    this.#server = createServer((socket) => this.#serve(socket));
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.#port = (this.#server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** How llhttp reads `input` as the answer to a GET (or HEAD) request; settles within `timeoutMs`. */
  ask(input: Buffer, isHead = false, timeoutMs = 5000): Promise<LlhttpOutcome> {
    const id = this.#next++;
    this.#inputs.set(id, input);
    return new Promise((resolve) => {
      const out: LlhttpOutcome = { status: 0, headers: [], body: '', error: null, interim: 0 };
      const chunks: Buffer[] = [];
      let settled = false;
      const settle = (error: string | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.#inputs.delete(id);
        out.error = error;
        out.body = Buffer.concat(chunks).toString('latin1');
        req.destroy();
        resolve(out);
      };
      const req = request({
        host: '127.0.0.1',
        port: this.#port,
        path: `/${id}`,
        method: isHead ? 'HEAD' : 'GET',
        agent: false,
        // our limit is 64 KiB; Node's default of 16 KiB would make every larger head a difference
        maxHeaderSize: 80 * 1024,
      });
      const timer = setTimeout(() => settle('timeout'), timeoutMs);
      req.on('information', () => out.interim++);
      req.on('continue', () => out.interim++);
      req.on('upgrade', () => settle('upgrade'));
      req.on('error', (err: NodeJS.ErrnoException) => settle(err.code ?? err.message));
      req.on('response', (res) => {
        out.status = res.statusCode ?? 0;
        const raw = res.rawHeaders;
        for (let i = 0; i < raw.length; i += 2) out.headers.push(raw[i], raw[i + 1]);
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => settle(null));
        res.on('aborted', () => settle('aborted'));
        res.on('error', (err: NodeJS.ErrnoException) => settle(err.code ?? err.message));
      });
      req.end();
    });
  }

  #serve(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let head = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      if (head.includes('\r\n\r\n')) return;
      head += d;
      if (!head.includes('\r\n\r\n')) return;
      const id = Number(/^[A-Z]+ \/(\d+) /.exec(head)?.[1]);
      const input = this.#inputs.get(id);
      if (input === undefined) return void socket.destroy();
      socket.end(input);
    });
  }
}

/** Hop-by-hop and framing fields, as the gateway drops them (RFC 9110 7.6.1), written out again as an oracle. */
const DROPPED = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'content-length', 'date', 'proxy-authenticate', 'proxy-authorization', 'x-request-id']);

/** The fields of what llhttp read that the gateway would forward, as name, value, … */
export function forwardedByLlhttp(ll: LlhttpOutcome): string[] {
  const named = new Set<string>();
  for (let i = 0; i < ll.headers.length; i += 2) {
    if (ll.headers[i].toLowerCase() === 'connection') for (const t of ll.headers[i + 1].split(',')) named.add(t.trim().toLowerCase());
  }
  const out: string[] = [];
  for (let i = 0; i < ll.headers.length; i += 2) {
    const name = ll.headers[i].toLowerCase();
    if (DROPPED.has(name) || name.startsWith('proxy-') || named.has(name)) continue;
    // a field value has no leading or trailing whitespace (RFC 9110 5.5); llhttp keeps the trailing part
    out.push(ll.headers[i], ll.headers[i + 1].replace(/^[ \t]+|[ \t]+$/g, ''));
  }
  return out;
}

import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { RequestHeads } from './request-heads.js';

/**
 * How a PipeliningUpstream answers:
 * - correct: every request, in order, HTTP/1.1 keep-alive (RFC 9112 9.3.2)
 * - first-then-close: answers the first request of a read, then closes the connection without a word
 * - first-only: answers the first request of a read and ignores the rest, connection left open
 * - connection-close: every answer says `Connection: close`, and the connection is closed after it
 * - http10: HTTP/1.0 answers (no keep-alive), connection closed after each
 * - drop-mid-batch: like correct, except that a read with two or more GET requests gets its first answered, then
 *   the connection is destroyed (a node that dies in the middle of a batch)
 */
export type PipeliningBehaviour = 'correct' | 'first-then-close' | 'first-only' | 'connection-close' | 'http10' | 'drop-mid-batch';

/** One read of request heads on one connection: `heads` like ['GET /a', 'HEAD /'] (several: a pipelined batch). */
export interface ReadRecord {
  conn: number;
  heads: string[];
}

interface Pending {
  method: string;
  path: string;
  held: boolean;
}

/**
 * A raw HTTP/1.1 origin that records how request heads arrived (which connection, which read) and answers them as
 * its behaviour says. Paths with /hold/ in them are answered only when released (in order: what is behind them waits).
 */
export class PipeliningUpstream {
  readonly server: Server;
  readonly sockets = new Set<Socket>();
  readonly reads: ReadRecord[] = [];
  behaviour: PipeliningBehaviour;
  port = 0;
  #connections = 0;
  readonly #queues = new Map<Socket, Pending[]>();

  constructor(behaviour: PipeliningBehaviour) {
    this.behaviour = behaviour;
    this.server = createServer((socket) => this.#accept(socket));
  }

  static async start(behaviour: PipeliningBehaviour): Promise<PipeliningUpstream> {
    const u = new PipeliningUpstream(behaviour);
    await new Promise<void>((r) => u.server.listen(0, '127.0.0.1', r));
    u.port = (u.server.address() as AddressInfo).port;
    return u;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Reads that carried the gateway's probe (two HEAD requests of its user agent arrive as `HEAD <path> probe`). */
  probeReads(): ReadRecord[] {
    return this.reads.filter((r) => r.heads.some((h) => h.endsWith(' probe')));
  }

  /** Reads of client traffic with more than one request head: pipelined batches. */
  batches(): ReadRecord[] {
    return this.reads.filter((r) => r.heads.length > 1 && !r.heads.some((h) => h.endsWith(' probe')));
  }

  /** Connections on which `head` arrived (e.g. 'GET /x'). */
  connectionsOf(head: string): number[] {
    return this.reads.filter((r) => r.heads.includes(head)).map((r) => r.conn);
  }

  release(path: string): void {
    for (const [socket, q] of this.#queues) {
      for (const p of q) if (p.path === path) p.held = false;
      this.#flush(socket);
    }
  }

  /** Closes every connection the gateway holds to it, as a restart would. */
  dropAll(): void {
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  #accept(socket: Socket): void {
    const conn = ++this.#connections;
    this.sockets.add(socket);
    this.#queues.set(socket, []);
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.#queues.delete(socket);
    });
    socket.on('error', () => {});
    const split = new RequestHeads();
    socket.on('data', (d: Buffer) => {
      const heads: Pending[] = split.push(d).map(({ method, path, head }) => {
        const probe = /\r\nuser-agent: nanogate-pipelining-probe/i.test(head);
        return { method, path: probe ? `${path} probe` : path, held: path.includes('/hold/') };
      });
      if (heads.length === 0) return;
      this.reads.push({ conn, heads: heads.map((h) => `${h.method} ${h.path}`) });
      const q = this.#queues.get(socket)!;
      const b = this.behaviour;
      if (b === 'first-then-close' || b === 'first-only' || (b === 'drop-mid-batch' && heads.filter((h) => h.method === 'GET').length > 1)) {
        if (q.length === 0) socket.write(answer(heads[0], b));
        if (b !== 'first-only') socket.destroy();
        return;
      }
      q.push(...heads);
      this.#flush(socket);
    });
  }

  #flush(socket: Socket): void {
    const q = this.#queues.get(socket);
    if (!q) return;
    while (q.length > 0 && !q[0].held) {
      const p = q.shift()!;
      socket.write(answer(p, this.behaviour));
      if (this.behaviour === 'connection-close' || this.behaviour === 'http10') {
        socket.end();
        return;
      }
    }
  }
}

function answer(p: Pending, behaviour: PipeliningBehaviour): string {
  const body = `answer for ${p.path}`;
  const version = behaviour === 'http10' ? 'HTTP/1.0' : 'HTTP/1.1';
  const close = behaviour === 'connection-close' ? 'connection: close\r\n' : '';
  return `${version} 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n${close}\r\n${p.method === 'HEAD' ? '' : body}`;
}

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';

export interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  body: Buffer;
}

export interface TestUpstream {
  port: number;
  url: string;
  /** every request received, in order */
  received: Received[];
  /** sockets currently open to this upstream */
  openSockets(): number;
  close(): Promise<void>;
}

/** The gateway's pipelining probe (two HEADs on a connection of its own, src/upstream/h1-probe.ts). */
export const PROBE_AGENT = 'nanogate-pipelining-probe';

/**
 * A real node:http upstream on a free loopback port. The default handler echoes the request as JSON; pass a handler
 * to answer otherwise (the body has been read into `body` before it is called unless `stream` is set). The gateway's
 * pipelining probe is answered here (as any HTTP/1.1 server would) and not recorded: `received` holds what clients
 * caused.
 */
export async function startUpstream(
  handler?: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void,
  opts: { stream?: boolean } = {},
): Promise<TestUpstream> {
  const received: Received[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    if (req.headers['user-agent'] === PROBE_AGENT) return void res.writeHead(204).end();
    if (opts.stream && handler) return handler(req, res, Buffer.alloc(0));
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      received.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body });
      if (handler) return handler(req, res, body);
      const out = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodyLength: body.length });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(out);
    });
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    received,
    openSockets: () => sockets.size,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/**
 * A raw TCP upstream: `onRequest` gets the socket and the bytes of each request head and writes whatever bytes it
 * likes (hostile framing, partial responses, silence). The gateway's pipelining probe never reaches `onRequest`: it
 * gets a plain 204 (so the scripts see only client requests, and the node counts as pipelining correctly).
 */
export async function startRawUpstream(onRequest: (socket: Socket, head: string) => void): Promise<{ port: number; url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: TcpServer = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      let end: number;
      while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        if (/\r\nuser-agent: nanogate-pipelining-probe\r?$/im.test(head)) socket.write('HTTP/1.1 204 No Content\r\n\r\n');
        else onRequest(socket, head);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/**
 * A port where nothing listens (connection refused), and where nothing started later will: it is taken above the
 * kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by default), which `listen(0)` never
 * hands out. A port freed from that range could be, and was: a gateway started after it got it for its own listener,
 * and a "refused" node answered 404. Checked free once; never the same port twice in a process.
 */
const handedOut = new Set<number>();
export async function closedPort(): Promise<number> {
  const [, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  const from = Math.max(high + 1, 1024);
  if (from > 65535) throw new Error('no port above the ephemeral range');
  for (let tries = 0; tries < 200; tries++) {
    const port = from + Math.floor(Math.random() * (65536 - from));
    if (handedOut.has(port)) continue;
    const s = createTcpServer();
    const free = await new Promise<boolean>((r) => {
      s.once('error', () => r(false));
      s.listen(port, '127.0.0.1', () => r(true));
    });
    if (!free) continue;
    await new Promise<void>((r) => s.close(() => r()));
    handedOut.add(port);
    return port;
  }
  throw new Error('no free port above the ephemeral range');
}

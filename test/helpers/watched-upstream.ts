import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { PROBE_AGENT } from './upstream.js';

export interface Arrival {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  /** set when the whole body has been read (only for requests the default handler reads) */
  body: Buffer | null;
  /** the gateway (or anyone) closed the connection before this request's response finished */
  abandoned: boolean;
}

export interface WatchedUpstream {
  port: number;
  url: string;
  /** every request, recorded as soon as its head arrives (before any body) */
  arrivals: Arrival[];
  /** TCP connections accepted so far */
  connections(): number;
  /** sockets open right now */
  openSockets(): number;
  close(): Promise<void>;
}

/**
 * A node:http upstream that records each request when its head arrives, so a test can prove that a request never
 * reached it at all (not merely that it never completed), and that notices when a request is abandoned mid-way.
 * `handler` streams: it gets the live request; the default echoes method, url, headers and body length as JSON.
 * The gateway's pipelining probe is answered and left out of arrivals and of both connection counts.
 */
export async function startWatchedUpstream(handler?: (req: IncomingMessage, res: ServerResponse, arrival: Arrival) => void): Promise<WatchedUpstream> {
  const arrivals: Arrival[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  const probes = new WeakSet<Socket>();
  const server: Server = createServer((req, res) => {
    if (req.headers['user-agent'] === PROBE_AGENT) {
      if (!probes.has(req.socket)) {
        probes.add(req.socket);
        sockets.delete(req.socket);
        connections--;
      }
      return void res.writeHead(204).end();
    }
    const arrival: Arrival = { method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body: null, abandoned: false };
    arrivals.push(arrival);
    res.on('close', () => {
      if (!res.writableFinished) arrival.abandoned = true;
    });
    if (handler) return handler(req, res, arrival);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      arrival.body = Buffer.concat(chunks);
      const out = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodyLength: arrival.body.length });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(out);
    });
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', (s: Socket) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    arrivals,
    connections: () => connections,
    openSockets: () => sockets.size,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** Reads a request body to the end. */
export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

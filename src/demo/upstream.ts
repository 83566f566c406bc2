import { createServer, type Server } from 'node:http';
import { WebSocketServer } from 'ws';
import { closeServer, listenOn } from '../shared/http-server.js';
import { answerGraphql } from './graphql.js';

/**
 * The built-in demo upstream, so that `npm start` answers at once with no other service. It echoes what it received
 * (method, path, query, headers) as JSON, and has a few helpers for trying the gateway by hand:
 *   /status/:code      answers with that status
 *   /delay/:ms         answers after a pause (try a route timeout)
 *   /bytes/:n          n bytes of body (try large downloads)
 *   /ws/echo           a WebSocket endpoint that sends every message back (try a route with a websocket section)
 *   …/graphql          a small GraphQL API (src/demo/graphql.ts; try the graphql policy)
 */
export class DemoUpstream {
  readonly #server: Server;
  port = 0;

  constructor() {
    this.#server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://demo');
      const parts = url.pathname.split('/').filter(Boolean);
      const tail = parts.slice(-2);
      let received = 0;
      const graphqlPath = url.pathname.endsWith('/graphql');
      const chunks: Buffer[] | null = graphqlPath ? [] : null;
      req.on('data', (c: Buffer) => {
        received += c.length;
        if (chunks !== null && received <= 1 << 20) chunks.push(c);
      });
      req.on('end', () => {
        if (chunks !== null) return answerGraphql(req.method ?? 'GET', url, req.headers['content-type'] ?? '', Buffer.concat(chunks), res);
        if (tail[0] === 'status' && /^\d{3}$/.test(tail[1])) {
          res.writeHead(Number(tail[1]), { 'content-type': 'application/json' });
          return res.end(JSON.stringify({ status: Number(tail[1]) }));
        }
        if (tail[0] === 'delay' && /^\d+$/.test(tail[1])) {
          const ms = Math.min(60_000, Number(tail[1]));
          return void setTimeout(() => res.end(JSON.stringify({ delayedMs: ms })), ms);
        }
        if (tail[0] === 'bytes' && /^\d+$/.test(tail[1])) {
          const n = Math.min(1 << 30, Number(tail[1]));
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
          const block = Buffer.alloc(64 * 1024, 0x61);
          let sent = 0;
          const pump = () => {
            while (sent < n) {
              const take = Math.min(block.length, n - sent);
              sent += take;
              if (!res.write(take === block.length ? block : block.subarray(0, take))) return void res.once('drain', pump);
            }
            res.end();
          };
          return pump();
        }
        const body = JSON.stringify({ service: 'demo', method: req.method, path: url.pathname, query: url.search.slice(1), headers: req.headers, bodyBytes: received });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    });
    this.#server.keepAliveTimeout = 60_000;
    // WebSocket echo: the first offered subprotocol is chosen, messages come back as they came (text or binary).
    const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, handleProtocols: (set) => set.values().next().value ?? false });
    this.#wss = wss;
    this.#server.on('upgrade', (req, socket, head) => {
      if (!(req.url ?? '').split('?')[0].endsWith('/ws/echo')) return void socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
    });
  }

  readonly #wss: WebSocketServer;

  async listen(host: string, port: number): Promise<void> {
    this.port = await listenOn(this.#server, host, port);
  }

  close(): Promise<void> {
    for (const ws of this.#wss.clients) ws.terminate();
    this.#wss.close();
    return closeServer(this.#server);
  }
}

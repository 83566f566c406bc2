import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

/**
 * A real WebSocket upstream (`ws` on node:http, loopback, port 0) with a behaviour per path:
 *   /echo             sends every message back as it came (text or binary)
 *   /hello            sends one text message "hello" on open, then echoes
 *   /handshake        sends the handshake it received as JSON: url, headers, protocol
 *   /close/:code      closes with that code and reason "bye" on the first message
 *   /drop             destroys its socket on the first message (no close frame)
 *   /flood/:n         sends n binary messages of 64 KiB as fast as ws lets it (tracks what it could not send yet)
 *   /stall            stops reading its socket (a slow reader); messages pile up in the kernel and the gateway
 *   /refuse/:status   answers the upgrade with that HTTP status
 * Subprotocols: the first one offered that is not "none" is chosen.
 */
export interface WsUpstream {
  port: number;
  url: string;
  /** server-side sockets, in accept order */
  sockets: WebSocket[];
  /** handshakes received */
  handshakes: IncomingMessage[];
  /** bytes handed to ws.send on flood connections, and ws's bufferedAmount at the last send */
  flood: { sent: number; buffered: number; done: boolean };
  close(): Promise<void>;
}

export async function startWsUpstream(): Promise<WsUpstream> {
  const server: Server = createServer((_req, res) => res.writeHead(200).end('not a websocket request'));
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024, handleProtocols: (set) => [...set].find((p) => p !== 'none') ?? false });
  const sockets: WebSocket[] = [];
  const handshakes: IncomingMessage[] = [];
  const raw = new Set<Socket>();
  const flood = { sent: 0, buffered: 0, done: false };
  server.on('connection', (s) => {
    raw.add(s);
    s.on('close', () => raw.delete(s));
  });
  server.on('upgrade', (req, socket, head) => {
    const path = (req.url ?? '/').split('?')[0];
    const refuse = /^\/refuse\/(\d{3})$/.exec(path);
    if (refuse) {
      socket.end(`HTTP/1.1 ${refuse[1]} Refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      handshakes.push(req);
      sockets.push(ws);
      behave(ws, req, path, flood);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    sockets,
    handshakes,
    flood,
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of wss.clients) ws.terminate();
        for (const s of raw) s.destroy();
        wss.close();
        server.close(() => resolve());
      }),
  };
}

function behave(ws: WebSocket, req: IncomingMessage, path: string, flood: WsUpstream['flood']): void {
  const close = /^\/close\/(\d{4})$/.exec(path);
  const floodN = /^\/flood\/(\d+)$/.exec(path);
  if (path === '/hello') ws.send('hello');
  if (path === '/handshake') ws.send(JSON.stringify({ url: req.url, headers: req.headers, protocol: ws.protocol }));
  if (path === '/stall') (ws as unknown as { _socket: Socket })._socket.pause();
  if (floodN) {
    const block = Buffer.alloc(64 * 1024, 0x62);
    const total = Number(floodN[1]);
    let n = 0;
    const pump = () => {
      // keep ws's own buffer at most 1 MiB ahead of the socket, so what it holds shows what the gateway did not read
      while (n < total && ws.readyState === ws.OPEN && ws.bufferedAmount < 1024 * 1024) {
        ws.send(block);
        n++;
        flood.sent += block.length;
      }
      flood.buffered = ws.bufferedAmount;
      if (n < total && ws.readyState === ws.OPEN) setTimeout(pump, 5);
      else flood.done = true;
    };
    pump();
  }
  ws.on('message', (data, isBinary) => {
    if (close) return ws.close(Number(close[1]), 'bye');
    if (path === '/drop') return (ws as unknown as { _socket: Socket })._socket.destroy();
    if (path === '/echo' || path === '/hello' || path === '/handshake') ws.send(data, { binary: isBinary });
  });
}

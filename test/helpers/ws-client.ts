import WebSocket from 'ws';

/** What a refused upgrade got: the HTTP status, headers and body of the answer. */
export interface Refused {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** messages that arrived while nobody waited (one may come in the same packet as the 101) */
const inbox = new WeakMap<WebSocket, { data: Buffer; binary: boolean }[]>();
const waiting = new WeakMap<WebSocket, (m: { data: Buffer; binary: boolean }) => void>();

/** Opens a client WebSocket; resolves once open, or with the HTTP answer of a refused upgrade. */
export function connect(url: string, protocols: string[] = [], headers: Record<string, string> = {}): Promise<WebSocket | Refused> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    inbox.set(ws, []);
    ws.on('message', (data: Buffer, binary) => {
      const w = waiting.get(ws);
      if (w !== undefined) {
        waiting.delete(ws);
        w({ data, binary });
      } else inbox.get(ws)!.push({ data, binary });
    });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    ws.once('error', reject);
  });
}

export async function open(url: string, protocols: string[] = [], headers: Record<string, string> = {}): Promise<WebSocket> {
  const r = await connect(url, protocols, headers);
  if (!(r instanceof WebSocket)) throw new Error(`upgrade refused with ${r.status}: ${r.body}`);
  return r;
}

export async function refused(url: string, protocols: string[] = [], headers: Record<string, string> = {}): Promise<Refused> {
  const r = await connect(url, protocols, headers);
  if (r instanceof WebSocket) {
    r.terminate();
    throw new Error('the upgrade was accepted');
  }
  return r;
}

/** The next message, as a Buffer with its binary flag. */
export function nextMessage(ws: WebSocket, timeoutMs = 5000): Promise<{ data: Buffer; binary: boolean }> {
  return new Promise((resolve, reject) => {
    const queued = inbox.get(ws)?.shift();
    if (queued !== undefined) return resolve(queued);
    const t = setTimeout(() => {
      waiting.delete(ws);
      reject(new Error('no message in time'));
    }, timeoutMs);
    waiting.set(ws, (m) => {
      clearTimeout(t);
      resolve(m);
    });
  });
}

/** The close the client saw: code and reason. */
export function closed(ws: WebSocket, timeoutMs = 10000): Promise<{ code: number; reason: string }> {
  return new Promise((resolve, reject) => {
    if (ws.readyState === ws.CLOSED) return reject(new Error('already closed'));
    const t = setTimeout(() => reject(new Error('not closed in time')), timeoutMs);
    ws.once('close', (code, reason) => {
      clearTimeout(t);
      resolve({ code, reason: reason.toString() });
    });
  });
}

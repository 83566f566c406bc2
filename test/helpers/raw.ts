import { connect } from 'node:net';

export interface RawResponse {
  /** everything received until the server closed or the timeout passed */
  text: string;
  status: number;
  headers: Record<string, string>;
  body: string;
  /** the server closed the connection */
  closed: boolean;
}

/**
 * Sends raw bytes to host:port and collects what comes back until the socket closes or `waitMs` of silence.
 * For framing tests that a well-behaved client library would refuse to send.
 */
export function rawRequest(port: number, bytes: string | Buffer, waitMs = 500): Promise<RawResponse> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let closed = false;
    let timer: NodeJS.Timeout;
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const headEnd = text.indexOf('\r\n\r\n');
      const head = headEnd >= 0 ? text.slice(0, headEnd) : text;
      const lines = head.split('\r\n');
      const status = Number(lines[0]?.split(' ')[1]) || 0;
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ text, status, headers, body: headEnd >= 0 ? text.slice(headEnd + 4) : '', closed });
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(finish, waitMs);
    };
    socket.on('data', (d) => {
      chunks.push(d);
      arm();
    });
    socket.on('end', () => {
      closed = true;
      finish();
    });
    socket.on('close', () => {
      closed = true;
      finish();
    });
    socket.on('error', () => {});
    socket.write(bytes);
    arm();
  });
}

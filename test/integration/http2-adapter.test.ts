import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { NodeResponse } from '../../src/node-listener/adapter.js';

/**
 * The uWS-shaped response adapter over a real node:http2 server and client: the one-call head the Exchange writes,
 * repeated fields, hop-by-hop fields dropped, trailers (what gRPC needs), and uWS's tryEnd/onWritable contract under
 * real backpressure.
 */

async function serve(handle: (res: NodeResponse) => void): Promise<{ port: number; close: () => Promise<void> }> {
  const server = http2.createServer((req, res) => handle(new NodeResponse(req, res, true, new Uint8Array([127, 0, 0, 1]).buffer, null)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) };
}

test('the head block, repeated fields and trailers reach an HTTP/2 client; Connection is not sent', async () => {
  const srv = await serve((res) => {
    res.writeStatus(Buffer.from('201 Created\r\nx-a: 1\r\nconnection: keep-alive\r\ncontent-type: text/plain', 'latin1'));
    res.writeHeader('set-cookie', 'a=1');
    res.writeHeader('set-cookie', 'b=2');
    res.write(Buffer.from('hello '));
    res.writeTrailers(['grpc-status', '0', 'grpc-message', 'done']);
    res.end(Buffer.from('world'));
  });
  const s = http2.connect(`http://127.0.0.1:${srv.port}`);
  try {
    const { head, body, trailers } = await new Promise<{ head: http2.IncomingHttpHeaders; body: string; trailers: http2.IncomingHttpHeaders }>((resolve, reject) => {
      const st = s.request({ ':path': '/' });
      let head: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders = {};
      let body = '';
      st.on('response', (h) => (head = h));
      st.on('trailers', (t) => (trailers = t));
      st.on('data', (c) => (body += c));
      st.on('end', () => resolve({ head, body, trailers }));
      st.on('error', reject);
      st.end();
    });
    assert.equal(head[':status'], 201);
    assert.equal(head['x-a'], '1');
    assert.deepEqual(head['set-cookie'], ['a=1', 'b=2']);
    assert.equal(head.connection, undefined);
    assert.equal(body, 'hello world');
    assert.equal(trailers['grpc-status'], '0');
    assert.equal(trailers['grpc-message'], 'done');
  } finally {
    s.close();
    await srv.close();
  }
});

test('tryEnd under backpressure: ok=false, then onWritable(offset) at the bytes written, and done at the total', async () => {
  const total = 8 * 1024 * 1024;
  const chunk = Buffer.alloc(256 * 1024, 7);
  const offsets: number[] = [];
  let pausedOnce = false;
  const srv = await serve((res) => {
    res.writeStatus('200 OK');
    const pump = (): boolean => {
      while (res.getWriteOffset() < total) {
        const [ok, done] = res.tryEnd(chunk, total);
        if (done) return true;
        if (!ok) {
          pausedOnce = true;
          return false;
        }
      }
      return true;
    };
    res.onWritable((offset) => {
      offsets.push(offset);
      assert.equal(offset, res.getWriteOffset());
      return pump();
    });
    pump();
  });
  const s = http2.connect(`http://127.0.0.1:${srv.port}`);
  try {
    const got = await new Promise<number>((resolve, reject) => {
      const st = s.request({ ':path': '/' });
      let n = 0;
      st.on('data', (c: Buffer) => (n += c.length));
      st.on('end', () => resolve(n));
      st.on('error', reject);
      st.end();
    });
    assert.equal(got, total);
    assert.ok(pausedOnce, 'the client window made the adapter report backpressure');
    assert.ok(offsets.length > 0 && offsets.every((o) => o % chunk.length === 0));
  } finally {
    s.close();
    await srv.close();
  }
});

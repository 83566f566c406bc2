#!/usr/bin/env node
// A small cleartext HTTP/2 (h2c) upstream for config/examples/upstream-h2.yaml: any path answers JSON of what it
// received (pseudo-headers included); POST /demo.Echo/Say is a gRPC-style unary call (5-byte prefixed messages):
// it answers "echo: <message>" with grpc-status 0 in trailers, or grpc-status 3 when the message is empty.
// Usage: node scripts/h2c-demo-upstream.mjs [port=9002]
import http2 from 'node:http2';

const port = Number(process.argv[2] ?? 9002);
const frame = (text) => {
  const body = Buffer.from(text);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
};
const server = http2.createServer();
server.on('stream', (stream, headers) => {
  stream.on('error', () => {});
  const chunks = [];
  stream.on('data', (c) => chunks.push(c));
  stream.on('end', () => {
    const body = Buffer.concat(chunks);
    if (headers[':path'] === '/demo.Echo/Say') {
      const msg = body.length >= 5 ? body.subarray(5, 5 + body.readUInt32BE(1)).toString() : '';
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers(msg ? { 'grpc-status': '0' } : { 'grpc-status': '3', 'grpc-message': 'empty message' }));
      return void stream.end(msg ? frame(`echo: ${msg}`) : undefined);
    }
    stream.respond({ ':status': 200, 'content-type': 'application/json' });
    stream.end(JSON.stringify({ protocol: 'h2c', headers, bodyBytes: body.length }, null, 2) + '\n');
  });
});
server.listen(port, '127.0.0.1', () => console.log(`h2c demo upstream on 127.0.0.1:${port}`));

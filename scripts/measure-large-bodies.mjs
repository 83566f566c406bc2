#!/usr/bin/env node
// Streams a large upload and a large download through a gateway process and reports its peak RSS
// (VmHWM from /proc), to show that bodies stream with backpressure instead of being buffered.
// uWS refuses a request Content-Length of 10 digits or more (>= 1e9 bytes), so bigger uploads go chunked.
// Usage: node scripts/measure-large-bodies.mjs [MiB=1024]
import { createServer, request } from 'node:http';
import { spawn } from 'node:child_process';
import { writeFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MIB = Number(process.argv[2] ?? 1024);
const SIZE = MIB * 1024 * 1024;
const block = Buffer.alloc(1024 * 1024, 0x61);

const up = createServer((req, res) => {
  if (req.method === 'POST') {
    let n = 0;
    req.on('data', (c) => (n += c.length));
    req.on('end', () => res.end(String(n)));
    return;
  }
  res.writeHead(200, { 'content-length': SIZE });
  let sent = 0;
  const pump = () => {
    while (sent < SIZE) {
      sent += block.length;
      if (!res.write(block)) return void res.once('drain', pump);
    }
    res.end();
  };
  pump();
});
await new Promise((r) => up.listen(0, '127.0.0.1', r));
const PORT = 18000 + Math.floor(Math.random() * 1000);
const dir = mkdtempSync(join(tmpdir(), 'ng-large-'));
const file = join(dir, 'gw.yaml');
writeFileSync(file, `listen: { host: 127.0.0.1, port: ${PORT} }
admin: { host: 127.0.0.1, port: 0 }
workers: 1
upstreams: { up: { nodes: [{ url: http://127.0.0.1:${up.address().port} }] } }
routes: [{ name: all, match: { prefix: / }, upstream: up, maxBodyBytes: ${SIZE * 2} }]
`);
const bin = fileURLToPath(new URL('../bin/nanogate.js', import.meta.url));
const gw = spawn(process.execPath, [bin, 'start', '--config', file], { stdio: ['ignore', 'pipe', 'inherit'] });
process.on('exit', () => gw.kill('SIGKILL'));
await new Promise((resolve) => gw.stdout.on('data', (d) => String(d).includes('is serving') && resolve()));
const rss = (field) => Number(readFileSync(`/proc/${gw.pid}/status`, 'utf8').match(new RegExp(`${field}:\\s+(\\d+)`))[1]) / 1024;
const base = rss('VmRSS');

function upload() {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = request({ host: '127.0.0.1', port: PORT, method: 'POST', path: '/up', headers: SIZE < 1e9 ? { 'content-length': SIZE } : {} }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ bytes: Number(body), ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    });
    req.on('error', reject);
    let sent = 0;
    const pump = () => {
      while (sent < SIZE) {
        sent += block.length;
        if (!req.write(block)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}
function download() {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    request({ host: '127.0.0.1', port: PORT, path: '/down' }, (res) => {
      let n = 0;
      res.on('data', (c) => (n += c.length));
      res.on('end', () => resolve({ bytes: n, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    }).on('error', reject).end();
  });
}
const u = await upload();
const afterUp = rss('VmHWM');
const d = await download();
const peak = rss('VmHWM');
console.log(`body size ${MIB} MiB; gateway RSS at start ${base.toFixed(0)} MiB`);
console.log(`upload:   ${u.bytes === SIZE ? 'intact' : `WRONG (${u.bytes} bytes)`}, ${(MIB / (u.ms / 1000)).toFixed(0)} MiB/s, peak RSS so far ${afterUp.toFixed(0)} MiB`);
console.log(`download: ${d.bytes === SIZE ? 'intact' : `WRONG (${d.bytes} bytes)`}, ${(MIB / (d.ms / 1000)).toFixed(0)} MiB/s, peak RSS ${peak.toFixed(0)} MiB`);
gw.kill('SIGTERM');
up.close();

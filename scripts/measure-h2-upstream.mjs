#!/usr/bin/env node
// HTTP/2 upstream cost, A/B in one run: the same route shape on one one-worker gateway, its upstream reached over
// HTTP/1.1 (the lean client) or over h2c (src/upstream/h2-pool.ts). Both upstreams are Node servers in one child
// process (node:http and node:http2, the same 2-byte answer), the load comes from autocannon in this process
// (HTTP/1.1 keep-alive to the gateway). Reported per phase: requests/s and the gateway process's CPU per request
// (utime+stime from /proc, all threads), phases alternated (h1, h2c, h2c, h1) so drift lands on both.
// Bounded: each phase S seconds (default 5), four phases. Loopback only; children stopped by PID.
// Usage: node scripts/measure-h2-upstream.mjs [seconds=5] [connections=32]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

const SECONDS = Number(process.argv[2] ?? 5);
const CONNS = Number(process.argv[3] ?? 32);
const root = fileURLToPath(new URL('..', import.meta.url));
const children = [];
process.on('exit', () => children.forEach((c) => c.exitCode === null && c.kill('SIGTERM')));
process.on('SIGINT', () => process.exit(130));

function start(args, ready) {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(c);
    let out = '';
    const on = (d) => {
      out += d;
      const m = ready(out);
      if (m) resolve({ child: c, value: m });
    };
    c.stdout.on('data', on);
    c.stderr.on('data', on);
    c.once('exit', (code) => reject(new Error(`exited ${code}: ${out.slice(-500)}`)));
  });
}

const upstreamSrc = `
const http = require('node:http'), http2 = require('node:http2');
const h1 = http.createServer((q, s) => s.end('ok'));
const h2 = http2.createServer();
h2.on('stream', (st) => { st.respond({ ':status': 200 }); st.end('ok'); });
h1.listen(0, '127.0.0.1', () => h2.listen(0, '127.0.0.1', () => console.log('ports=' + h1.address().port + ',' + h2.address().port)));`;
const up = await start(['-e', upstreamSrc], (o) => /ports=(\d+),(\d+)/.exec(o));
const [h1Port, h2Port] = [Number(up.value[1]), Number(up.value[2])];

const dir = mkdtempSync(join(tmpdir(), 'ng-h2-bench-'));
const cfg = join(dir, 'gw.yaml');
writeFileSync(cfg, `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
upstreams:
  h1: { nodes: [{ url: http://127.0.0.1:${h1Port} }], pipelining: 1 }
  h2c: { protocol: h2c, connections: 4, nodes: [{ url: http://127.0.0.1:${h2Port} }] }
routes:
  - { name: h1, match: { prefix: /h1 }, upstream: h1 }
  - { name: h2c, match: { prefix: /h2c }, upstream: h2c }
`);
const gw = await start([join(root, 'bin/nanogate.js'), 'start', '--config', cfg, '--workers', '1'], (o) => /"nanogate is serving".*?"port":(\d+)|"port":(\d+)[^\n]*nanogate is serving/.exec(o)?.slice(1).find(Boolean));
const gwPort = Number(gw.value);

const cpuMs = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime + stime, USER_HZ 100
};
const run = (path, seconds) => autocannon({ url: `http://127.0.0.1:${gwPort}${path}`, connections: CONNS, duration: seconds });

await run('/h1', 1);
await run('/h2c', 1);
const rows = [];
for (const name of ['h1', 'h2c', 'h2c', 'h1']) {
  const c0 = cpuMs(gw.child.pid);
  const r = await run(`/${name}`, SECONDS);
  const cpu = cpuMs(gw.child.pid) - c0;
  const n = r.requests.total;
  rows.push({ upstream: name, rps: Math.round(r.requests.average), p50ms: r.latency.p50, p99ms: r.latency.p99, non2xx: r.non2xx + r.errors, cpuUsPerRequest: Math.round((cpu * 1000) / n) });
}
console.log(`${SECONDS}s per phase, ${CONNS} connections, 1 worker, node ${process.version}; the machine is shared, figures are noisy`);
console.table(rows);
process.exit(0);

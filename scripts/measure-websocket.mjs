#!/usr/bin/env node
// WebSocket relay cost, A/B in one run: the same echo upstream reached directly and through a one-worker gateway.
//  - latency: one connection, one 64-byte message at a time, round trips timed (the gateway relays each round trip
//    twice: client -> upstream and back), direct and gateway phases alternated;
//  - throughput: C connections, each keeping W messages in flight, for S seconds: echoes per second, and messages
//    relayed per CPU-second of the gateway process (its utime+stime from /proc), i.e. per core.
// Three processes: the upstream (a ws echo server), the gateway, and this load generator. Bounded: every phase is
// at most S seconds (default 5), the whole run well under a minute. Loopback only; processes stopped by PID.
// Usage: node scripts/measure-websocket.mjs [seconds=5] [connections=16] [window=32] [bytes=64]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const SECONDS = Number(process.argv[2] ?? 5);
const CONNS = Number(process.argv[3] ?? 16);
const WINDOW = Number(process.argv[4] ?? 32);
const BYTES = Number(process.argv[5] ?? 64);
const ROUND_TRIPS = 4000;
const root = fileURLToPath(new URL('..', import.meta.url));
const children = [];
const stopAll = () => children.forEach((c) => c.exitCode === null && c.kill('SIGTERM'));
process.on('exit', stopAll);
process.on('SIGINT', () => process.exit(130));

function start(args, env, ready) {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
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

// the upstream: ws's own server (what a Node WebSocket service would typically run), one process
const upstreamSrc = `
const { WebSocketServer } = require(${JSON.stringify(join(root, 'node_modules/ws'))});
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
wss.on('connection', (ws) => ws.on('message', (d, b) => ws.send(d, { binary: b })));
wss.on('listening', () => console.log('port=' + wss.address().port));`;
const upstream = await start(['-e', upstreamSrc], {}, (o) => /port=(\d+)/.exec(o)?.[1]);
const upPort = Number(upstream.value);

const dir = mkdtempSync(join(tmpdir(), 'ng-ws-bench-'));
const cfg = join(dir, 'gw.yaml');
writeFileSync(cfg, `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
upstreams:
  ws: { nodes: [{ url: http://127.0.0.1:${upPort} }] }
routes:
  - { name: ws, match: { prefix: / }, upstream: ws, websocket: { pingIntervalMs: 0, idleTimeoutMs: 0 } }
`);
const gateway = await start([join(root, 'bin/nanogate.js'), 'start', '--config', cfg, '--workers', '1'], {}, (o) => /"nanogate is serving".*?"port":(\d+)|"port":(\d+)[^\n]*nanogate is serving/.exec(o)?.slice(1).find(Boolean));
const gwPort = Number(gateway.value);
const direct = `ws://127.0.0.1:${upPort}/`;
const through = `ws://127.0.0.1:${gwPort}/`;

const cpuMs = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime + stime in clock ticks (USER_HZ 100)
};
const openWs = (url) =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
const payload = Buffer.alloc(BYTES, 0x61);

async function latency(url) {
  const ws = await openWs(url);
  const rtt = new Float64Array(ROUND_TRIPS);
  for (let i = 0; i < 200; i++) await new Promise((r) => (ws.once('message', r), ws.send(payload)));
  const deadline = performance.now() + SECONDS * 1000;
  let n = 0;
  while (n < ROUND_TRIPS && performance.now() < deadline) {
    const t = performance.now();
    await new Promise((r) => (ws.once('message', r), ws.send(payload)));
    rtt[n++] = (performance.now() - t) * 1000;
  }
  ws.terminate();
  const s = rtt.slice(0, n).sort();
  return { n, p50: s[Math.floor(n * 0.5)], p99: s[Math.floor(n * 0.99)] };
}

async function throughput(url, pid) {
  const sockets = await Promise.all(Array.from({ length: CONNS }, () => openWs(url)));
  let echoes = 0;
  let running = true;
  for (const ws of sockets) {
    ws.on('message', () => {
      echoes++;
      if (running) ws.send(payload);
    });
  }
  const cpu0 = pid ? cpuMs(pid) : 0;
  const t0 = performance.now();
  const start0 = echoes;
  for (const ws of sockets) for (let i = 0; i < WINDOW; i++) ws.send(payload);
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const got = echoes - start0;
  const secs = (performance.now() - t0) / 1000;
  const cpu = pid ? (cpuMs(pid) - cpu0) / 1000 : 0;
  running = false;
  for (const ws of sockets) ws.terminate();
  return { echoesPerSecond: got / secs, relayedPerCpuSecond: pid ? (2 * got) / cpu : 0, cpuShare: pid ? cpu / secs : 0 };
}

const lat = { direct: [], gateway: [] };
for (let round = 0; round < 2; round++) {
  const order = round % 2 === 0 ? ['direct', 'gateway'] : ['gateway', 'direct'];
  for (const side of order) lat[side].push(await latency(side === 'direct' ? direct : through));
}
const med = (xs, k) => xs.map((x) => x[k]).sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const tpDirect = await throughput(direct, 0);
const tpGateway = await throughput(through, gateway.child.pid);
const r = (x) => Math.round(x);
console.log(`WebSocket relay, ${BYTES}-byte messages, gateway with 1 worker, loopback (${new Date().toISOString()})`);
console.log(`latency, 1 connection, one message at a time (${lat.direct[0].n} round trips per phase, 2 rounds A/B):`);
console.log(`  direct   RTT P50 ${r(med(lat.direct, 'p50'))} µs  P99 ${r(med(lat.direct, 'p99'))} µs`);
console.log(`  gateway  RTT P50 ${r(med(lat.gateway, 'p50'))} µs  P99 ${r(med(lat.gateway, 'p99'))} µs`);
console.log(`  added per round trip (two relays): P50 +${r(med(lat.gateway, 'p50') - med(lat.direct, 'p50'))} µs, P99 +${r(med(lat.gateway, 'p99') - med(lat.direct, 'p99'))} µs`);
console.log(`throughput, ${CONNS} connections x ${WINDOW} in flight, ${SECONDS} s:`);
console.log(`  direct   ${r(tpDirect.echoesPerSecond)} echoes/s`);
console.log(`  gateway  ${r(tpGateway.echoesPerSecond)} echoes/s = ${r(2 * tpGateway.echoesPerSecond)} messages/s relayed, gateway CPU ${(tpGateway.cpuShare * 100).toFixed(0)}% of a core -> ${r(tpGateway.relayedPerCpuSecond)} messages relayed per CPU-second`);
stopAll();
process.exit(0);

#!/usr/bin/env node
// The node:http2 listener's cost beside the uWS listener, A/B in one run, same gateway process, same route:
//  - requests: C concurrent requests for S seconds, (a) HTTPS/1.1 to the uWS listener, (b) HTTPS/1.1 to the node
//    listener, (c) HTTP/2 to the node listener (one connection, C streams); rounds alternated. Reported: req/s and
//    gateway CPU µs per request (its utime+stime from /proc: the number that does not depend on how fast this
//    client is);
//  - handshakes: N new TLS connections one after another, one request each: uWS, node listener without client
//    certificates, and a second gateway whose node listener requires one (the client presents it). Reported: gateway
//    CPU µs per connection and the client's wall time per connection.
// Three processes: upstream (node:http, 2-byte answer), gateway (--workers 1: both listeners in one worker), and this
// client. Loopback only; processes stopped by PID. Every phase is bounded by S seconds.
// Usage: node scripts/measure-http2.mjs [seconds=4] [concurrency=32] [handshakes=300]
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import http2 from 'node:http2';
import https from 'node:https';

const SECONDS = Number(process.argv[2] ?? 4);
const CONC = Number(process.argv[3] ?? 32);
const HANDSHAKES = Number(process.argv[4] ?? 300);
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

const dir = mkdtempSync(join(tmpdir(), 'ng-h2-bench-'));
const ssl = (args) => execFileSync('openssl', args, { stdio: 'ignore' });
ssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'ca-key.pem'), '-out', join(dir, 'ca.pem'), '-days', '2', '-subj', '/CN=bench-ca']);
for (const [name, usage] of [['server', 'serverAuth'], ['client', 'clientAuth']]) {
  writeFileSync(join(dir, `${name}.ext`), `subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=${usage}\n`);
  ssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, `${name}-key.pem`), '-out', join(dir, `${name}.csr`), '-subj', `/CN=${name}`]);
  ssl(['x509', '-req', '-in', join(dir, `${name}.csr`), '-CA', join(dir, 'ca.pem'), '-CAkey', join(dir, 'ca-key.pem'), '-CAcreateserial', '-out', join(dir, `${name}.pem`), '-days', '2', '-extfile', join(dir, `${name}.ext`)]);
}
const ca = readFileSync(join(dir, 'ca.pem'));
const clientCert = { cert: readFileSync(join(dir, 'client.pem')), key: readFileSync(join(dir, 'client-key.pem')) };

const upstream = await start(['-e', `require('http').createServer((q, s) => { q.resume(); q.on('end', () => s.end('ok')); }).listen(0, '127.0.0.1', function () { console.log('port=' + this.address().port); });`], (o) => /port=(\d+)/.exec(o)?.[1]);

async function gateway(name, mtls) {
  const cfg = join(dir, `${name}.yaml`);
  writeFileSync(
    cfg,
    `listen:
  host: 127.0.0.1
  port: 0
  tls: { cert: ${join(dir, 'server.pem')}, key: ${join(dir, 'server-key.pem')} }
  http2: { port: 0${mtls ? `, clientCertificates: { ca: ${join(dir, 'ca.pem')}, mode: required }` : ''} }
admin: { host: 127.0.0.1, port: 0 }
upstreams:
  app: { nodes: [{ url: http://127.0.0.1:${upstream.value} }] }
routes:
  - { name: all, match: { path: /* }, upstream: app }
`,
  );
  const g = await start([join(root, 'bin/nanogate.js'), 'start', '--config', cfg, '--workers', '1'], (o) => o.split('\n').find((l) => l.includes('nanogate is serving') && l.endsWith('}')));
  const line = JSON.parse(g.value);
  return { pid: g.child.pid, port: line.port, http2Port: line.http2 };
}

const cpuUs = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10_000; // clock ticks (USER_HZ 100) -> µs
};

async function loadH1(port) {
  const agent = new https.Agent({ keepAlive: true, maxSockets: CONC, ca });
  let n = 0;
  let running = true;
  const one = () =>
    new Promise((resolve) => {
      const req = https.request({ host: '127.0.0.1', port, path: '/x', agent, servername: 'localhost' }, (res) => {
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', resolve);
      req.end();
    });
  const loop = async () => {
    while (running) {
      await one();
      n++;
    }
  };
  return run(Array.from({ length: CONC }, loop), () => n, () => ((running = false), agent.destroy()));
}

async function loadH2(port) {
  const s = http2.connect(`https://localhost:${port}`, { ca });
  s.on('error', () => {});
  let n = 0;
  let running = true;
  const one = () =>
    new Promise((resolve) => {
      const st = s.request({ ':path': '/x' });
      st.on('data', () => {});
      st.on('end', resolve);
      st.on('error', resolve);
      st.end();
    });
  const loop = async () => {
    while (running) {
      await one();
      n++;
    }
  };
  return run(Array.from({ length: CONC }, loop), () => n, () => ((running = false), s.close()));
}

let gwPid = 0;
async function run(loops, count, stop) {
  await new Promise((r) => setTimeout(r, 500)); // warm-up
  const n0 = count();
  const c0 = cpuUs(gwPid);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const n = count() - n0;
  const cpu = cpuUs(gwPid) - c0;
  const secs = (performance.now() - t0) / 1000;
  stop();
  await Promise.allSettled(loops);
  return { rps: n / secs, cpuUsPerReq: cpu / n };
}

async function handshakes(port, h2, cert) {
  const c0 = cpuUs(gwPid);
  const t0 = performance.now();
  const deadline = t0 + SECONDS * 1000;
  let n = 0;
  while (n < HANDSHAKES && performance.now() < deadline) {
    await new Promise((resolve) => {
      if (h2) {
        const s = http2.connect(`https://localhost:${port}`, { ca, ...(cert ? clientCert : {}) });
        s.on('error', resolve);
        const st = s.request({ ':path': '/x' });
        st.on('data', () => {});
        st.on('end', () => (s.close(), resolve()));
        st.on('error', resolve);
        st.end();
      } else {
        const req = https.request({ host: '127.0.0.1', port, path: '/x', ca, servername: 'localhost', agent: false, ...(cert ? clientCert : {}) }, (res) => {
          res.resume();
          res.on('end', resolve);
        });
        req.on('error', resolve);
        req.end();
      }
    });
    n++;
  }
  return { connections: n, cpuUsPerConn: (cpuUs(gwPid) - c0) / n, wallMsPerConn: (performance.now() - t0) / n };
}

const fmt = (r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Math.round(v * 10) / 10]));
const g1 = await gateway('plain', false);
gwPid = g1.pid;
const results = { 'uws https/1.1': [], 'node https/1.1': [], 'node h2': [] };
for (let round = 0; round < 2; round++) {
  const order = round === 0 ? Object.keys(results) : Object.keys(results).reverse();
  for (const k of order) {
    const r = k === 'uws https/1.1' ? await loadH1(g1.port) : k === 'node https/1.1' ? await loadH1(g1.http2Port) : await loadH2(g1.http2Port);
    results[k].push(fmt(r));
  }
}
console.log(`requests (${SECONDS} s per phase, ${CONC} concurrent, 2 rounds, gateway --workers 1):`);
for (const [k, v] of Object.entries(results)) console.log(`  ${k.padEnd(16)} ${v.map((r) => `${r.rps} req/s, ${r.cpuUsPerReq} µs CPU/req`).join(' | ')}`);
const hs = {
  'uws https/1.1': await handshakes(g1.port, false, false),
  'node https/1.1': await handshakes(g1.http2Port, false, false),
  'node h2': await handshakes(g1.http2Port, true, false),
};
const g2 = await gateway('mtls', true);
gwPid = g2.pid;
hs['node h2 + mTLS'] = await handshakes(g2.http2Port, true, true);
hs['node https/1.1 + mTLS'] = await handshakes(g2.http2Port, false, true);
console.log(`handshakes (new connection + one request each, up to ${HANDSHAKES} or ${SECONDS} s):`);
for (const [k, v] of Object.entries(hs)) console.log(`  ${k.padEnd(22)} ${fmt(v).connections} conns, ${fmt(v).cpuUsPerConn} µs gateway CPU/conn, ${fmt(v).wallMsPerConn} ms wall/conn`);
process.exit(0);

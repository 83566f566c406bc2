/**
 * What an aggregate route saves a client, and what it costs the gateway: one request to a 3-call aggregate route vs
 * the same 3 upstream calls made by the client one after another through 3 pass-through routes, A/B in one run
 * against one gateway.
 *
 * Three processes: a small JSON upstream (node:http, its own process so its CPU is not counted), the gateway (the
 * real CLI, one worker) and this process as the closed-loop client (`--concurrency` loops on keep-alive
 * connections). Phases of `--seconds` alternate: "sequential" (each loop does GET /a, /b, /c in turn: one screen)
 * and "aggregate" (each loop does GET /screen: one screen). Reported per screen: client latency (mean, P50, P99)
 * and gateway CPU time (utime + stime of the gateway process over the phase, all threads) divided by screens.
 *
 * Usage (after npm run build; Linux for the CPU column):
 *   node dist/bench/aggregate/aggregate-ab.js [--seconds 3] [--rounds 2] [--concurrency 8] [--upstream-ms 0]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin/nanogate.js');
const { values: opt } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '8' },
    'upstream-ms': { type: 'string', default: '0' },
    role: { type: 'string', default: 'bench' },
    port: { type: 'string', default: '0' },
  },
});

// The upstream role: a JSON answer after `--upstream-ms`.
if (opt.role === 'upstream') {
  const delay = Number(opt['upstream-ms']);
  const body = JSON.stringify({ id: 42, name: 'Ada', items: [1, 2, 3] });
  const server = createServer((req, res) => {
    const answer = () => res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    req.resume();
    req.on('end', () => (delay > 0 ? setTimeout(answer, delay) : answer()));
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as AddressInfo).port}\n`));
} else {
  await bench();
}

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const i = buf.indexOf('\n');
      if (i >= 0) resolve(buf.slice(0, i));
    });
    child.on('exit', (code) => reject(new Error(`exited with ${code} before it was ready`)));
  });
}

function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, in clock ticks of 10 ms
}

async function bench(): Promise<void> {
  const seconds = Number(opt.seconds);
  const rounds = Number(opt.rounds);
  const concurrency = Number(opt.concurrency);
  const children: ChildProcess[] = [];
  const stop = () => children.forEach((c) => c.kill('SIGTERM'));
  process.on('exit', stop);
  try {
    const up = spawn(process.execPath, [fileURLToPath(import.meta.url), '--role', 'upstream', '--upstream-ms', opt['upstream-ms']!], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(up);
    const upPort = Number(await firstLine(up));
    const dir = mkdtempSync(join(tmpdir(), 'nanogate-aggregate-ab-'));
    const config = join(dir, 'gateway.yaml');
    writeFileSync(
      config,
      `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
workers: 1
upstreams:
  app: { nodes: [{ url: http://127.0.0.1:${upPort} }] }
routes:
  - { name: a, match: { path: /a }, upstream: app }
  - { name: b, match: { path: /b }, upstream: app }
  - { name: c, match: { path: /c }, upstream: app }
  - name: screen
    match: { path: /screen }
    aggregate:
      calls:
        - { name: a, upstream: app, path: /a }
        - { name: b, upstream: app, path: /b }
        - { name: c, upstream: app, path: /c }
`,
    );
    const gw = spawn(process.execPath, [BIN, 'start', '--config', config], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(gw);
    const port = await new Promise<number>((resolve, reject) => {
      let buf = '';
      gw.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        const line = buf.split('\n').find((l) => l.includes('"nanogate is serving"'));
        if (line) resolve((JSON.parse(line) as { port: number }).port);
      });
      gw.on('exit', (code) => reject(new Error(`gateway exited with ${code}`)));
    });
    const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
    const get = (path: string) =>
      new Promise<void>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
          if (res.statusCode !== 200) reject(new Error(`${path}: ${res.statusCode}`));
          res.resume();
          res.on('end', resolve);
        });
        req.on('error', reject);
        req.end();
      });
    const screens = { sequential: async () => (await get('/a'), await get('/b'), await get('/c')), aggregate: () => get('/screen') };
    const phase = async (kind: keyof typeof screens, ms: number) => {
      const lat: number[] = [];
      const end = performance.now() + ms;
      const cpu0 = cpuMs(gw.pid!);
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (performance.now() < end) {
            const t = performance.now();
            await screens[kind]();
            lat.push(performance.now() - t);
          }
        }),
      );
      const cpu = cpuMs(gw.pid!) - cpu0;
      lat.sort((x, y) => x - y);
      const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
      return { kind, screens: lat.length, perSecond: Math.round(lat.length / (ms / 1000)), meanMs: lat.reduce((s, v) => s + v, 0) / lat.length, p50Ms: q(0.5), p99Ms: q(0.99), cpuUsPerScreen: (cpu * 1000) / lat.length };
    };
    await phase('sequential', 500);
    await phase('aggregate', 500);
    const rows = [];
    for (let r = 0; r < rounds; r++) for (const kind of ['sequential', 'aggregate'] as const) rows.push(await phase(kind, seconds * 1000));
    console.log('| phase | screens/s | mean ms | P50 ms | P99 ms | gateway CPU µs / screen |');
    console.log('|---|---:|---:|---:|---:|---:|');
    for (const r of rows) console.log(`| ${r.kind} | ${r.perSecond} | ${r.meanMs.toFixed(3)} | ${r.p50Ms.toFixed(3)} | ${r.p99Ms.toFixed(3)} | ${r.cpuUsPerScreen.toFixed(1)} |`);
    agent.destroy();
  } finally {
    stop();
  }
}

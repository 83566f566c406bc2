/**
 * What mirroring costs the real traffic: client latency and gateway CPU per request with mirroring off and on, A/B
 * in one run against one gateway.
 *
 * Four processes, as in every macro benchmark here: the bench upstream (uWS, 100-byte answers), a shadow upstream
 * that answers every copy after `--shadow-ms` (500 ms by default: a slow shadow is where a mirror that waited would
 * show), the gateway (the real CLI) and the open-loop load generator (fixed rate, latency timed from each request's
 * scheduled send time). The gateway has two routes to the same upstream, `/off` without a mirror and `/on` mirroring
 * every request to the shadow; phases of equal length alternate off, on, off, on… after a short warm-up of both.
 *
 * CPU per request is the gateway process's CPU time over a phase (every thread, from /proc/<pid>/task/<tid>/schedstat,
 * in ns) divided by the responses of that phase; it includes the copies' work (building, sending, reading and dropping
 * their answers, the timeout sweep) and the idle ticks of the process, the same on both sides.
 *
 * Usage (after npm run build; Linux for the CPU column):
 *   node dist/bench/mirror/mirror-ab.js [--rate 1000] [--connections 16] [--seconds 2] [--rounds 2] [--workers 1]
 *                                       [--shadow-ms 500]
 */
import { spawn, fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { decodeHistogram, summarize } from '../../src/bench/hist.js';
import type { FromLoadgen, LoadJob, LoadResult, ToLoadgen } from '../../src/bench/load-types.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DIST_BENCH = join(ROOT, 'dist/src/bench');
const BIN = join(ROOT, 'bin/nanogate.js');

const { values: opt } = parseArgs({
  options: {
    rate: { type: 'string', default: '1000' },
    connections: { type: 'string', default: '16' },
    seconds: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '2' },
    workers: { type: 'string', default: '1' },
    'shadow-ms': { type: 'string', default: '500' },
  },
});
const RATE = Number(opt.rate);
const CONNECTIONS = Number(opt.connections);
const SECONDS = Number(opt.seconds);
const ROUNDS = Number(opt.rounds);
const WORKERS = Number(opt.workers);
const SHADOW_MS = Number(opt['shadow-ms']);

const children: ChildProcess[] = [];

function lines(child: ChildProcess, onLine: (line: string) => void): void {
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
}

async function startUpstream(): Promise<number> {
  const child = spawn(process.execPath, [join(DIST_BENCH, 'upstream-server.js'), '--host', '127.0.0.1', '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise<number>((resolve) => lines(child, (l) => l.startsWith('{') && resolve(JSON.parse(l).port)));
}

/** A node:http server in a process of its own that answers every request after SHADOW_MS, and counts them. */
async function startShadow(): Promise<{ port: number; child: ChildProcess }> {
  const script = `
    const http = require('node:http');
    let n = 0;
    const s = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => setTimeout(() => { n++; res.end('shadow'); }, ${SHADOW_MS}));
    });
    s.keepAliveTimeout = 30000;
    s.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: s.address().port })));
    process.on('message', () => process.send({ answered: n }));
  `;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  children.push(child);
  const port = await new Promise<number>((resolve) => lines(child, (l) => l.startsWith('{') && resolve(JSON.parse(l).port)));
  return { port, child };
}

function shadowAnswered(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.once('message', (m: { answered: number }) => resolve(m.answered));
    child.send('count');
  });
}

async function startGateway(file: string): Promise<{ child: ChildProcess; port: number; admin: number }> {
  const child = spawn(process.execPath, [BIN, 'start', '--config', file], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NANOGATE_LOG_LEVEL: 'info' } });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`gateway exited (${code})`)));
    lines(child, (l) => {
      if (l.includes('nanogate is serving')) {
        const j = JSON.parse(l);
        resolve({ child, port: j.port, admin: j.admin });
      }
    });
  });
}

function startLoadgen(): Promise<ChildProcess> {
  const child = fork(join(DIST_BENCH, 'loadgen.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.push(child);
  return new Promise((resolve) => child.once('message', (m: FromLoadgen) => m.type === 'ready' && resolve(child)));
}

let jobs = 0;
function runLoad(gen: ChildProcess, job: LoadJob): Promise<LoadResult> {
  const id = ++jobs;
  return new Promise((resolve, reject) => {
    const on = (m: FromLoadgen) => {
      if (m.type === 'result' && m.id === id) {
        gen.off('message', on);
        resolve(m.result);
      } else if (m.type === 'failed' && m.id === id) {
        gen.off('message', on);
        reject(new Error(m.message));
      }
    };
    gen.on('message', on);
    gen.send({ type: 'run', id, job } satisfies ToLoadgen);
  });
}

/** CPU time of every thread of `pid` so far, in ns (Linux schedstat); NaN elsewhere. */
function cpuNs(pid: number): number {
  try {
    let total = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    return total;
  } catch {
    return NaN;
  }
}

async function mirrorCounts(admin: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^nanogate_mirror_requests_total\{route="on",outcome="(\w+)"\} (\d+)$/gm)) out[m[1]] = Number(m[2]);
  return out;
}

interface Phase {
  side: 'off' | 'on';
  result: LoadResult;
  cpuNsPerRequest: number;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'nanogate-mirror-bench-'));
  const upstreamPort = await startUpstream();
  const shadow = await startShadow();
  const file = join(dir, 'gateway.json');
  writeFileSync(
    file,
    JSON.stringify({
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      reload: { watch: false },
      workers: WORKERS,
      upstreams: {
        origin: { nodes: [{ url: `http://127.0.0.1:${upstreamPort}` }], connections: 64 },
        // copies stay open SHADOW_MS each: rate × SHADOW_MS of them at once, each on its own connection
        shadow: { nodes: [{ url: `http://127.0.0.1:${shadow.port}` }], connections: 4096 },
      },
      routes: [
        { name: 'off', match: { prefix: '/off' }, upstream: 'origin' },
        { name: 'on', match: { prefix: '/on' }, upstream: 'origin', mirror: { upstream: 'shadow', percent: 100, timeoutMs: SHADOW_MS * 4, maxInFlight: 100_000 } },
      ],
    }),
  );
  const gw = await startGateway(file);
  const gen = await startLoadgen();
  const job = (side: 'off' | 'on', durationMs: number): LoadJob => ({
    kind: 'fixed',
    host: '127.0.0.1',
    port: gw.port,
    method: 'GET',
    paths: [`/${side}`],
    headers: {},
    bodyBytes: 0,
    connections: CONNECTIONS,
    durationMs,
    rate: RATE,
    timeoutMs: 10_000,
    expectBodyBytes: 100,
    label: side,
  });
  // Warm-up of both routes: JIT, the origin's and the shadow's connections.
  await runLoad(gen, job('off', 500));
  await runLoad(gen, job('on', 500));
  const phases: Phase[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const side of round % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
      const before = cpuNs(gw.child.pid!);
      const result = await runLoad(gen, job(side, SECONDS * 1000));
      phases.push({ side, result, cpuNsPerRequest: (cpuNs(gw.child.pid!) - before) / Math.max(1, result.responses) });
    }
  }
  // the copies of the last phase are answered SHADOW_MS later
  await new Promise((r) => setTimeout(r, SHADOW_MS * 2));
  const counts = await mirrorCounts(gw.admin);
  const answered = await shadowAnswered(shadow.child);

  const ms = (us: number) => (us / 1000).toFixed(2);
  console.log(`\n${WORKERS} worker(s), ${RATE} req/s open loop on ${CONNECTIONS} connections, ${SECONDS} s phases, ${ROUNDS} rounds; /on mirrors every request to a shadow answering after ${SHADOW_MS} ms\n`);
  console.log('| route | round | responses | errors | non-2xx | p50 ms | p90 ms | p99 ms | max ms | gateway CPU µs/request |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  phases.forEach((p, i) => {
    const s = summarize(decodeHistogram(p.result.latency));
    const e = p.result.errors;
    const errors = e.connect + e.reset + e.timeout + e.parse + e.unfinished + e.mismatch;
    console.log(`| ${p.side} | ${Math.floor(i / 2) + 1} | ${p.result.responses} | ${errors} | ${p.result.non2xx} | ${ms(s.p50)} | ${ms(s.p90)} | ${ms(s.p99)} | ${ms(s.max)} | ${(p.cpuNsPerRequest / 1000).toFixed(1)} |`);
  });
  console.log(`\nmirror outcomes (route "on", warm-up included): ${JSON.stringify(counts)}; the shadow answered ${answered}`);
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const c of children) if (c.exitCode === null && c.pid !== undefined) c.kill('SIGTERM');
  });

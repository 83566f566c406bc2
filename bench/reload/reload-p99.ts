/**
 * What a config reload costs the traffic that is running while it happens.
 *
 * Three separate processes, as in every macro benchmark here: the bench upstream (uWS, 100-byte answers), the
 * gateway (the real CLI, with a 10,000-route config) and the open-loop load generator (fixed rate, latency timed
 * from each request's scheduled send time, so a stall shows up in every request queued behind it). Phases of equal
 * length alternate:
 *
 *   steady   the fixed-rate load alone
 *   reload   the same load while `PUT /config` applies another 10,000-route config every `--every` ms,
 *            alternating two configs that differ in every route (its Host header mode)
 *
 * and the report puts the P50/P99/P99.9/max of both side by side, with the time each apply took (compile on the
 * control plane, prepare and commit in the workers, as the admin API reports them).
 *
 * Usage (after npm run build):
 *   node dist/bench/reload/reload-p99.js [--routes 10000] [--rate 2000] [--connections 32] [--seconds 6]
 *                                        [--every 1500] [--rounds 2] [--workers 2]
 */
import { spawn, fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { routeSet, routeSetPaths } from '../../src/bench/gen-config.js';
import { decodeHistogram, summarize } from '../../src/bench/hist.js';
import type { FromLoadgen, LoadJob, LoadResult, ToLoadgen } from '../../src/bench/load-types.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DIST_BENCH = join(ROOT, 'dist/src/bench');
const BIN = join(ROOT, 'bin/nanogate.js');

const { values: opt } = parseArgs({
  options: {
    routes: { type: 'string', default: '10000' },
    rate: { type: 'string', default: '2000' },
    connections: { type: 'string', default: '32' },
    seconds: { type: 'string', default: '6' },
    every: { type: 'string', default: '1500' },
    rounds: { type: 'string', default: '2' },
    workers: { type: 'string', default: '2' },
  },
});
const ROUTES = Number(opt.routes);
const RATE = Number(opt.rate);
const CONNECTIONS = Number(opt.connections);
const SECONDS = Number(opt.seconds);
const EVERY = Number(opt.every);
const ROUNDS = Number(opt.rounds);
const WORKERS = Number(opt.workers);

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

async function startUpstream(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [join(DIST_BENCH, 'upstream-server.js'), '--host', '127.0.0.1', '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) => lines(child, (l) => l.startsWith('{') && resolve(JSON.parse(l).port)));
  return { child, port };
}

/** Two configs of ROUTES routes that differ in every route (its Host header mode). */
function configText(upstreamPort: number, variant: 'a' | 'b'): string {
  const routes = routeSet(ROUTES);
  return JSON.stringify({
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    reload: { watch: false },
    workers: WORKERS,
    upstreams: { origin: { nodes: [{ url: `http://127.0.0.1:${upstreamPort}` }], connections: 64 } },
    routes: routes.map((r) => ({ ...r, hostHeader: variant === 'a' ? 'upstream' : 'preserve' })),
  });
}

async function startGateway(file: string): Promise<{ child: ChildProcess; port: number; admin: number }> {
  const child = spawn(process.execPath, [BIN, 'start', '--config', file], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NANOGATE_LOG_LEVEL: 'info' } });
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

interface PhaseResult {
  phase: 'steady' | 'reload';
  result: LoadResult;
  applies: { compileMs: number; prepareMs: number; commitMs: number; totalMs: number }[];
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'nanogate-reload-bench-'));
  const upstream = await startUpstream();
  const texts = { a: configText(upstream.port, 'a'), b: configText(upstream.port, 'b') };
  const file = join(dir, 'gateway.json');
  writeFileSync(file, texts.a);
  const t = performance.now();
  const gw = await startGateway(file);
  console.error(`gateway up with ${ROUTES} routes in ${Math.round(performance.now() - t)} ms; ${(texts.a.length / 1e6).toFixed(1)} MB of config`);
  const gen = await startLoadgen();
  const p = routeSetPaths(ROUTES);
  const job: LoadJob = {
    kind: 'fixed',
    host: '127.0.0.1',
    port: gw.port,
    method: 'GET',
    paths: [...p.exact, ...p.param, ...p.prefix],
    headers: {},
    bodyBytes: 0,
    connections: CONNECTIONS,
    durationMs: SECONDS * 1000,
    rate: RATE,
    timeoutMs: 10_000,
    expectBodyBytes: 100,
    label: 'reload',
  };
  const adminUrl = `http://127.0.0.1:${gw.admin}`;
  let next: 'a' | 'b' = 'b';
  const results: PhaseResult[] = [];
  // Warm-up: JIT, connections, pools.
  await runLoad(gen, { ...job, durationMs: 2000 });
  for (let round = 0; round < ROUNDS; round++) {
    results.push({ phase: 'steady', result: await runLoad(gen, job), applies: [] });
    const applies: PhaseResult['applies'] = [];
    const load = runLoad(gen, job);
    const end = Date.now() + SECONDS * 1000 - EVERY / 2;
    await new Promise((r) => setTimeout(r, EVERY / 2));
    while (Date.now() < end) {
      const started = performance.now();
      const res = await fetch(`${adminUrl}/config`, { method: 'PUT', body: texts[next], headers: { 'content-type': 'application/json' } });
      const body = (await res.json()) as { timings?: PhaseResult['applies'][number]; errors?: string[] };
      if (res.status !== 200) throw new Error(`apply failed: ${res.status} ${JSON.stringify(body).slice(0, 500)}`);
      applies.push({ ...body.timings!, totalMs: Math.round(performance.now() - started) });
      next = next === 'a' ? 'b' : 'a';
      await new Promise((r) => setTimeout(r, Math.max(0, EVERY - (performance.now() - started))));
    }
    results.push({ phase: 'reload', result: await load, applies });
  }
  gen.send({ type: 'exit' } satisfies ToLoadgen);
  gw.child.kill('SIGTERM');
  upstream.child.kill('SIGTERM');

  const ms = (us: number) => (us / 1000).toFixed(2);
  console.log(`\n${ROUTES} routes, ${WORKERS} workers, ${RATE} req/s open loop on ${CONNECTIONS} connections, ${SECONDS} s phases, apply every ${EVERY} ms during "reload"\n`);
  console.log('| phase | round | requests | errors | non-2xx | p50 ms | p99 ms | p99.9 ms | max ms | applies (compile / prepare / commit / total ms, mean) |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  results.forEach((r, i) => {
    const s = summarize(decodeHistogram(r.result.latency));
    const e = r.result.errors;
    const errors = e.connect + e.reset + e.timeout + e.parse + e.unfinished + e.mismatch;
    const mean = (k: keyof PhaseResult['applies'][number]) => (r.applies.reduce((a, x) => a + x[k], 0) / (r.applies.length || 1)).toFixed(1);
    const applies = r.applies.length ? `${r.applies.length} x (${mean('compileMs')} / ${mean('prepareMs')} / ${mean('commitMs')} / ${mean('totalMs')})` : '-';
    console.log(`| ${r.phase} | ${Math.floor(i / 2) + 1} | ${r.result.responses} | ${errors} | ${r.result.non2xx} | ${ms(s.p50)} | ${ms(s.p99)} | ${ms(s.p999)} | ${ms(s.max)} | ${applies} |`);
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

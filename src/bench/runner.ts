import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { generateConfig } from './gen-config.js';
import { decodeHistogram, encodeHistogram, mergeHistograms, summarize, type LatencySummary } from './hist.js';
import { emptyErrors, totalErrors, type LoadErrors, type LoadJob, type LoadKind, type LoadResult } from './load-types.js';
import { startGateway, type GatewayProc, type Loadgen, type Proc } from './processes.js';
import type { ModeResult, RoundStats, ScenarioResult, TargetStats } from './results.js';
import type { Scenario } from './scenario.js';
import type { Progress } from './progress.js';

/**
 * Runs one scenario: starts the gateway with the scenario's config, warms both targets up, then measures direct and
 * gateway in alternation (round 1: direct, gateway; round 2: gateway, direct; …) for each mode, so that drift of a
 * shared, noisy machine lands on both sides. The upstream and the load generator are separate processes shared
 * by all scenarios of a run.
 */

export interface RunContext {
  runDir: string;
  upstreamUrl: string;
  upstream: Proc | null;
  loadgen: Loadgen;
  progress: Progress;
}

type Target = 'direct' | 'gateway';

interface Endpoint {
  host: string;
  port: number;
  paths: string[];
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runScenario(s: Scenario, ctx: RunContext, index: number, total: number): Promise<ScenarioResult> {
  const warnings: string[] = [];
  const tag = `[${index}/${total} ${s.name}]`;
  const up = new URL(ctx.upstreamUrl);

  // --- the gateway config: a file, or generated into the run directory
  // A free port chosen here and handed to the config as NANOGATE_BENCH_PORT (rather than listen.port 0): every
  // worker then binds one known port, also on gateway builds where port 0 with several workers failed to start.
  const port = await freePort();
  let configFile = s.configFile;
  let routes: number | null = null;
  if (!configFile) {
    const gen = s.gateway.generate!;
    const { kind, ...options } = gen;
    const config = generateConfig(kind, options, { upstreamUrl: ctx.upstreamUrl, port });
    routes = Array.isArray(config.routes) ? config.routes.length : null;
    configFile = join(ctx.runDir, `${s.name}.gateway.json`);
    writeFileSync(configFile, JSON.stringify(config, null, 1));
  }
  const env: Record<string, string> = { NANOGATE_BENCH_UPSTREAM: ctx.upstreamUrl, NANOGATE_BENCH_PORT: String(port), ...(s.gateway.env ?? {}) };
  ctx.progress.line(`${tag} starting gateway (${s.gateway.workers ?? 'config default'} workers) with ${configFile}`);
  const t0 = Date.now();
  const gw = await startGateway(configFile, s.gateway.workers, env, join(ctx.runDir, `${s.name}.gateway.log`));
  ctx.progress.line(`${tag} gateway ready on 127.0.0.1:${gw.port} with ${gw.workers} workers in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  // gateway.baseline: a second gateway takes the place of the direct upstream (the same request, without what the
  // scenario's config adds); started on its own port, measured alternately like the direct target
  let base: GatewayProc | null = null;
  try {
    if (s.baselineFile) {
      const basePort = await freePort();
      base = await startGateway(s.baselineFile, s.gateway.workers, { ...env, NANOGATE_BENCH_PORT: String(basePort) }, join(ctx.runDir, `${s.name}.baseline.log`));
      ctx.progress.line(`${tag} baseline gateway ready on 127.0.0.1:${base.port} with ${s.baselineFile}`);
    }
    const direct: Endpoint = base ? { host: '127.0.0.1', port: base.port, paths: s.request.paths } : { host: up.hostname, port: Number(up.port || 80), paths: s.request.directPaths ?? s.request.paths };
    const gateway: Endpoint = { host: '127.0.0.1', port: gw.port, paths: s.request.paths };
    await probe(s, direct, 'direct');
    await probe(s, gateway, 'gateway');

    const job = (kind: LoadKind, ep: Endpoint, seconds: number, label: string): LoadJob => ({
      kind,
      host: ep.host,
      port: ep.port,
      method: s.request.method,
      paths: ep.paths,
      headers: s.request.headers,
      bodyBytes: s.request.bodyBytes,
      connections: kind === 'fixed' ? s.fixedRate!.connections : s.maxThroughput!.connections,
      durationMs: Math.round(seconds * 1000),
      rate: kind === 'fixed' ? s.fixedRate!.rate : 0,
      timeoutMs: Math.round(s.timeoutSeconds * 1000),
      expectBodyBytes: s.expect.bodyBytes ?? null,
      label,
      websocket: s.websocket ?? null,
    });

    // --- warm-up: JIT, upstream pools and the generator itself, at full load (not recorded)
    if (s.warmupSeconds > 0) {
      const kind: LoadKind = s.maxThroughput ? 'max' : 'fixed';
      for (const [name, ep] of [['direct', direct], ['gateway', gateway]] as const) {
        const label = `${tag} warm-up ${name}`;
        await ctx.loadgen.run(job(kind, ep, s.warmupSeconds, label), ctx.progress.phase(label, s.warmupSeconds));
        ctx.progress.done(label, '');
        await sleep(200);
      }
    }

    const modes: LoadKind[] = [];
    if (s.fixedRate) modes.push('fixed');
    if (s.maxThroughput) modes.push('max');
    const raw: Record<LoadKind, Record<Target, Array<{ r: LoadResult; gwCpu: number | null; upCpu: number | null }>>> = {
      fixed: { direct: [], gateway: [] },
      max: { direct: [], gateway: [] },
    };
    for (let round = 1; round <= s.rounds; round++) {
      const order: Target[] = round % 2 === 1 ? ['direct', 'gateway'] : ['gateway', 'direct'];
      for (const mode of modes) {
        for (const target of order) {
          const ep = target === 'direct' ? direct : gateway;
          const what = mode === 'fixed' ? `fixed ${s.fixedRate!.rate.toLocaleString('en-US')} req/s` : `max ${s.maxThroughput!.connections} conns`;
          const label = `${tag} r${round}/${s.rounds} ${what} ${target.padEnd(7)}`;
          const measured = target === 'gateway' ? gw.proc : (base?.proc ?? null);
          const g0 = measured?.cpuMicros() ?? null;
          const u0 = ctx.upstream?.cpuMicros() ?? null;
          const r = await ctx.loadgen.run(job(mode, ep, s.durationSeconds, label), ctx.progress.phase(label, s.durationSeconds));
          const g1 = measured?.cpuMicros() ?? null;
          const u1 = ctx.upstream?.cpuMicros() ?? null;
          const gwCpu = g0 !== null && g1 !== null && r.responses > 0 ? (g1 - g0) / r.responses : null;
          const upCpu = u0 !== null && u1 !== null && r.responses > 0 ? (u1 - u0) / r.responses : null;
          raw[mode][target].push({ r, gwCpu, upCpu });
          const l = summarize(decodeHistogram(r.latency));
          const errs = totalErrors(r.errors);
          ctx.progress.done(label, `${fmtInt(r.rps)} req/s  p50 ${fmtInt(l.p50)}  p99 ${fmtInt(l.p99)} µs${errs ? `  errors ${errs}` : ''}${r.non2xx ? `  non-2xx ${r.non2xx}` : ''}`);
          if (gw.proc.exited) throw new Error(`the gateway exited during the run (code ${gw.proc.exitCode}); see ${join(ctx.runDir, `${s.name}.gateway.log`)}`);
          await sleep(200);
        }
      }
    }

    const result: ScenarioResult = {
      name: s.name,
      description: s.description,
      file: s.file,
      gatewayConfig: configFile,
      gatewayWorkers: gw.workers,
      baselineConfig: s.baselineFile,
      websocket: s.websocket ?? null,
      routes,
      request: {
        method: s.request.method,
        paths: s.request.paths,
        directPaths: s.request.directPaths ?? s.request.paths,
        bodyBytes: s.request.bodyBytes,
        headers: s.request.headers,
      },
      expect: s.expect,
      durationSeconds: s.durationSeconds,
      warmupSeconds: s.warmupSeconds,
      rounds: s.rounds,
      fixed: s.fixedRate ? modeResult('fixed', s, raw.fixed, warnings) : null,
      max: s.maxThroughput ? modeResult('max', s, raw.max, warnings) : null,
      workerRequests: await workerRequests(gw),
      warnings,
    };
    return result;
  } finally {
    if (base) await base.proc.stop();
    const code = await gw.proc.stop();
    if (code !== 0) ctx.progress.line(`${tag} note: the gateway exited with code ${code} on SIGTERM`);
  }
}

/** A loopback port nobody listens on right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** One request to a target before measuring: a wrong route or a dead upstream should fail loudly, not as a fast 404. */
async function probe(s: Scenario, ep: Endpoint, name: string): Promise<void> {
  if (s.websocket) return probeWs(s, ep, name);
  const body = s.request.bodyBytes > 0 ? Buffer.alloc(s.request.bodyBytes, 0x62) : undefined;
  for (const path of ep.paths) {
    const url = `http://${ep.host}:${ep.port}${path}`;
    let res: Response;
    try {
      res = await fetch(url, { method: s.request.method, headers: s.request.headers, body });
    } catch (err) {
      throw new Error(`${s.name}: ${name} probe ${s.request.method} ${url} failed: ${(err as Error).message}`);
    }
    const got = Buffer.from(await res.arrayBuffer());
    if (res.status !== s.expect.status) {
      throw new Error(`${s.name}: ${name} probe ${s.request.method} ${url} answered ${res.status}, expected ${s.expect.status}: ${got.toString('utf8', 0, 300)}`);
    }
    if (s.expect.bodyBytes !== undefined && got.length !== s.expect.bodyBytes && s.request.method !== 'HEAD') {
      throw new Error(`${s.name}: ${name} probe ${url} returned ${got.length} body bytes, expected ${s.expect.bodyBytes}`);
    }
  }
}

/** One WebSocket echo through a target before measuring. */
async function probeWs(s: Scenario, ep: Endpoint, name: string): Promise<void> {
  const url = `ws://${ep.host}:${ep.port}${ep.paths[0]}`;
  const { default: WebSocket } = await import('ws');
  await new Promise<void>((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`${s.name}: ${name} probe ${url}: no echo within ${s.timeoutSeconds} s`));
    }, s.timeoutSeconds * 1000);
    ws.once('open', () => ws.send(Buffer.alloc(s.websocket!.messageBytes, 0x61)));
    ws.once('message', () => {
      clearTimeout(timer);
      ws.close();
      resolve();
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${s.name}: ${name} probe ${url} failed: ${err.message}`));
    });
  });
}

async function workerRequests(gw: GatewayProc): Promise<number[] | null> {
  try {
    const r = await fetch(`http://127.0.0.1:${gw.adminPort}/status`);
    if (r.status !== 200) return null;
    const j = (await r.json()) as { workers?: Array<{ requests?: number }> };
    return j.workers?.map((w) => w.requests ?? 0) ?? null;
  } catch {
    return null;
  }
}

function addErrors(a: LoadErrors, b: LoadErrors): LoadErrors {
  const out = emptyErrors();
  for (const k of Object.keys(out) as Array<keyof LoadErrors>) out[k] = a[k] + b[k];
  return out;
}

function targetStats(runs: Array<{ r: LoadResult; gwCpu: number | null; upCpu: number | null }>): TargetStats {
  const latency = mergeHistograms(runs.map((x) => x.r.latency));
  const sum: LatencySummary = summarize(latency);
  const services = runs.map((x) => x.r.service).filter((x): x is string => x !== null);
  const lags = runs.map((x) => x.r.sendLag).filter((x): x is string => x !== null);
  const rps = runs.map((x) => x.r.rps);
  let errorBreakdown = emptyErrors();
  const statuses: Record<string, number> = {};
  let non2xx = 0;
  let responses = 0;
  for (const { r } of runs) {
    errorBreakdown = addErrors(errorBreakdown, r.errors);
    non2xx += r.non2xx;
    responses += r.responses;
    for (const [k, v] of Object.entries(r.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
  }
  const cpu = (xs: Array<number | null>): number | null => {
    const v = xs.filter((x): x is number => x !== null);
    return v.length ? Math.round(median(v) * 10) / 10 : null;
  };
  return {
    ...sum,
    rps: Math.round(median(rps) * 10) / 10,
    rpsMin: Math.round(Math.min(...rps)),
    rpsMax: Math.round(Math.max(...rps)),
    responses,
    errors: totalErrors(errorBreakdown),
    errorBreakdown,
    non2xx,
    statuses,
    reconnects: runs.every((x) => x.r.reconnects >= 0) ? runs.reduce((a, x) => a + x.r.reconnects, 0) : null,
    service: services.length ? summarize(mergeHistograms(services)) : null,
    sendLag: lags.length ? summarize(mergeHistograms(lags)) : null,
    gatewayCpuUsPerReq: cpu(runs.map((x) => x.gwCpu)),
    upstreamCpuUsPerReq: cpu(runs.map((x) => x.upCpu)),
    generatorCpuPct: Math.round(median(runs.map((x) => x.r.generatorCpuPct))),
    histogram: encodeHistogram(latency),
  };
}

function modeResult(
  kind: LoadKind,
  s: Scenario,
  runs: Record<Target, Array<{ r: LoadResult; gwCpu: number | null; upCpu: number | null }>>,
  warnings: string[],
): ModeResult {
  const direct = targetStats(runs.direct);
  const gateway = targetStats(runs.gateway);
  const added = {
    gatewayCpuUsPerReq: gateway.gatewayCpuUsPerReq !== null && direct.gatewayCpuUsPerReq !== null ? Math.round((gateway.gatewayCpuUsPerReq - direct.gatewayCpuUsPerReq) * 10) / 10 : null,
    p50: gateway.p50 - direct.p50,
    p90: gateway.p90 - direct.p90,
    p95: gateway.p95 - direct.p95,
    p99: gateway.p99 - direct.p99,
    p999: gateway.p999 - direct.p999,
    max: gateway.max - direct.max,
  };
  const rounds: RoundStats[] = [];
  for (const target of ['direct', 'gateway'] as const) {
    runs[target].forEach(({ r }, i) => {
      const l = summarize(decodeHistogram(r.latency));
      rounds.push({ round: i + 1, target, rps: Math.round(r.rps), p50: l.p50, p95: l.p95, p99: l.p99, errors: totalErrors(r.errors), non2xx: r.non2xx });
    });
  }
  const label = kind === 'fixed' ? 'fixed-rate' : 'max-throughput';
  for (const [name, t] of [['direct', direct], ['gateway', gateway]] as const) {
    if (t.generatorCpuPct >= 90) warnings.push(`${label} ${name}: the load generator used ${t.generatorCpuPct}% of a core; the generator, not the target, may be the limit`);
    if (kind === 'fixed' && t.sendLag && t.sendLag.p99 > 1000) warnings.push(`${label} ${name}: send lag P99 ${t.sendLag.p99} µs (the generator or a busy target delayed sends; it is counted in the latency)`);
  }
  for (const [name, t] of [['direct', direct], ['gateway', gateway]] as const) {
    if (kind === 'fixed' && t.rps < s.fixedRate!.rate * 0.97) {
      warnings.push(`fixed-rate ${name}: achieved ${Math.round(t.rps)} of ${s.fixedRate!.rate} req/s offered (beyond its capacity on this machine: the latencies are queueing)`);
    }
  }
  return {
    kind,
    rate: kind === 'fixed' ? s.fixedRate!.rate : null,
    connections: kind === 'fixed' ? s.fixedRate!.connections : s.maxThroughput!.connections,
    durationSeconds: s.durationSeconds,
    direct,
    gateway,
    added,
    ratio: direct.rps > 0 ? Math.round((gateway.rps / direct.rps) * 1000) / 1000 : NaN,
    rounds,
  };
}

export function fmtInt(x: number): string {
  return Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–';
}

import { parseArgs } from 'node:util';
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import os from 'node:os';
import { BENCH_DIR, ROOT } from './paths.js';
import { loadScenario, shippedScenarios, type Scenario } from './scenario.js';
import { checkBudgets, loadBudgets, type Budget } from './budgets.js';
import { Loadgen, startUpstream, stopAll, type UpstreamProc } from './processes.js';
import { runScenario } from './runner.js';
import { Progress } from './progress.js';
import { renderMarkdown, renderTerminal } from './report.js';
import { renderHtml } from './html.js';
import type { BenchRun, ScenarioResult } from './results.js';

export const BENCH_HELP = `Usage: nanogate bench [SCENARIO...] [options]
       nanogate bench micro [options]        micro-benchmarks (nanogate bench micro --help)
       nanogate bench policies [ROW...]      per-policy CPU cost, pinned (nanogate bench policies --help)

Measures the gateway and the same upstream reached directly, in one run: direct and gateway phases alternate
(direct, gateway, gateway, direct, ...) so that drift of the machine lands on both. The upstream, the gateway
and the load generator are separate processes. Two kinds of load per scenario:
  fixed rate       open loop: request i is due at i/rate whatever came before, and is timed from that moment,
                   so queueing counts (no coordinated omission); µs-resolution HdrHistogram
  max throughput   autocannon, closed loop, each response timed with process.hrtime into an HdrHistogram
Reports P50 P90 P95 P99 P99.9 max, req/s, errors, non-2xx, the gateway-added latency per percentile and the
throughput ratio to direct; checks the budgets in bench/budgets.json.

Scenarios: names in bench/scenarios/ (${safeShipped()}) or scenario files; default: all shipped ones.
  --scenario NAME|FILE  a scenario (repeatable; same as a positional argument)
  --short               short settings from each scenario (CI: the default set takes under 2 minutes)
  --duration S          seconds per measured phase          --warmup S       warm-up seconds per target
  --rounds N            direct/gateway pairs per mode        --rate R         fixed-rate requests per second
  --connections N       connections, both modes              --workers N      gateway worker threads
  --upstream URL        use this upstream instead of starting the bench's own
  --budgets FILE        budgets to check (default bench/budgets.json; "none" skips them)
  --gate                exit 2 when a budget is broken, naming it and by how much
  --json FILE           full results, with encoded histograms
  --markdown FILE       a Markdown report for a pull request
  --html FILE           an HTML page with latency-distribution plots (SVG)
  --out DIR             logs and generated configs (default bench/results/<UTC stamp>/)
  --quiet               no progress on stderr (the table still goes to stdout)
Exit codes: 0 finished (budgets ok, or not gated), 1 the run failed, 2 a budget is broken (with --gate).
See docs/bench.md for the method and how to add a scenario, a budget or a micro suite.`;

function safeShipped(): string {
  try {
    return shippedScenarios().join(', ');
  } catch {
    return 'none found';
  }
}

function numberOption(name: string, v: string | undefined, integer: boolean): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) throw new Error(`--${name} takes a ${integer ? 'whole ' : ''}number above 0, not "${v}"`);
  return n;
}

export async function benchMain(args: string[]): Promise<number> {
  if (args[0] === 'micro') return (await import('./micro.js')).microMain(args.slice(1));
  if (args[0] === 'policies') return (await import('./policies.js')).policiesMain(args.slice(1));
  let values: Record<string, string | boolean | string[] | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        scenario: { type: 'string', multiple: true },
        short: { type: 'boolean' },
        duration: { type: 'string' },
        warmup: { type: 'string' },
        rounds: { type: 'string' },
        rate: { type: 'string' },
        connections: { type: 'string' },
        workers: { type: 'string' },
        upstream: { type: 'string' },
        budgets: { type: 'string' },
        gate: { type: 'boolean' },
        json: { type: 'string' },
        markdown: { type: 'string' },
        html: { type: 'string' },
        out: { type: 'string' },
        quiet: { type: 'boolean' },
      },
    }));
  } catch (err) {
    console.error(`nanogate bench: ${(err as Error).message}\n\n${BENCH_HELP}`);
    return 1;
  }
  if (values.help) {
    console.log(BENCH_HELP);
    return 0;
  }

  // --- scenarios and budgets, all checked before anything starts
  const short = values.short === true;
  let scenarios: Scenario[];
  let budgets: Budget[] = [];
  let budgetsFile: string | null = null;
  try {
    const names = [...positionals, ...((values.scenario as string[] | undefined) ?? [])];
    const list = names.length ? names : shippedScenarios();
    if (list.length === 0) throw new Error('no scenarios: bench/scenarios/ is empty and none were named');
    const o = {
      short,
      durationSeconds: numberOption('duration', values.duration as string | undefined, false),
      warmupSeconds: values.warmup === '0' ? 0 : numberOption('warmup', values.warmup as string | undefined, false),
      rounds: numberOption('rounds', values.rounds as string | undefined, true),
      rate: numberOption('rate', values.rate as string | undefined, false),
      connections: numberOption('connections', values.connections as string | undefined, true),
      workers: numberOption('workers', values.workers as string | undefined, true),
    };
    scenarios = list.map((n) => loadScenario(n, o));
    const seen = new Set<string>();
    for (const s of scenarios) {
      if (seen.has(s.name)) throw new Error(`scenario "${s.name}" is named twice`);
      seen.add(s.name);
    }
    if (values.budgets !== 'none') {
      budgetsFile = resolve((values.budgets as string | undefined) ?? join(BENCH_DIR, 'budgets.json'));
      budgets = loadBudgets(budgetsFile);
    }
    if (values.upstream !== undefined) {
      const u = new URL(values.upstream as string);
      if (u.protocol !== 'http:') throw new Error('--upstream must be an http:// URL');
    }
  } catch (err) {
    console.error(`nanogate bench: ${(err as Error).message}`);
    return 1;
  }

  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const runDir = resolve((values.out as string | undefined) ?? join(BENCH_DIR, 'results', stamp));
  mkdirSync(runDir, { recursive: true });
  const progress = new Progress(values.quiet === true);

  const onSignal = (sig: NodeJS.Signals) => {
    progress.line(`nanogate bench: ${sig}, stopping the processes it started`);
    void stopAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  let upstream: UpstreamProc | null = null;
  let loadgen: Loadgen | null = null;
  const results: ScenarioResult[] = [];
  try {
    let upstreamUrl: string;
    if (values.upstream !== undefined) {
      upstreamUrl = (values.upstream as string).replace(/\/+$/, '');
      progress.line(`upstream: ${upstreamUrl} (given)`);
    } else {
      upstream = await startUpstream(runDir);
      upstreamUrl = upstream.url;
      progress.line(`upstream: ${upstreamUrl} (bench upstream, pid ${upstream.proc.pid})`);
    }
    loadgen = await Loadgen.start(runDir);
    progress.line(`load generator: pid ${loadgen.proc.pid}; logs and generated configs in ${runDir}`);
    for (let i = 0; i < scenarios.length; i++) {
      results.push(await runScenario(scenarios[i], { runDir, upstreamUrl, upstream: upstream?.proc ?? null, loadgen, progress }, i + 1, scenarios.length));
    }
  } catch (err) {
    progress.line(`nanogate bench: ${(err as Error).message}`);
    await loadgen?.stop().catch(() => {});
    await stopAll();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    return 1;
  }
  await loadgen.stop();
  await upstream?.proc.stop();
  await stopAll();
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);

  const outcomes = checkBudgets(budgets, results, short);
  const run: BenchRun = {
    tool: 'nanogate bench',
    version: 1,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    short,
    machine: machine(),
    nanogate: { version: packageVersion(), commit: gitCommit() },
    upstream: { url: upstream?.url ?? (values.upstream as string), own: upstream !== null },
    scenarios: results,
    budgets: { file: budgetsFile, outcomes },
    notes: notes(),
  };

  console.log(renderTerminal(run));
  const write = (file: string | undefined, text: string, what: string) => {
    if (!file) return;
    const p = resolve(file);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, text);
    progress.line(`${what} written to ${p}`);
  };
  write(values.json as string | undefined, JSON.stringify(run, null, 2) + '\n', 'JSON');
  write(values.markdown as string | undefined, renderMarkdown(run), 'Markdown');
  write(values.html as string | undefined, renderHtml(run), 'HTML');
  writeFileSync(join(runDir, 'results.json'), JSON.stringify(run, null, 2) + '\n');

  const broken = outcomes.filter((b) => b.status === 'broken');
  if (broken.length && values.gate) {
    console.error(`nanogate bench --gate: ${broken.length} budget${broken.length > 1 ? 's' : ''} broken:`);
    for (const b of broken) console.error(`  ${b.scenario} ${b.metric}: ${b.message}${b.note ? ` (${b.note})` : ''}`);
    return 2;
  }
  return 0;
}

function machine(): BenchRun['machine'] {
  const cpus = os.cpus();
  return {
    cpu: (cpus[0]?.model ?? 'unknown cpu').replace(/\s+/g, ' ').trim(),
    cores: os.availableParallelism(),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    hostname: os.hostname(),
  };
}

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function gitCommit(): string | null {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return sha + (dirty ? '+dirty' : '');
  } catch {
    return null;
  }
}

function notes(): string[] {
  const n: string[] = [];
  const cores = os.availableParallelism();
  if (cores <= 4) {
    n.push(`${cores} cores are shared by the load generator, the upstream and the gateway (nothing is pinned): absolute numbers are lower than on a larger machine, and any other work on it adds noise. Compare runs on the same machine; see native-bench/ for pinned runs next to nginx and haproxy.`);
  }
  const load = os.loadavg()[0];
  if (load > cores * 0.75) n.push(`the 1-minute load average was ${load.toFixed(1)} at the end of the run: other work competed for the CPU.`);
  return n;
}

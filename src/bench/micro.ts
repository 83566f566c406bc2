import { parseArgs } from 'node:util';
import { existsSync, readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import os from 'node:os';
import { Bench } from 'tinybench';
import { BENCH_DIR, ROOT } from './paths.js';
import { sinkState, type MicroSuite } from './micro-api.js';

/**
 * `nanogate bench micro`: runs the tinybench suites in bench/micro/*.bench.ts (compiled to dist/bench/micro/),
 * prints ns/op per case, and compares with bench/micro/baseline.json.
 */

export const MICRO_HELP = `Usage: nanogate bench micro [options]        (also: node dist/bench/micro/run.js [options])

Runs every micro-benchmark suite (bench/micro/*.bench.ts, one file per hot piece of the request path) and prints
nanoseconds per operation (median of samples), compared with the saved baseline when there is one.
  --filter TEXT       only cases whose "suite/case" name contains TEXT (repeatable)
  --time MS           measuring time per case (default 500)
  --compare           exit 1 when a case is slower than the baseline by more than --threshold
  --threshold PCT     regression threshold in percent (default 15; this machine's run-to-run noise is ~5-10%)
  --save              write the results as the new baseline (bench/micro/baseline.json)
  --baseline FILE     another baseline file
  --json FILE         write the results as JSON
  --list              list the suites without running them
Exit codes: 0 done, 1 a regression beyond the threshold (with --compare) or a suite failed.`;

export const MICRO_DIST = join(ROOT, 'dist', 'bench', 'micro');
export const DEFAULT_BASELINE = join(BENCH_DIR, 'micro', 'baseline.json');

export interface CaseResult {
  /** median time per operation, ns */
  nsPerOp: number;
  /** mean time per operation, ns */
  meanNsPerOp: number;
  /** relative margin of error of the mean, percent */
  rme: number;
  samples: number;
}

export interface MicroResults {
  date: string;
  machine: { cpu: string; cores: number; node: string };
  results: Record<string, CaseResult>;
}

export async function loadSuites(dir = MICRO_DIST): Promise<Array<{ file: string; suite: MicroSuite }>> {
  if (!existsSync(dir)) throw new Error(`no compiled suites in ${dir}: run npm run build first`);
  const files = readdirSync(dir).filter((f) => f.endsWith('.bench.js')).sort();
  const out: Array<{ file: string; suite: MicroSuite }> = [];
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(dir, f)).href)) as { default?: MicroSuite };
    const suite = mod.default;
    if (!suite || typeof suite.cases !== 'function' || typeof suite.name !== 'string') {
      throw new Error(`${f}: the default export must be defineSuite({ name, description, cases })`);
    }
    out.push({ file: f, suite });
  }
  return out;
}

const fmtNs = (x: number) => (x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1));

export async function microMain(args: string[]): Promise<number> {
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        help: { type: 'boolean', short: 'h' },
        filter: { type: 'string', multiple: true },
        time: { type: 'string' },
        compare: { type: 'boolean' },
        threshold: { type: 'string' },
        save: { type: 'boolean' },
        baseline: { type: 'string' },
        json: { type: 'string' },
        list: { type: 'boolean' },
      },
    }));
  } catch (err) {
    console.error(`nanogate bench micro: ${(err as Error).message}\n\n${MICRO_HELP}`);
    return 1;
  }
  if (values.help) {
    console.log(MICRO_HELP);
    return 0;
  }
  const time = values.time !== undefined ? Number(values.time) : 500;
  const threshold = values.threshold !== undefined ? Number(values.threshold) : 15;
  if (!(time > 0) || !(threshold > 0)) {
    console.error('nanogate bench micro: --time and --threshold take numbers above 0');
    return 1;
  }
  const filters = (values.filter as string[] | undefined) ?? [];
  const baselineFile = resolve((values.baseline as string | undefined) ?? DEFAULT_BASELINE);
  const baseline: MicroResults | null = existsSync(baselineFile) ? (JSON.parse(readFileSync(baselineFile, 'utf8')) as MicroResults) : null;

  let suites: Array<{ file: string; suite: MicroSuite }>;
  try {
    suites = await loadSuites();
  } catch (err) {
    console.error(`nanogate bench micro: ${(err as Error).message}`);
    return 1;
  }

  const results: Record<string, CaseResult> = {};
  const regressions: string[] = [];
  let failed = false;
  const header = ['case', 'ns/op', '±%', 'baseline', 'change'];
  const rows: string[][] = [];
  for (const { file, suite } of suites) {
    if (values.list) {
      // Listing does not build the cases (some build large inputs).
      console.log(`${suite.name} (${file}): ${suite.description}`);
      continue;
    }
    let cases;
    try {
      cases = await suite.cases();
    } catch (err) {
      console.error(`${file}: cases() failed: ${(err as Error).stack ?? err}`);
      failed = true;
      continue;
    }
    const selected = cases.filter((c) => filters.length === 0 || filters.some((f) => `${suite.name}/${c.name}`.includes(f)));
    if (selected.length === 0) {
      await suite.teardown?.();
      continue;
    }
    process.stderr.write(`${suite.name}: ${suite.description}\n`);
    for (const c of selected) {
      const key = `${suite.name}/${c.name}`;
      // One Bench per case: each case warms up and is timed on its own, in file order.
      const bench = new Bench({ time, warmupTime: Math.min(200, time), timestampProvider: 'hrtimeNow', throws: true });
      bench.add(c.name, c.fn);
      try {
        await bench.run();
      } catch (err) {
        console.error(`${key}: failed: ${(err as Error).stack ?? err}`);
        failed = true;
        continue;
      }
      const r = bench.tasks[0].result;
      if (!r || !('latency' in r)) {
        console.error(`${key}: no result (${r?.state})`);
        failed = true;
        continue;
      }
      const ops = c.ops ?? 1;
      const res: CaseResult = {
        nsPerOp: Math.round(((r.latency.p50 * 1e6) / ops) * 10) / 10,
        meanNsPerOp: Math.round(((r.latency.mean * 1e6) / ops) * 10) / 10,
        rme: Math.round(r.latency.rme * 10) / 10,
        samples: r.latency.samplesCount,
      };
      results[key] = res;
      const base = baseline?.results[key];
      let change = '';
      if (base) {
        const pct = ((res.nsPerOp - base.nsPerOp) / base.nsPerOp) * 100;
        change = `${pct >= 0 ? '+' : ''}${pct.toFixed(1)}%`;
        if (pct > threshold) {
          change += ' REGRESSED';
          regressions.push(`${key}: ${fmtNs(res.nsPerOp)} ns/op vs baseline ${fmtNs(base.nsPerOp)} (+${pct.toFixed(1)}%, threshold ${threshold}%)`);
        }
      }
      const row = [key, fmtNs(res.nsPerOp), res.rme.toFixed(1), base ? fmtNs(base.nsPerOp) : '–', change];
      rows.push(row);
      process.stderr.write(`  ${row[0]}  ${row[1]} ns/op${change ? `  (${change})` : ''}\n`);
    }
    await suite.teardown?.();
  }
  if (values.list) return failed ? 1 : 0;

  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 || i === 4 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => '─'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
  if (!baseline) console.log(`(no baseline at ${baselineFile}; --save writes one)`);
  void sinkState();

  const out: MicroResults = {
    date: new Date().toISOString(),
    machine: { cpu: (os.cpus()[0]?.model ?? 'unknown').trim(), cores: os.availableParallelism(), node: process.version },
    results,
  };
  if (values.json) {
    const p = resolve(values.json as string);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, JSON.stringify(out, null, 2) + '\n');
  }
  if (values.save) {
    // A filtered run updates only its cases; the others keep their saved numbers.
    const merged: MicroResults = { ...out, results: { ...(filters.length && baseline ? baseline.results : {}), ...results } };
    mkdirSync(dirname(baselineFile), { recursive: true });
    writeFileSync(baselineFile, JSON.stringify(merged, null, 2) + '\n');
    console.log(`baseline written to ${baselineFile}`);
  }
  if (regressions.length) {
    console.log(`\n${regressions.length} case${regressions.length > 1 ? 's' : ''} slower than the baseline by more than ${threshold}%:`);
    for (const r of regressions) console.log(`  ${r}`);
    if (values.compare) return 1;
  }
  return failed ? 1 : 0;
}

import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './paths.js';

export const ROWS_FILE = join(ROOT, 'native-bench', 'conf', 'policies', 'rows.json');

/**
 * `nanogate bench policies`: the policy-cost bench. A thin front for `native-bench/run.sh` with MODE=policies, which
 * does the pinning (wrk on CPU 0, origin + one nanogate worker on CPU 1), runs pass-through, each policy alone and
 * the standard set interleaved over rounds, and prints each row's CPU µs/req minus its base row's next to the
 * policy's micro figure. The rows live in native-bench/conf/policies/rows.json, shared with run.sh and
 * native-bench/summarize-policies.js, so adding a row is one config file and one entry there.
 */
export const POLICIES_HELP = `Usage: nanogate bench policies [ROW...] [options]

What each policy costs inside a real request: proxy CPU µs per request with the policy minus without, in the same
run, pinned (wrk on CPU 0; the nginx origin and nanogate --workers 1 on CPU 1), saturated, median of rounds;
printed next to the policy's micro figure (bench/micro/baseline.json). Needs nginx, wrk, curl, taskset, 2 CPUs.
Rows (native-bench/conf/policies/rows.json): ${safeRows()}; default: all.
  --rounds N      rounds, rows interleaved (default 3)
  --duration S    seconds of saturated load per row and round (default 10)
  --warmup S      warm-up seconds per row and round (default 2)
  --out FILE      the Markdown table (default native-bench/results/<UTC stamp>/policies.md)
  --dry-run       list the rows (config, base row, whether a credential header is sent) and exit
Same as: MODE=policies ROUNDS=N DUR=S ONLY="pol-<row> ..." bash native-bench/run.sh  (docs/bench.md).`;

export interface PolicyRow {
  row: string;
  config: string;
  label: string;
  base: string | null;
  header?: string;
  micro?: string[];
  microText?: string;
  note?: string;
}

export function policyRows(file = ROWS_FILE): PolicyRow[] {
  return (JSON.parse(readFileSync(file, 'utf8')) as { rows: PolicyRow[] }).rows;
}

function safeRows(): string {
  try {
    return policyRows().map((r) => r.row).join(', ');
  } catch {
    return 'rows.json not found';
  }
}

/** The rows asked for plus the base rows their cost is taken against, in rows.json order. */
export function withBases(asked: string[], rows = policyRows()): string[] {
  const byName = new Map(rows.map((r) => [r.row, r]));
  const want = new Set<string>();
  const add = (name: string): void => {
    if (want.has(name)) return;
    want.add(name);
    const base = byName.get(name)?.base;
    if (base) add(base);
  };
  asked.forEach(add);
  return rows.map((r) => r.row).filter((r) => want.has(r));
}

function positive(name: string, v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (!/^[1-9][0-9]*$/.test(v)) throw new Error(`--${name} takes a whole number above 0, not "${v}"`);
  return v;
}

export async function policiesMain(args: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        rounds: { type: 'string' },
        duration: { type: 'string' },
        warmup: { type: 'string' },
        out: { type: 'string' },
        'dry-run': { type: 'boolean' },
      },
    }));
  } catch (e) {
    console.error(`nanogate bench policies: ${(e as Error).message}\n\n${POLICIES_HELP}`);
    return 1;
  }
  if (values.help) {
    console.log(POLICIES_HELP);
    return 0;
  }
  const env: NodeJS.ProcessEnv = { ...process.env, MODE: 'policies' };
  try {
    const known = new Set(policyRows().map((r) => r.row));
    for (const p of positionals) if (!known.has(p)) throw new Error(`unknown row "${p}" (rows: ${[...known].join(', ')})`);
    const set = (k: string, v: string | undefined): void => {
      if (v !== undefined) env[k] = v;
    };
    set('ROUNDS', positive('rounds', values.rounds as string | undefined));
    set('DUR', positive('duration', values.duration as string | undefined));
    set('WARM', positive('warmup', values.warmup as string | undefined));
    set('OUT_MD', values.out as string | undefined);
  } catch (e) {
    console.error(`nanogate bench policies: ${(e as Error).message}`);
    return 1;
  }
  if (positionals.length) env.ONLY = withBases(positionals).map((p) => `pol-${p}`).join(' ');
  if (values['dry-run']) env.DRY_RUN = '1';
  const child = spawn('bash', [join(ROOT, 'native-bench', 'run.sh')], { cwd: ROOT, env, stdio: 'inherit' });
  // Ctrl-C reaches the script through the terminal's process group; run.sh stops what it started by PID.
  return await new Promise<number>((done) => {
    child.on('error', (e) => {
      console.error(`nanogate bench policies: ${e.message}`);
      done(1);
    });
    child.on('exit', (code, signal) => done(code ?? (signal ? 1 : 0)));
  });
}

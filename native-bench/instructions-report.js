// Where a row's instructions go, per request, by function: from the callgrind dumps that instructions.sh keeps with
// KEEP=1. Runtime, uWS and libc functions are named by callgrind_annotate; JIT-compiled JavaScript is named through
// the perf map node writes with --perf-basic-prof-only-functions (instructions.sh passes it when KEEP is set).
// With a second row, both side by side and the difference (B − A), largest first: what a policy adds.
//
//   node native-bench/instructions-report.js native-bench/results/instr-<stamp> pass [access-log]
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const [dir, rowA, rowB] = process.argv.slice(2);
if (!dir || !rowA) {
  console.error('usage: node native-bench/instructions-report.js native-bench/results/instr-<stamp> <row> [other row]');
  process.exit(1);
}
const counts = readFileSync(join(dir, 'counts.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));

/** self instructions per request by function name, from the worker thread's dump of the row's first window */
function load(row) {
  const files = readdirSync(dir).filter((f) => new RegExp(`^cg-${row}\\.\\d+\\.1-\\d+$`).test(f));
  if (files.length === 0) throw new Error(`no dumps of row "${row}" in ${dir} (run instructions.sh with KEEP=1)`);
  const total = (f) => Number(/^totals: (\d+)/m.exec(readFileSync(join(dir, f), 'utf8'))?.[1] ?? 0);
  const worker = files.reduce((a, b) => (total(b) > total(a) ? b : a));
  const requests = counts.find((c) => c.row === row && c.window === 1)?.requests;
  if (!requests) throw new Error(`no window 1 of row "${row}" in counts.jsonl`);
  const mapFile = join(dir, `perf-${row}.map`);
  const jit = existsSync(mapFile)
    ? readFileSync(mapFile, 'utf8').split('\n').filter(Boolean).map((l) => {
        const [a, s, ...name] = l.split(' ');
        return [parseInt(a, 16), parseInt(s, 16), name.join(' ')];
      }).sort((x, y) => x[0] - y[0])
    : [];
  const jitName = (addr) => {
    let lo = 0;
    let hi = jit.length - 1;
    let best = null;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (jit[mid][0] <= addr) {
        best = jit[mid];
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return best && addr < best[0] + best[1] ? best[2] : null;
  };
  const text = execFileSync('callgrind_annotate', ['--inclusive=no', '--threshold=100', join(dir, worker)], { encoding: 'utf8', maxBuffer: 256 << 20 });
  const out = new Map();
  for (const line of text.split('\n')) {
    const m = /^\s*([\d,]+) \([^)]*\)\s+(.*)$/.exec(line);
    if (!m || m[2].includes('PROGRAM TOTALS')) continue;
    const ir = Number(m[1].replace(/,/g, ''));
    let name = m[2];
    const addr = /^\?\?\?:0x([0-9a-f]+)/.exec(name);
    if (addr) name = jitName(parseInt(addr[1], 16)) ?? 'JIT code (not in the perf map)';
    name = name
      .replace(/\s*\[[^\]]*\]$/, '')
      .replace(/^\?\?\?:/, '')
      .replace(/file:\/\/\/\S*?\/dist\//, '')
      .replace(/:\d+:\d+$/, '')
      .replace(/\(.*$/, '')
      .replace(/'\d+$/, '');
    out.set(name, (out.get(name) ?? 0) + ir / requests);
  }
  return out;
}

const a = load(rowA);
const b = rowB ? load(rowB) : null;
const fmt = (x) => Math.round(x).toLocaleString('en-US').padStart(7);
if (b === null) {
  console.log(`instructions per request by function (self), row ${rowA}`);
  for (const [k, v] of [...a].sort((x, y) => y[1] - x[1]).slice(0, 50)) console.log(fmt(v), k.slice(0, 140));
} else {
  console.log(`instructions per request by function (self): ${rowA} | ${rowB} | difference`);
  const keys = new Set([...a.keys(), ...b.keys()]);
  const rows = [...keys].map((k) => [k, a.get(k) ?? 0, b.get(k) ?? 0]).sort((x, y) => Math.abs(y[2] - y[1]) - Math.abs(x[2] - x[1]));
  for (const [k, x, y] of rows.slice(0, 50)) console.log(fmt(x), fmt(y), (y - x >= 0 ? '+' : '−') + fmt(Math.abs(y - x)).trimStart().padStart(6), k.slice(0, 120));
}

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

/**
 * The row's median window by its worker's count: the first window is often the odd one out (a function deoptimized
 * and running in baseline code until it is optimized again), and the median is the one the row's figure names.
 */
function medianWindow(row) {
  const windows = counts.filter((c) => c.row === row);
  if (windows.length === 0) throw new Error(`no windows of row "${row}" in counts.jsonl`);
  const worker = (c) => Math.max(...Object.values(c.threads));
  const sorted = [...windows].sort((a, b) => worker(a) / a.requests - worker(b) / b.requests);
  return sorted[(sorted.length - 1) >> 1];
}

/** self instructions per request by function name, from the worker thread's dump of the row's median window */
function load(row) {
  const w = medianWindow(row);
  const files = readdirSync(dir).filter((f) => new RegExp(`^cg-${row}\\.\\d+\\.${w.window}-\\d+$`).test(f));
  if (files.length === 0) throw new Error(`no dumps of row "${row}" in ${dir} (run instructions.sh with KEEP=1)`);
  const total = (f) => Number(/^totals: (\d+)/m.exec(readFileSync(join(dir, f), 'utf8'))?.[1] ?? 0);
  const worker = files.reduce((a, b) => (total(b) > total(a) ? b : a));
  const requests = w.requests;
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
    // an address in a shared object without symbols (uWS's binary is stripped) is named by the object, not as JIT code
    const object = /\[([^\]]+\.(?:node|so[.\d]*))\]$/.exec(name);
    if (addr) name = jitName(parseInt(addr[1], 16)) ?? (object ? `${object[1].replace(/^.*\//, '')}, no symbols` : 'JIT code (not in the perf map)');
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

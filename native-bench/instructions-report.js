// Where a row's instructions go, per request, by function: from the callgrind dumps that instructions.sh keeps with
// KEEP=1. Runtime, uWS and libc functions are named by callgrind_annotate; JIT-compiled JavaScript is named through
// the perf map node writes with --perf-basic-prof-only-functions (instructions.sh passes it when KEEP is set).
// With a second row, both side by side and the difference (B − A), largest first: what a policy adds.
// With --callers <regex>: which functions call the functions whose name matches, with calls and inclusive
// instructions per request: e.g. the optimized functions that still call V8's generic property-access builtins
// ('IC(Trampoline)?$'), each call ~70-450 instructions where a specialised load is a few (docs/performance.md).
//
//   node native-bench/instructions-report.js native-bench/results/instr-<stamp> pass [access-log]
//   node native-bench/instructions-report.js native-bench/results/instr-<stamp> pass --callers 'IC(Trampoline)?$'
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const callersAt = args.indexOf('--callers');
const callers = callersAt < 0 ? null : new RegExp(args.splice(callersAt, 2)[1] ?? '.');
const [dir, rowA, rowB] = args;
if (!dir || !rowA || (callers !== null && rowB)) {
  console.error('usage: node native-bench/instructions-report.js native-bench/results/instr-<stamp> <row> [other row | --callers <regex>]');
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

/** the worker thread's dump of the row's median window, its request count and a namer of JIT code addresses */
function dumpOf(row) {
  const w = medianWindow(row);
  const files = readdirSync(dir).filter((f) => new RegExp(`^cg-${row}\\.\\d+\\.${w.window}-\\d+$`).test(f));
  if (files.length === 0) throw new Error(`no dumps of row "${row}" in ${dir} (run instructions.sh with KEEP=1)`);
  const total = (f) => Number(/^totals: (\d+)/m.exec(readFileSync(join(dir, f), 'utf8'))?.[1] ?? 0);
  const worker = files.reduce((a, b) => (total(b) > total(a) ? b : a));
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
  return { file: join(dir, worker), requests: w.requests, jitName };
}

/** a function's name as the tables print it: JIT code named through the perf map, paths and positions cut */
function shortName(name, jitName) {
  const addr = /^(?:\?\?\?:)?0x([0-9a-f]+)/.exec(name);
  // an address in a shared object without symbols (uWS's binary is stripped) is named by the object, not as JIT code
  const object = /\[([^\]]+\.(?:node|so[.\d]*))\]$/.exec(name);
  if (addr) name = jitName(parseInt(addr[1], 16)) ?? (object ? `${object[1].replace(/^.*\//, '')}, no symbols` : 'JIT code (not in the perf map)');
  return name
    .replace(/\s*\[[^\]]*\]$/, '')
    .replace(/^\?\?\?:/, '')
    .replace(/file:\/\/\/\S*?\/dist\//, '')
    .replace(/:\d+:\d+$/, '')
    .replace(/\(.*$/, '')
    .replace(/'\d+$/, '');
}

/** self instructions per request by function name, from the worker thread's dump of the row's median window */
function load(row) {
  const { file, requests, jitName } = dumpOf(row);
  const text = execFileSync('callgrind_annotate', ['--inclusive=no', '--threshold=100', file], { encoding: 'utf8', maxBuffer: 256 << 20 });
  const out = new Map();
  for (const line of text.split('\n')) {
    const m = /^\s*([\d,]+) \([^)]*\)\s+(.*)$/.exec(line);
    if (!m || m[2].includes('PROGRAM TOTALS')) continue;
    const ir = Number(m[1].replace(/,/g, ''));
    const name = shortName(m[2], jitName);
    out.set(name, (out.get(name) ?? 0) + ir / requests);
  }
  return out;
}

/**
 * Who calls the functions whose name matches `re`: per caller and callee, calls and inclusive instructions per
 * request, from the call records of the raw dump (callgrind compresses names: "(id) name" once, "(id)" after).
 */
function callersOf(row, re) {
  const { file, requests, jitName } = dumpOf(row);
  const names = new Map();
  const nameOf = (spec) => {
    const m = /^\((\d+)\)(?: (.*))?$/.exec(spec);
    if (!m) return spec;
    if (m[2] !== undefined) names.set(m[1], m[2]);
    return names.get(m[1]);
  };
  const out = new Map();
  let fn = '';
  let callee = '';
  let calls = 0;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.startsWith('fn=')) fn = nameOf(line.slice(3));
    else if (line.startsWith('cfn=')) callee = nameOf(line.slice(4));
    else if (line.startsWith('calls=')) calls = Number(line.slice(6).split(' ')[0]);
    else if (calls > 0 && /^[+\-*\d]/.test(line)) {
      // the cost line after calls=: "<position> <inclusive instructions>"
      if (re.test(shortName(callee, jitName))) {
        const k = `${shortName(fn, jitName)}  →  ${shortName(callee, jitName)}`;
        const o = out.get(k) ?? [0, 0];
        o[0] += calls;
        o[1] += Number(line.split(' ')[1]);
        out.set(k, o);
      }
      calls = 0;
    }
  }
  return [...out].map(([k, [c, ir]]) => [k, c / requests, ir / requests]).sort((x, y) => y[2] - x[2]);
}

const fmt = (x) => Math.round(x).toLocaleString('en-US').padStart(7);
if (callers !== null) {
  console.log(`calls per request, inclusive instructions per request: caller → callee matching ${callers}, row ${rowA}`);
  for (const [k, c, ir] of callersOf(rowA, callers).slice(0, 40)) console.log(c.toFixed(2).padStart(7), fmt(ir), k.slice(0, 150));
  process.exit(0);
}
const a = load(rowA);
const b = rowB ? load(rowB) : null;
if (b === null) {
  console.log(`instructions per request by function (self), row ${rowA}`);
  for (const [k, v] of [...a].sort((x, y) => y[1] - x[1]).slice(0, 50)) console.log(fmt(v), k.slice(0, 140));
} else {
  console.log(`instructions per request by function (self): ${rowA} | ${rowB} | difference`);
  const keys = new Set([...a.keys(), ...b.keys()]);
  const rows = [...keys].map((k) => [k, a.get(k) ?? 0, b.get(k) ?? 0]).sort((x, y) => Math.abs(y[2] - y[1]) - Math.abs(x[2] - x[1]));
  for (const [k, x, y] of rows.slice(0, 50)) console.log(fmt(x), fmt(y), (y - x >= 0 ? '+' : '−') + fmt(Math.abs(y - x)).trimStart().padStart(6), k.slice(0, 120));
}

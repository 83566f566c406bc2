// Turns an instruction-count run (native-bench/instructions.sh) into its table (stdout, Markdown).
// usage: node native-bench/summarize-instructions.js native-bench/results/instr-<stamp>
//
// A row's figure is its worker thread's instructions per request (median of the windows); its cost is that minus
// its base row's (rows.json). The µs column puts the cost on a time scale with the pass-through's native rate
// (instructions per µs of worker user CPU, measured in the same run): an estimate, where the counts are exact.
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const dir = process.argv[2];
if (!dir) {
  console.error('usage: node native-bench/summarize-instructions.js native-bench/results/instr-<stamp>');
  process.exit(1);
}
const spec = JSON.parse(readFileSync(join(HERE, 'conf/policies/rows.json'), 'utf8'));
const lines = readFileSync(join(dir, 'counts.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const versions = Object.fromEntries(
  readFileSync(join(dir, 'versions.txt'), 'utf8').trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
);

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};
/** per row: worker instructions per request of each window, and the rest of the process's */
const rows = new Map();
for (const l of lines) {
  if (l.row === 'native-pass') continue;
  const counts = Object.values(l.threads);
  const worker = Math.max(...counts);
  const rest = counts.reduce((a, b) => a + b, 0) - worker;
  const r = rows.get(l.row) ?? { worker: [], rest: [], failed: 0 };
  r.worker.push(worker / l.requests);
  r.rest.push(rest / l.requests);
  r.failed += l.failed;
  rows.set(l.row, r);
}
const native = lines.find((l) => l.row === 'native-pass');
const passInstr = rows.has('pass') ? median(rows.get('pass').worker) : NaN;
const userUs = native ? ((native.user_ticks / native.clk_tck) * 1e6) / native.requests : NaN;
const perUs = passInstr / userUs; // instructions per µs of worker user CPU, pass-through, natively

const k = (x) => (Number.isFinite(x) ? (x / 1000).toFixed(1) + 'k' : '–');
const signedK = (x) => (Number.isFinite(x) ? (x >= 0 ? '+' : '−') + (Math.abs(x) / 1000).toFixed(2) + 'k' : '–');
const signedUs = (x) => (Number.isFinite(x) ? (x >= 0 ? '+' : '−') + Math.abs(x).toFixed(2) : '–');
const spread = (a) => (a.length > 1 ? `${k(Math.min(...a))} … ${k(Math.max(...a))}` : k(a[0]));

const out = [];
out.push('# Policy cost in instructions (native-bench/instructions.sh)', '');
out.push(
  `\`bash native-bench/instructions.sh\` on ${versions.date_utc} (node ${versions.node}, ${versions.valgrind}, nanogate ${versions.nanogate}); ` +
    `load ${versions.load_at_start} at the start, ${versions.load_at_end ?? '?'} at the end; ${versions.n?.replace(/ /g, ', ')}. Raw: \`${dir.slice(dir.indexOf('native-bench/'))}/counts.jsonl\`.`,
  '',
);
out.push(
  'One nanogate worker under callgrind, a fixed number of requests per window (GET /, 100-byte answer), user-space instructions of the worker thread per request. ' +
    '**Cost = the row\'s count minus its base row\'s.** ' +
    (Number.isFinite(perUs)
      ? `The µs column divides it by the pass-through's native rate today: ${Math.round(perUs).toLocaleString('en-US')} instructions per µs of worker user CPU (${userUs.toFixed(2)} µs/req over ${native.requests.toLocaleString('en-US')} requests, pinned, wrk -c50): an estimate that moves with the machine and ignores cache misses.`
      : 'No native run (NATIVE_DUR=0): no µs estimate.'),
  '',
);
out.push('| policy | worker instr/req [windows] | cost (with − without) | ≈ µs/req | base | other threads instr/req | failed | budget |');
out.push('|---|---:|---:|---:|---|---:|---:|---:|');
/** rows over their maxInstructions (rows.json) */
const broken = [];
for (const s of spec.rows) {
  const r = rows.get(s.row);
  if (r === undefined) continue;
  const own = median(r.worker);
  const base = s.base ? rows.get(s.base) : undefined;
  const cost = base ? own - median(base.worker) : NaN;
  const over = s.maxInstructions !== undefined && own > s.maxInstructions;
  if (over || r.failed > 0) broken.push(`${s.row}: ${over ? `${k(own)} instructions a request, over its budget of ${k(s.maxInstructions)}` : `${r.failed} failed requests`}`);
  const budget = s.maxInstructions === undefined ? '–' : `${over ? '**over** ' : ''}≤ ${k(s.maxInstructions)}`;
  out.push(`| ${s.label} | ${k(own)} [${spread(r.worker)}] | ${base ? '**' + signedK(cost) + '**' : '–'} | ${base ? signedUs(cost / perUs) : '–'} | ${s.base ?? '–'} | ${k(median(r.rest))} | ${r.failed} | ${budget} |`);
}
out.push(
  '',
  'Counts include what a request makes the worker do later (its share of scavenges, the log batch write\'s user part) but not the kernel: send and receive are in every row alike. ' +
    'Per-turn work (the batch flush, timers) is spread over the requests of a turn, and under valgrind a turn holds more requests than natively; a policy\'s per-request work is counted in full either way.',
);
console.log(out.join('\n'));
// GATE=1 (instructions.sh passes its environment on): a row over its budget, or with failed requests, fails the run
if (process.env.GATE === '1' && broken.length > 0) {
  console.error(`!! instruction budgets broken (native-bench/conf/policies/rows.json maxInstructions):\n  ${broken.join('\n  ')}`);
  process.exit(1);
}

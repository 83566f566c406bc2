// Turns a policy-cost run (native-bench/run.sh MODE=policies) into its table (stdout, Markdown).
// usage: node native-bench/summarize-policies.js native-bench/results/<stamp>
//
// The integrated cost of a row is its proxy CPU µs/req minus its base row's (rows.json), taken within each round
// (both measured minutes apart on the same pinned core, so drift on a shared machine cancels), then the median
// over rounds. Micro figures come from bench/micro/baseline.json: what the policy's hook costs in isolation, next
// to what it costs in a real request (allocation, GC, cache misses, per-phase metrics the micro case leaves out).
import { existsSync, readFileSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
const dir = process.argv[2];
if (!dir) {
  console.error('usage: node native-bench/summarize-policies.js native-bench/results/<stamp>');
  process.exit(1);
}
const spec = JSON.parse(readFileSync(join(HERE, 'conf/policies/rows.json'), 'utf8'));
const raw = readFileSync(join(dir, 'raw.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((r) => r.mode === 'sat');
const versions = readFileSync(join(dir, 'versions.txt'), 'utf8').trim();
const v = Object.fromEntries(versions.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
const baseline = existsSync(join(ROOT, 'bench/micro/baseline.json')) ? JSON.parse(readFileSync(join(ROOT, 'bench/micro/baseline.json'), 'utf8')).results : {};

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};
const usPerReq = (r) => ((r.sut_cpu_ticks / r.clk_tck) * 1e6) / r.requests;
/** round -> µs/req for one row */
const byRound = (row) => new Map(raw.filter((r) => r.cfg === `pol-${row}`).map((r) => [r.round, usPerReq(r)]));
const errors = (row) => raw.filter((r) => r.cfg === `pol-${row}`).reduce((a, r) => a + r.err_connect + r.err_read + r.err_write + r.err_status + r.err_timeout, 0);
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '–');
const signed = (x) => (Number.isFinite(x) ? (x >= 0 ? '+' : '−') + Math.abs(x).toFixed(1) : '–');
const int = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');

function micro(row) {
  const parts = [];
  for (const key of row.micro ?? []) {
    const b = baseline[key];
    if (b) parts.push(`${b.nsPerOp >= 1000 ? (b.nsPerOp / 1000).toFixed(2) + ' µs' : Math.round(b.nsPerOp) + ' ns'} (\`${key}\`)`);
  }
  if (row.microText) parts.push(row.microText);
  return parts.length ? parts.join('; ') : '–';
}

const out = [];
const p = (s = '') => out.push(s);
const rounds = Math.max(0, ...raw.map((r) => r.round));
const conns = process.env.CONNS || 50;
p('# Policy cost, integrated (native-bench MODE=policies)');
p();
p(`\`${v.mode === 'policies' ? 'bash native-bench/run.sh' : '?'}\` with MODE=policies on ${v.date_utc} (${v.cpu}, ${v.node}, nanogate ${v.nanogate}); load ${v.load_at_start || '?'} at the start, ${v.load_at_end || '?'} at the end. Raw: \`${relative(ROOT, dir)}/\`.`);
p();
p(`nanogate --workers 1 and the nginx origin pinned together on CPU 1, wrk -t1 -c${conns} on CPU 0, GET / (100-byte answer), saturated; ${rounds} round${rounds === 1 ? '' : 's'}, rows interleaved. **Cost = the row's proxy CPU µs/req minus its base row's in the same round, median of rounds** (min–max over rounds in brackets).`);
p();
p('| policy | integrated cost µs/req (with − without) | proxy CPU µs/req [min … max] | base | req/s | micro figure | note |');
p('|---|---:|---:|---|---:|---|---|');
for (const row of spec.rows) {
  const mine = byRound(row.row);
  if (!mine.size) continue;
  const own = median([...mine.values()]);
  const rps = median(raw.filter((r) => r.cfg === `pol-${row.row}`).map((r) => r.rps));
  let cost = '–';
  if (row.base) {
    const base = byRound(row.base);
    const d = [...mine].filter(([k]) => base.has(k)).map(([k, x]) => x - base.get(k));
    if (d.length) cost = `**${signed(median(d))}**${d.length > 1 ? ` [${signed(Math.min(...d))} … ${signed(Math.max(...d))}]` : ''}`;
  }
  const errs = errors(row.row);
  const note = [row.note, errs ? `${errs} wrk errors` : ''].filter(Boolean).join('; ');
  const spread = mine.size > 1 ? ` [${f1(Math.min(...mine.values()))} … ${f1(Math.max(...mine.values()))}]` : '';
  p(`| ${row.label} | ${cost} | ${f1(own)}${spread} | ${row.base ?? '–'} | ${int(rps)} | ${micro(row)} | ${note || ''} |`);
}
for (const a of spec.always ?? []) p(`| ${a.label} | (in every row) | | | | | ${a.note} |`);
p();
p('Micro figures are ns per call of the policy\'s hook alone (bench/micro/baseline.json; `nanogate bench micro --filter <suite>` re-measures them). A cost smaller than the spread of its base row over rounds is below what the run could resolve; on a busy machine use more rounds (--rounds 5) and longer phases.');
process.stdout.write(out.join('\n') + '\n');

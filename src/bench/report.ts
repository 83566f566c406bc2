import type { BenchRun, BudgetOutcome, ModeResult, ScenarioResult, TargetStats } from './results.js';

/** Terminal and Markdown renderings of a run (the JSON is the BenchRun object itself). */

const int = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '–' : Math.round(x).toLocaleString('en-US'));
const signed = (x: number): string => (!Number.isFinite(x) ? '–' : (x >= 0 ? '+' : '−') + Math.abs(Math.round(x)).toLocaleString('en-US'));
const ratio = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) + '×' : '–');
const cpu = (x: number | null): string => (x === null ? '–' : x.toFixed(1));

export const COLUMNS = ['mode', 'target', 'P50', 'P90', 'P95', 'P99', 'P99.9', 'max', 'req/s', '× direct', 'errors', 'non-2xx', 'gw CPU µs/req', 'up CPU µs/req'];

function modeLabel(m: ModeResult): string {
  return m.kind === 'fixed' ? `fixed ${int(m.rate)}/s` : `max c=${m.connections}`;
}

function targetRow(mode: string, name: string, t: TargetStats): string[] {
  return [mode, name, int(t.p50), int(t.p90), int(t.p95), int(t.p99), int(t.p999), int(t.max), int(t.rps), name === 'direct' ? '1.00×' : '', int(t.errors), int(t.non2xx), cpu(t.gatewayCpuUsPerReq), cpu(t.upstreamCpuUsPerReq)];
}

/** Rows of one scenario's table: per mode, direct, gateway and the gateway-added line. */
export function scenarioRows(s: ScenarioResult): string[][] {
  const rows: string[][] = [];
  for (const m of [s.fixed, s.max]) {
    if (!m) continue;
    const label = modeLabel(m);
    const d = targetRow(label, 'direct', m.direct);
    // with gateway.baseline the "direct" side is a second gateway (the same route without what is measured)
    if (s.baselineConfig) d[1] = 'baseline';
    rows.push(d);
    const g = targetRow(label, 'gateway', m.gateway);
    g[9] = ratio(m.ratio);
    rows.push(g);
    const a = m.added;
    rows.push([label, 'added', signed(a.p50), signed(a.p90), signed(a.p95), signed(a.p99), signed(a.p999), signed(a.max), '', '', '', '', a.gatewayCpuUsPerReq === null || a.gatewayCpuUsPerReq === undefined ? '' : signed(a.gatewayCpuUsPerReq), '']);
  }
  return rows;
}

export function scenarioHeadline(s: ScenarioResult): string {
  const body = s.request.bodyBytes ? ` with a ${bytes(s.request.bodyBytes)} body` : '';
  const paths = s.request.paths.length > 1 ? `${s.request.paths[0]} (+${s.request.paths.length - 1} more paths)` : s.request.paths[0];
  const routes = s.routes !== null ? `, ${int(s.routes)} routes` : '';
  const what = s.websocket ? `WebSocket ${paths}, ${bytes(s.websocket.messageBytes)} messages (req/s = echoes/s, latency per echo)` : `${s.request.method} ${paths}${body}`;
  const baseline = s.baselineConfig ? `; baseline gateway ${s.baselineConfig.split('/').pop()}` : '';
  return `${what}${baseline}; gateway ${s.gatewayWorkers} worker${s.gatewayWorkers === 1 ? '' : 's'}${routes}; ${s.rounds} round${s.rounds === 1 ? '' : 's'} × ${s.durationSeconds} s per phase, ${s.warmupSeconds} s warm-up`;
}

export function bytes(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / 1024 / 1024} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} B`;
}

function table(header: string[], rows: string[][], leftCols = 2): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) => r.map((c, i) => (i < leftCols ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  return [fmt(header), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.map(fmt)].join('\n');
}

function lagNote(s: ScenarioResult): string | null {
  const f = s.fixed;
  if (!f || !f.direct.sendLag || !f.gateway.sendLag) return null;
  return `fixed-rate send lag (scheduled → written, included in the latencies above): P50/P99 direct ${int(f.direct.sendLag.p50)}/${int(f.direct.sendLag.p99)} µs, gateway ${int(f.gateway.sendLag.p50)}/${int(f.gateway.sendLag.p99)} µs`;
}

function reconnectNote(s: ScenarioResult): string | null {
  const f = s.fixed;
  if (!f || (!f.direct.reconnects && !f.gateway.reconnects)) return null;
  return `fixed-rate: the target closed connections after a response (Connection: close) and the generator reopened them: direct ${int(f.direct.reconnects)}, gateway ${int(f.gateway.reconnects)} times (${int(f.gateway.responses)} gateway responses)`;
}

function spreadNote(s: ScenarioResult): string | null {
  const m = s.max;
  if (!m || s.rounds < 2) return null;
  return `max-throughput req/s min–max over rounds: direct ${int(m.direct.rpsMin)}–${int(m.direct.rpsMax)}, gateway ${int(m.gateway.rpsMin)}–${int(m.gateway.rpsMax)}; generator CPU ${m.direct.generatorCpuPct}% / ${m.gateway.generatorCpuPct}% of a core`;
}

export function renderTerminal(run: BenchRun): string {
  const out: string[] = [];
  out.push(`nanogate bench${run.short ? ' --short' : ''}: ${run.machine.cpu} × ${run.machine.cores}, node ${run.machine.node}, nanogate ${run.nanogate.version}${run.nanogate.commit ? ` (${run.nanogate.commit})` : ''}`);
  out.push('latencies in µs (fixed rate: from the scheduled send time, open loop; max: closed loop); added = gateway − direct');
  for (const s of run.scenarios) {
    out.push('');
    out.push(`${s.name}: ${scenarioHeadline(s)}`);
    out.push(table(COLUMNS, scenarioRows(s)));
    for (const n of [lagNote(s), reconnectNote(s), spreadNote(s)]) if (n) out.push('  ' + n);
    if (s.workerRequests) out.push(`  requests per gateway worker: ${s.workerRequests.map(int).join(' / ')}`);
    for (const w of s.warnings) out.push(`  warning: ${w}`);
  }
  if (run.budgets.outcomes.length) {
    out.push('');
    out.push(`budgets (${run.budgets.file}):`);
    for (const b of run.budgets.outcomes) out.push(`  ${budgetMark(b).padEnd(7)} ${b.scenario.padEnd(14)} ${b.metric.padEnd(22)} ${b.message}${b.note ? `  — ${b.note}` : ''}`);
  }
  for (const n of run.notes) out.push(`note: ${n}`);
  return out.join('\n');
}

function budgetMark(b: BudgetOutcome): string {
  return b.status === 'ok' ? 'ok' : b.status === 'broken' ? 'BROKEN' : 'skipped';
}

export function renderMarkdown(run: BenchRun): string {
  const out: string[] = [];
  const md = (header: string[], rows: string[][], leftCols = 2) => {
    out.push(`| ${header.join(' | ')} |`);
    out.push(`|${header.map((_, i) => (i < leftCols ? '---' : '---:')).join('|')}|`);
    for (const r of rows) out.push(`| ${r.map((c) => c || ' ').join(' | ')} |`);
  };
  const broken = run.budgets.outcomes.filter((b) => b.status === 'broken');
  out.push(`### nanogate bench${run.short ? ' (--short)' : ''}: ${broken.length ? `${broken.length} budget${broken.length > 1 ? 's' : ''} broken` : 'budgets ok'}`);
  out.push('');
  out.push(`${run.startedAt.slice(0, 16).replace('T', ' ')} UTC · ${run.machine.cpu} × ${run.machine.cores} · ${run.machine.kernel} · node ${run.machine.node} · nanogate ${run.nanogate.version}${run.nanogate.commit ? ` (${run.nanogate.commit})` : ''}`);
  out.push('');
  out.push('Latencies in µs. Fixed rate: open loop, each request timed from its scheduled send time. Max: closed loop (autocannon), at saturation latency ≈ connections / throughput. *added* = gateway − direct at the same percentile; direct and gateway were measured alternately in the same run.');
  for (const s of run.scenarios) {
    out.push('');
    out.push(`#### ${s.name}`);
    out.push('');
    out.push(`${s.description ? s.description + '. ' : ''}${scenarioHeadline(s)}.`);
    out.push('');
    md(COLUMNS, scenarioRows(s));
    const notes = [lagNote(s), reconnectNote(s), spreadNote(s), ...s.warnings.map((w) => `warning: ${w}`)].filter(Boolean);
    if (notes.length) {
      out.push('');
      for (const n of notes) out.push(`- ${n}`);
    }
  }
  if (run.budgets.outcomes.length) {
    out.push('');
    out.push('#### Budgets');
    out.push('');
    md(['status', 'scenario', 'metric', 'result', 'why'], run.budgets.outcomes.map((b) => [b.status === 'broken' ? '**BROKEN**' : budgetMark(b), b.scenario, `\`${b.metric}\``, b.message, b.note]), 5);
  }
  if (run.notes.length) {
    out.push('');
    for (const n of run.notes) out.push(`> ${n}`);
  }
  return out.join('\n') + '\n';
}

import { decodeHistogram, spectrum } from './hist.js';
import { COLUMNS, renderMarkdown, scenarioHeadline, scenarioRows } from './report.js';
import type { BenchRun, ModeResult, ScenarioResult } from './results.js';

/**
 * A self-contained HTML page (no script, no external files) with one SVG per scenario and mode: the percentile
 * spectrum of direct and gateway latencies, x on the "number of nines" scale (as HdrHistogram's plotter draws it),
 * y logarithmic in µs.
 */

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const W = 720;
const H = 340;
const PAD = { l: 64, r: 24, t: 24, b: 40 };
const MAX_NINES = 4;
const COLORS = { direct: '#1f77b4', gateway: '#d62728' };

function chart(title: string, m: ModeResult): string {
  const series = (['direct', 'gateway'] as const).map((name) => ({ name, pts: spectrum(decodeHistogram(m[name].histogram), MAX_NINES) }));
  const all = series.flatMap((s) => s.pts.map((p) => p[1])).filter((v) => v > 0);
  if (all.length === 0) return `<p>${esc(title)}: no data</p>`;
  const lo = Math.floor(Math.log10(Math.min(...all)));
  const hi = Math.ceil(Math.log10(Math.max(...all)) + 1e-9);
  const top = hi === lo ? lo + 1 : hi;
  const pw = W - PAD.l - PAD.r;
  const ph = H - PAD.t - PAD.b;
  // x: nines = -log10(1 - p/100) over 90% of the width; the max sits at the right edge.
  const xOf = (p: number) => PAD.l + (p >= 100 ? 1 : (0.9 * Math.min(MAX_NINES, -Math.log10(1 - p / 100))) / MAX_NINES) * pw;
  const yOf = (us: number) => PAD.t + ph - ((Math.log10(Math.max(us, 10 ** lo)) - lo) / (top - lo)) * ph;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  parts.push(`<text x="${PAD.l}" y="14" font-size="13" font-weight="bold">${esc(title)}</text>`);
  for (let d = lo; d <= top; d++) {
    for (const mult of d < top ? [1, 2, 5] : [1]) {
      const v = mult * 10 ** d;
      const y = yOf(v);
      parts.push(`<line x1="${PAD.l}" x2="${PAD.l + pw}" y1="${y}" y2="${y}" stroke="${mult === 1 ? '#ccc' : '#eee'}"/>`);
      parts.push(`<text x="${PAD.l - 6}" y="${y + 4}" text-anchor="end" fill="#555">${v >= 1000 ? `${v / 1000} ms` : `${v} µs`}</text>`);
    }
  }
  const ticks: Array<[number, string]> = [[0, '0%'], [90, '90%'], [99, '99%'], [99.9, '99.9%'], [99.99, '99.99%'], [100, 'max']];
  for (const [p, label] of ticks) {
    const x = xOf(p);
    parts.push(`<line x1="${x}" x2="${x}" y1="${PAD.t}" y2="${PAD.t + ph}" stroke="#ddd"/>`);
    parts.push(`<text x="${x}" y="${PAD.t + ph + 16}" text-anchor="middle" fill="#555">${label}</text>`);
  }
  parts.push(`<text x="${PAD.l + pw / 2}" y="${H - 4}" text-anchor="middle" fill="#333">percentile</text>`);
  series.forEach((s, i) => {
    const path = s.pts.map(([p, v], j) => `${j ? 'L' : 'M'}${xOf(p).toFixed(1)},${yOf(v).toFixed(1)}`).join(' ');
    parts.push(`<path d="${path}" fill="none" stroke="${COLORS[s.name]}" stroke-width="2"/>`);
    // Legend in the top left: the low percentiles there have the lowest latencies, so the curves stay clear of it.
    const ly = PAD.t + 16 + i * 18;
    parts.push(`<line x1="${PAD.l + 12}" x2="${PAD.l + 32}" y1="${ly - 4}" y2="${ly - 4}" stroke="${COLORS[s.name]}" stroke-width="2"/>`);
    parts.push(`<text x="${PAD.l + 36}" y="${ly}">${s.name}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

function scenarioSection(s: ScenarioResult): string {
  const rows = scenarioRows(s);
  const table = `<table><thead><tr>${COLUMNS.map((c) => `<th>${esc(c)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr class="${esc(r[1])}">${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
  const charts: string[] = [];
  if (s.fixed) charts.push(chart(`${s.name}: fixed ${s.fixed.rate?.toLocaleString('en-US')} req/s, ${s.fixed.connections} connections (open loop)`, s.fixed));
  if (s.max) charts.push(chart(`${s.name}: max throughput, ${s.max.connections} connections (closed loop)`, s.max));
  return `<section><h2>${esc(s.name)}</h2><p>${esc(s.description)}${s.description ? '. ' : ''}${esc(scenarioHeadline(s))}.</p>${table}${charts.map((c) => `<div class="chart">${c}</div>`).join('')}${
    s.warnings.length ? `<ul>${s.warnings.map((w) => `<li>${esc(w)}</li>`).join('')}</ul>` : ''
  }</section>`;
}

export function renderHtml(run: BenchRun): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nanogate bench ${esc(run.startedAt)}</title>
<style>
body { font-family: sans-serif; margin: 2em; max-width: 1100px; color: #222; }
table { border-collapse: collapse; font-size: 13px; margin: 0.5em 0 1em; }
td, th { padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }
td:nth-child(-n+2), th:nth-child(-n+2) { text-align: left; }
tr.added td { color: #a00; border-bottom: 2px solid #bbb; }
.chart { margin: 0.5em 0 1.5em; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 12px; }
</style></head><body>
<h1>nanogate bench${run.short ? ' (--short)' : ''}</h1>
<p>${esc(run.startedAt)} · ${esc(run.machine.cpu)} × ${run.machine.cores} · ${esc(run.machine.kernel)} · node ${esc(run.machine.node)} · nanogate ${esc(run.nanogate.version)}${run.nanogate.commit ? ` (${esc(run.nanogate.commit)})` : ''}</p>
<p>Latencies in µs. Fixed rate: open loop, each request timed from its scheduled send time. Max: closed loop. <em>added</em> = gateway − direct at the same percentile.</p>
${run.scenarios.map(scenarioSection).join('\n')}
<h2>Report (Markdown)</h2>
<pre>${esc(renderMarkdown(run))}</pre>
</body></html>
`;
}

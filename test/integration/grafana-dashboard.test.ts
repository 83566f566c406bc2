import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { closedPort, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { ROOT } from '../helpers/cli.js';

/**
 * deploy/grafana/nanogate.json imports into a stock Grafana with a Prometheus data source chosen at import
 * (`${DS_PROMETHEUS}`), its PromQL parses (promtool checks every expression as a recording rule), and every metric
 * it queries is one a real gateway exports: a renamed metric breaks this test, not an operator's dashboard.
 */

const PROMTOOL = process.env.PROMTOOL ?? 'promtool';
const T = { timeout: 60_000 };
const DS = '${DS_PROMETHEUS}';

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: { refId: string; expr: string; datasource?: { type: string; uid: string } }[];
  panels?: Panel[];
}
interface Dashboard {
  __inputs: { name: string; type: string; pluginId: string }[];
  __requires: { type: string; id: string }[];
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; datasource: { uid: string }; query: { query: string } }[] };
  annotations: { list: { expr?: string; datasource: { uid: string } }[] };
}

const dashboard = JSON.parse(readFileSync(join(ROOT, 'deploy/grafana/nanogate.json'), 'utf8')) as Dashboard;
const allPanels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);

/** Every PromQL expression of the dashboard, with where it is (targets, annotations, variable queries). */
function expressions(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of allPanels) for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr });
  for (const a of dashboard.annotations.list) if (a.expr) out.push({ where: 'annotation', expr: a.expr });
  for (const v of dashboard.templating.list) {
    // label_values(selector, label): the selector is the PromQL part
    const m = /^label_values\((.*),\s*[a-zA-Z_]+\)$/.exec(v.query.query);
    assert.ok(m, `variable ${v.name}: a label_values(selector, label) query`);
    out.push({ where: `variable ${v.name}`, expr: m[1] });
  }
  return out;
}

/** Grafana's variables replaced by what they stand for, so that the text is plain PromQL. */
function plain(expr: string): string {
  return expr.replaceAll('$__rate_interval', '5m').replaceAll('$__range', '1h').replaceAll('$__interval', '1m').replace(/\$[a-z_]+/g, '.*');
}

const FUNCTIONS_AND_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

/** The metric names a PromQL expression selects: identifiers outside strings, braces, brackets and grouping lists, not called as functions. */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names: string[] = [];
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = stripped.slice(m.index! + m[0].length);
    if (/^\s*\(/.test(after) || FUNCTIONS_AND_KEYWORDS.has(m[0].toLowerCase())) continue;
    if (/\d/.test(stripped[m.index! - 1] ?? '')) continue; // a unit after a number, as in 1e3
    names.push(m[0]);
  }
  return names;
}

let up: TestUpstream;
let gw: TestGateway;

before(async () => {
  up = await startUpstream();
  const dead = await closedPort();
  gw = await startGateway(`
upstreams:
  app:
    nodes: [{ url: ${up.url} }, { url: http://127.0.0.1:${dead} }]
    circuitBreaker: { errorPercent: 50, minRequests: 100 }
routes:
  - name: limited
    match: { prefix: /limited }
    upstream: app
    policies:
      rateLimit: { limits: [{ key: ip, algorithm: tokenBucket, rate: 1, per: minute, burst: 1 }] }
  - { name: all, match: { prefix: / }, upstream: app }
`);
});

after(async () => {
  await gw?.stop();
  await up?.close();
});

test('the dashboard is a Grafana export with one Prometheus data-source input that every query uses', () => {
  assert.deepEqual(dashboard.__inputs.map((i) => [i.name, i.type, i.pluginId]), [['DS_PROMETHEUS', 'datasource', 'prometheus']]);
  assert.ok(dashboard.__requires.some((r) => r.type === 'datasource' && r.id === 'prometheus'));
  assert.ok(dashboard.__requires.some((r) => r.type === 'grafana'));
  for (const type of new Set(allPanels.map((p) => p.type).filter((t) => t !== 'row'))) {
    assert.ok(dashboard.__requires.some((r) => r.type === 'panel' && r.id === type), `panel type ${type} is required`);
  }
  assert.match(dashboard.uid, /^[a-zA-Z0-9_-]{1,40}$/);
  assert.ok(dashboard.title && Number.isInteger(dashboard.schemaVersion));
  const ids = allPanels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const p of allPanels) {
    assert.ok(p.gridPos.w > 0 && p.gridPos.x + p.gridPos.w <= 24, `panel "${p.title}" fits the 24-column grid`);
    if (p.type === 'row') continue;
    assert.equal(p.datasource?.uid, DS, `panel "${p.title}" uses the input data source`);
    assert.ok(p.targets && p.targets.length > 0, `panel "${p.title}" has a query`);
    for (const t of p.targets) assert.equal(t.datasource?.uid ?? DS, DS);
  }
  for (const v of dashboard.templating.list) assert.equal(v.datasource.uid, DS, `variable ${v.name}`);
  for (const a of dashboard.annotations.list) if (a.expr) assert.equal(a.datasource.uid, DS);
  // what the task of the dashboard is: each of these has a panel
  const titles = allPanels.map((p) => p.title.toLowerCase()).join('\n');
  for (const want of ['requests', 'status code', 'gateway-added latency', 'upstream latency', 'healthy nodes', 'rate-limit', 'reload']) {
    assert.ok(titles.includes(want), `a panel about ${want}`);
  }
});

test('every expression parses as PromQL (promtool check rules)', T, () => {
  const exprs = expressions();
  const dir = mkdtempSync(join(tmpdir(), 'nanogate-dashboard-'));
  try {
    const rules = { groups: [{ name: 'dashboard', rules: exprs.map((e, i) => ({ record: `dashboard:expr_${i}`, expr: plain(e.expr) })) }] };
    writeFileSync(join(dir, 'rules.yml'), JSON.stringify(rules));
    const r = spawnSync(PROMTOOL, ['check', 'rules', join(dir, 'rules.yml')], { encoding: 'utf8', timeout: 30_000 });
    if (r.error) throw new Error(`cannot run ${PROMTOOL} (install Debian's "prometheus" package): ${r.error.message}`);
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, new RegExp(`SUCCESS: ${exprs.length} rules found`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the name extraction finds metrics and skips functions, labels, strings and durations', () => {
  assert.deepEqual(
    metricNames('histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{route=~"x|y", le!="b"}[5m]))) / on (route) group_left b_total offset 5m'),
    ['a_bucket', 'b_total'],
  );
  assert.deepEqual(metricNames('time() - max(c_seconds{instance=~".*"})'), ['c_seconds']);
});

test('every metric the dashboard queries is exported by a real gateway', T, async () => {
  // traffic that fills the families the panels read: a refusal by the rate limit, a refused connect
  for (let i = 0; i < 3; i++) await (await fetch(`${gw.url}/limited/x`)).arrayBuffer();
  for (let i = 0; i < 4; i++) await (await fetch(`${gw.url}/x`)).arrayBuffer();
  const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  const exported = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m;
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exported.add(name + s);
    else exported.add(name);
  }
  for (const m of text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/gm)) exported.add(m[1]);
  assert.ok(text.includes('code="NG_ERR_RATE_LIMITED"'), 'the rate-limit refusal the dashboard filters on is a real code');
  const missing: string[] = [];
  let checked = 0;
  for (const { where, expr } of expressions()) {
    const names = metricNames(plain(expr));
    assert.ok(names.length > 0, `${where}: no metric found in ${expr}`);
    for (const n of names) {
      checked++;
      if (!exported.has(n)) missing.push(`${where}: ${n}`);
    }
  }
  assert.deepEqual(missing, []);
  assert.ok(checked >= 25);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Smoke test of `nanogate bench --short`: it runs end to end (own upstream, gateway and load generator as separate
// processes), reports every field for both load kinds, writes JSON, Markdown and HTML, and --gate fails on a broken
// budget. It checks shapes, never numbers: this machine is shared and small.

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'nanogate.js');

function run(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`nanogate ${args.join(' ')} did not finish in ${timeoutMs / 1000} s\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const LATENCY = ['p50', 'p90', 'p95', 'p99', 'p999', 'max'] as const;

test('nanogate bench --help prints usage; bench micro --list finds the suites', async () => {
  const help = await run(['bench', '--help'], 20_000);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: nanogate bench/);
  assert.match(help.stdout, /--gate/);
  const list = await run(['bench', 'micro', '--list'], 30_000);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /^route-match /m);
  assert.match(list.stdout, /^response-head /m);
});

test('nanogate bench --short: runs, reports every field, writes JSON/Markdown/HTML, and --gate names a broken budget', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nanogate-bench-smoke-'));
  try {
    const budgets = join(dir, 'budgets.json');
    writeFileSync(
      budgets,
      JSON.stringify({
        budgets: [
          { scenario: 'passthrough', metric: 'fixed.added.p50', max: -1e9, unit: 'µs', note: 'impossible on purpose' },
          { scenario: '*', metric: 'max.ratio', min: 0 },
        ],
      }),
    );
    const files = { json: join(dir, 'out.json'), md: join(dir, 'out.md'), html: join(dir, 'out.html') };
    const r = await run(
      [
        'bench', '--short', 'passthrough', 'routes-10k',
        '--duration', '1', '--warmup', '0.5', '--rounds', '1', '--rate', '300', '--connections', '8', '--workers', '1',
        '--budgets', budgets, '--gate', '--json', files.json, '--markdown', files.md, '--html', files.html, '--out', join(dir, 'run'),
      ],
      55_000,
    );
    assert.equal(r.code, 2, `expected the gate to fail (exit 2)\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
    assert.match(r.stderr, /budget broken/);
    assert.match(r.stderr, /passthrough fixed\.added\.p50: .* > max/);
    // the terminal table
    for (const col of ['P50', 'P90', 'P95', 'P99', 'P99.9', 'max', 'req/s', '× direct', 'errors', 'non-2xx']) assert.ok(r.stdout.includes(col), `table lacks ${col}`);
    assert.match(r.stdout, /fixed 300\/s\s+added/);
    assert.match(r.stdout, /max c=8\s+gateway/);

    const run_ = JSON.parse(readFileSync(files.json, 'utf8'));
    assert.equal(run_.short, true);
    assert.deepEqual(run_.scenarios.map((s: { name: string }) => s.name), ['passthrough', 'routes-10k']);
    for (const s of run_.scenarios) {
      assert.equal(s.gatewayWorkers, 1);
      for (const mode of ['fixed', 'max']) {
        const m = s[mode];
        assert.ok(m, `${s.name}: ${mode} missing`);
        for (const target of ['direct', 'gateway']) {
          const t = m[target];
          for (const k of LATENCY) assert.equal(typeof t[k], 'number', `${s.name} ${mode} ${target} ${k}`);
          for (const k of ['rps', 'errors', 'non2xx', 'responses']) assert.equal(typeof t[k], 'number', `${s.name} ${mode} ${target} ${k}`);
          assert.ok(t.responses > 0, `${s.name} ${mode} ${target}: no responses`);
          assert.equal(typeof t.histogram, 'string');
          assert.equal(typeof t.errorBreakdown.timeout, 'number');
        }
        for (const k of LATENCY) assert.equal(typeof m.added[k], 'number', `${s.name} ${mode} added ${k}`);
        assert.ok(Number.isFinite(m.ratio), `${s.name} ${mode} ratio`);
      }
      assert.ok(s.fixed.direct.sendLag && s.fixed.gateway.service, 'fixed mode reports send lag and service time');
    }
    assert.equal(run_.scenarios[1].routes, 10000);
    const outcomes = run_.budgets.outcomes as Array<{ scenario: string; metric: string; status: string }>;
    assert.ok(outcomes.some((o) => o.metric === 'fixed.added.p50' && o.status === 'broken'));
    assert.equal(outcomes.filter((o) => o.metric === 'max.ratio' && o.status === 'ok').length, 2);

    const md = readFileSync(files.md, 'utf8');
    assert.match(md, /^### nanogate bench \(--short\): 1 budget broken/m);
    assert.match(md, /^#### passthrough$/m);
    assert.match(md, /^#### routes-10k$/m);
    assert.match(md, /\| mode \| target \| P50 \| P90 \| P95 \| P99 \| P99\.9 \| max \| req\/s \| × direct \| errors \| non-2xx \|/);
    assert.match(md, /\*\*BROKEN\*\* \| passthrough \| `fixed\.added\.p50`/);

    const html = readFileSync(files.html, 'utf8');
    assert.equal((html.match(/<svg /g) ?? []).length, 4, 'one plot per scenario and mode');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('nanogate bench: a WebSocket scenario counts echoes both ways, a baseline scenario measures a second gateway and its added CPU', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nanogate-bench-ws-'));
  try {
    const budgets = join(dir, 'budgets.json');
    writeFileSync(budgets, JSON.stringify({ budgets: [{ scenario: 'websocket', metric: 'max.ratio', min: 1e9, note: 'impossible on purpose' }] }));
    const json = join(dir, 'out.json');
    const r = await run(
      [
        'bench', '--short', 'websocket', 'graphql-ab',
        '--duration', '1', '--warmup', '0.3', '--rounds', '1', '--rate', '200', '--connections', '4', '--workers', '1',
        '--budgets', budgets, '--gate', '--json', json, '--out', join(dir, 'run'),
      ],
      55_000,
    );
    assert.equal(r.code, 2, `expected the gate to fail (exit 2)\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
    assert.match(r.stderr, /websocket max\.ratio: .* < min/);
    const out = JSON.parse(readFileSync(json, 'utf8'));
    const [ws, gql] = out.scenarios;
    assert.deepEqual(ws.websocket, { messageBytes: 64, window: 16 });
    for (const m of [ws.fixed, ws.max]) {
      for (const t of [m.direct, m.gateway]) {
        assert.ok(t.responses > 0, 'echoes came back');
        assert.equal(t.errors, 0);
      }
    }
    assert.match(r.stdout, /fixed 200\/s\s+baseline/);
    assert.ok(gql.baselineConfig.endsWith('passthrough.yaml'));
    assert.equal(typeof gql.max.direct.gatewayCpuUsPerReq, 'number', 'the baseline gateway CPU is measured');
    assert.equal(typeof gql.max.added.gatewayCpuUsPerReq, 'number');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

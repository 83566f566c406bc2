import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { closedPort, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startCollector, type Collector } from '../helpers/collector.js';
import { PROMETHEUS_ACCEPT, parsePrometheus, scrapeRaw } from '../helpers/prometheus.js';
import { openMetricsProblems, promtoolParsesOpenMetrics } from '../helpers/openmetrics.js';

/**
 * `promtool check metrics` refused the scrape: the event-loop lag was a gauge with a `quantile` label, which
 * Prometheus reserves for summaries; and the families written per node row (in-flight, connections, responses,
 * failures) came out interleaved instead of one group each. The check runs on a real scrape of a gateway where every
 * family has samples (policies that time phases, consumer plans, rejections, a dead node, access-log and span
 * counters, two workers). promtool comes from Debian's `prometheus` package; without it this test fails rather than
 * skips, so a machine that cannot check the exposition format does not pass for one that did.
 */

const PROMTOOL = process.env.PROMTOOL ?? 'promtool';

let up: TestUpstream;
let collector: Collector;
let gw: TestGateway;

before(async () => {
  up = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('hello');
  });
  collector = await startCollector();
  const dead = await closedPort();
  const logDir = mkdtempSync(join(tmpdir(), 'nanogate-promtool-'));
  gw = await startGateway(
    `
observability:
  accessLog: { destination: { type: file, path: ${join(logDir, 'access.log')} } }
  tracing: { endpoint: ${collector.url}/v1/traces, sampleRate: 1, batchSize: 1, flushMs: 20 }
consumers:
  - { id: alice, plan: gold, keys: [{ key: alice-key-0123456789 }] }
policies:
  accessLog: { sampleRate: 1 }
  tracing: {}
upstreams:
  app: { nodes: [{ url: ${up.url} }, { url: http://127.0.0.1:${dead} }] }
routes:
  - name: api
    match: { prefix: /api }
    upstream: app
    policies:
      serverTiming: {}
      auth: { methods: { apiKey: {} }, anonymous: true }
      rateLimit: { limits: [{ key: consumer, algorithm: tokenBucket, rate: 1000, per: second, burst: 1000 }] }
  - { name: plain, match: { prefix: / }, upstream: app }
`,
    { workers: 2 },
  );
});

after(async () => {
  await gw?.stop();
  await collector?.close();
  await up?.close();
});

function promtool(input: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', (err) => reject(new Error(`cannot run ${PROMTOOL} (install Debian's "prometheus" package): ${err.message}`)));
    child.once('close', (code) => resolve({ code, output }));
    child.stdin.end(input);
  });
}

test('a scrape of a gateway with every metric family filled passes `promtool check metrics` (lint included)', async () => {
  const send = async (path: string, headers: Record<string, string> = {}) => (await fetch(`${gw.url}${path}`, { headers })).arrayBuffer();
  for (let i = 0; i < 6; i++) await send('/api/x', { 'x-api-key': 'alice-key-0123456789' });
  for (let i = 0; i < 4; i++) await send('/plain');
  await send('/api/x', { 'x-api-key': 'wrong-key-0123456789' });
  await send('/a/%2e%2e/b');
  // gauges are written once a second and spans leave in the background: wait for both instead of a fixed sleep
  let text = '';
  for (let i = 0; i < 100; i++) {
    text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    const s = parsePrometheus(text);
    if (s.find('nanogate_worker_heap_used_bytes').every((x) => x.value > 0) && s.sum('nanogate_spans_exported_total') > 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const s = parsePrometheus(text);
  assert.ok(s.sum('nanogate_phase_duration_seconds_count', { route: 'api' }) > 0, 'phase histograms are in the scrape');
  assert.ok(s.sum('nanogate_rejections_total') > 0, 'rejections are in the scrape');
  // each family is one group of lines (OpenMetrics parsers refuse a family that comes back after another)
  const seen = new Set<string>();
  let current = '';
  for (const line of text.split('\n')) {
    const m = /^# TYPE (\S+) /.exec(line);
    if (m) {
      assert.ok(!seen.has(m[1]), `family ${m[1]} declared twice`);
      seen.add(m[1]);
      current = m[1];
    } else if (line !== '' && !line.startsWith('#')) {
      const name = line.slice(0, line.search(/[{ ]/));
      assert.ok(name === current || name.startsWith(current + '_'), `${name} outside its family's group (after ${current})`);
    }
  }
  const { code, output } = await promtool(text);
  assert.equal(output.trim(), '', 'promtool has no complaint, lint warnings included');
  assert.equal(code, 0);
});

test('the same gateway scraped as Prometheus does (OpenMetrics first) conforms to OpenMetrics and promtool reads it', async () => {
  await fetch(`${gw.url}/api/x`, { headers: { 'x-api-key': 'alice-key-0123456789' } }).then((r) => r.arrayBuffer());
  const om = await scrapeRaw(gw.adminUrl, { accept: PROMETHEUS_ACCEPT });
  assert.match(om.contentType, /^application\/openmetrics-text; version=1\.0\.0/);
  assert.ok(parsePrometheus(om.text.replace(/^# TYPE .* (info|unknown)$/gm, '').replace('# EOF\n', '')).sum('nanogate_upstream_duration_seconds_count') > 0);
  assert.deepEqual(openMetricsProblems(om.text), []);
  assert.equal(promtoolParsesOpenMetrics(om.text, PROMTOOL), '');
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { PROMETHEUS_ACCEPT, parsePrometheus, scrape, scrapeRaw } from '../helpers/prometheus.js';
import { eventually } from '../helpers/collector.js';
import { openMetricsProblems, promtoolParsesOpenMetrics } from '../helpers/openmetrics.js';

/**
 * The conventions a Prometheus user expects from a scrape: requests by exact status code (bounded), latency per
 * upstream node, nanogate_build_info, config reload outcomes, the standard process_* and nodejs_* families, and
 * OpenMetrics when the scraper asks for it.
 */

const T = { timeout: 60_000 };
let a: TestUpstream;
let b: TestUpstream;
let gw: TestGateway;
let config: string;

/** an upstream that answers /sNNN with status NNN, after `delayMs` */
function statusUpstream(delayMs: number): Promise<TestUpstream> {
  return startUpstream((req, res) => {
    const m = /\/s(\d{3})/.exec(req.url ?? '');
    setTimeout(() => {
      res.writeHead(m ? Number(m[1]) : 200, { 'content-type': 'text/plain' });
      res.end('x');
    }, delayMs);
  });
}

before(async () => {
  a = await statusUpstream(0);
  b = await statusUpstream(30);
  config = `
upstreams:
  fast: { nodes: [{ url: ${a.url} }] }
  slow: { nodes: [{ url: ${b.url} }] }
routes:
  - { name: fast, match: { prefix: /fast }, upstream: fast }
  - { name: slow, match: { prefix: /slow }, upstream: slow }
`;
  gw = await startGateway(config, { workers: 2 });
});

after(async () => {
  await gw?.stop();
  await a?.close();
  await b?.close();
});

async function get(path: string): Promise<number> {
  const res = await fetch(`${gw.url}${path}`);
  await res.arrayBuffer();
  return res.status;
}

test('requests carry the exact status code; codes outside the table fold into "other" within their class', T, async () => {
  for (const s of [200, 200, 201, 204, 404, 429, 503]) assert.equal(await get(`/fast/s${s}`), s);
  for (const s of [218, 418, 418, 599]) assert.equal(await get(`/fast/s${s}`), s);
  assert.equal(await get('/nowhere'), 404);
  const m = await scrape(gw.adminUrl);
  const count = (code: string, klass?: string) => m.sum('nanogate_requests_total', { route: 'fast', code, ...(klass ? { class: klass } : {}) });
  assert.equal(count('200', '2xx'), 2);
  assert.equal(count('201', '2xx'), 1);
  assert.equal(count('204', '2xx'), 1);
  assert.equal(count('404', '4xx'), 1);
  assert.equal(count('429', '4xx'), 1);
  assert.equal(count('503', '5xx'), 1);
  assert.equal(count('other', '2xx'), 1, '218 is no common code');
  assert.equal(count('other', '4xx'), 2, '418 twice');
  assert.equal(count('other', '5xx'), 1, '599');
  assert.equal(m.find('nanogate_requests_total', { route: 'fast', code: '418' }).length, 0);
  // the gateway's own answers have their exact code too, and the class is still there for dashboards that use it
  assert.equal(m.sum('nanogate_requests_total', { route: '-', code: '404', class: '4xx' }), 1);
  assert.equal(m.sum('nanogate_requests_total', { route: 'fast', class: '4xx' }), 4);
});

test('each node has a latency histogram; its count is the responses counter, and a slow node reads slower', T, async () => {
  for (let i = 0; i < 5; i++) {
    assert.equal(await get('/fast/x'), 200);
    assert.equal(await get('/slow/x'), 200);
  }
  // more fast answers, so that a loaded machine cannot make every one of them as slow as 25 ms (asserted below)
  for (let i = 0; i < 25; i++) assert.equal(await get('/fast/x'), 200);
  // the slow node's last response may still be finishing on the worker when the client has its bytes
  let m = await scrape(gw.adminUrl);
  await eventually(async () => (m = await scrape(gw.adminUrl)).sum('nanogate_upstream_duration_seconds_count', { upstream: 'slow' }) >= 5);
  assert.equal(m.types.get('nanogate_upstream_duration_seconds'), 'histogram');
  for (const [upstream, node] of [['fast', a], ['slow', b]] as const) {
    const labels = { upstream, node: `127.0.0.1:${node.port}` };
    const count = m.sum('nanogate_upstream_duration_seconds_count', labels);
    assert.equal(count, m.sum('nanogate_upstream_responses_total', labels));
    assert.equal(m.find('nanogate_upstream_duration_seconds_bucket', { ...labels, le: '+Inf' })[0].value, count);
  }
  assert.equal(m.sum('nanogate_upstream_duration_seconds_count', { upstream: 'slow' }), 5);
  // the slow node waits 30 ms before answering: none of its responses is in a bucket below 25 ms
  assert.equal(m.find('nanogate_upstream_duration_seconds_bucket', { upstream: 'slow', le: '0.025' })[0].value, 0);
  assert.ok(m.sum('nanogate_upstream_duration_seconds_sum', { upstream: 'slow' }) >= 5 * 0.03);
  assert.ok(m.find('nanogate_upstream_duration_seconds_bucket', { upstream: 'fast', le: '0.025' })[0].value > 0);
});

test('nanogate_build_info names the package version, the revision and the Node.js version', T, async () => {
  const m = await scrape(gw.adminUrl);
  const [info] = m.find('nanogate_build_info');
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.equal(info.value, 1);
  assert.equal(info.labels.version, pkg.version);
  assert.equal(info.labels.node_version, process.version);
  assert.match(info.labels.revision, /^([0-9a-f]{7,40}|unknown)$/);
});

test('config reloads are counted by outcome; the last success time moves only on success', T, async () => {
  const m0 = await scrape(gw.adminUrl);
  const at0 = m0.sum('nanogate_config_last_reload_success_timestamp_seconds');
  assert.ok(Math.abs(at0 - Date.now() / 1000) < 600, 'the start counts as the first success');
  assert.equal(m0.sum('nanogate_config_last_reload_successful'), 1);
  assert.equal(m0.sum('nanogate_config_reloads_total'), 0);

  gw.rewrite(config + '  - { name: extra, match: { prefix: /extra }, upstream: fast }\n');
  await gw.gateway.reload();
  gw.rewrite(config + '  - { name: broken, match: { prefix: /broken }, upstream: nope }\n');
  await assert.rejects(gw.gateway.reload());
  const m1 = await scrape(gw.adminUrl);
  assert.equal(m1.sum('nanogate_config_reloads_total', { action: 'reload', result: 'success' }), 1);
  assert.equal(m1.sum('nanogate_config_reloads_total', { action: 'reload', result: 'failure' }), 1);
  assert.equal(m1.sum('nanogate_config_last_reload_successful'), 0, 'the last change was refused');
  assert.ok(m1.sum('nanogate_config_last_reload_success_timestamp_seconds') >= at0);

  // through the admin API: a refused PUT /config counts as a failed apply
  const res = await fetch(`${gw.adminUrl}/config`, { method: 'PUT', body: 'routes: [{ name: x }]' });
  await res.arrayBuffer();
  assert.equal(res.status, 422);
  const m2 = await scrape(gw.adminUrl);
  assert.equal(m2.sum('nanogate_config_reloads_total', { action: 'apply', result: 'failure' }), 1);
  assert.equal(m2.sum('nanogate_config_version'), 2, 'the refused changes left version 2 serving');
});

test('process_* and nodejs_* families under their standard names, and no nanogate_ copy of them', T, async () => {
  const m = await scrape(gw.adminUrl);
  for (const name of ['process_cpu_user_seconds_total', 'process_cpu_system_seconds_total', 'process_cpu_seconds_total']) {
    assert.equal(m.types.get(name), 'counter', name);
    assert.ok(m.sum(name) > 0, name);
  }
  const start = m.sum('process_start_time_seconds');
  assert.ok(Math.abs(start - (Date.now() / 1000 - process.uptime())) < 5, 'the start time is this process');
  assert.ok(m.sum('process_resident_memory_bytes') > 10 * 1024 * 1024);
  const open = m.sum('process_open_fds');
  assert.ok(open > 5, 'sockets and files of the gateway are open');
  assert.ok(m.sum('process_max_fds') >= open);
  assert.ok(m.sum('nodejs_heap_size_used_bytes') > 0);
  assert.ok(m.sum('nodejs_heap_size_total_bytes') >= m.sum('nodejs_heap_size_used_bytes'));
  assert.ok(m.find('nodejs_heap_space_size_used_bytes', { space: 'old' }).length === 1);
  assert.equal(m.types.get('nodejs_eventloop_lag_seconds'), 'gauge');
  assert.equal(m.types.get('nodejs_eventloop_lag_p99_seconds'), 'gauge');
  assert.equal(m.types.get('nodejs_gc_duration_seconds'), 'histogram');
  assert.equal(m.find('nodejs_version_info')[0].labels.version, process.version);
  assert.equal(m.find('nanogate_process_resident_memory_bytes').length, 0, 'process_resident_memory_bytes replaces it');
});

test('Accept: application/openmetrics-text gets OpenMetrics: # EOF, counters named without _total, promtool parses it', T, async () => {
  await get('/fast/s200');
  // let the request land in the counters before the two scrapes are compared
  await eventually(async () => (await scrape(gw.adminUrl)).sum('nanogate_requests_total', { route: 'fast', code: '200' }) >= 1);
  const om = await scrapeRaw(gw.adminUrl, { accept: PROMETHEUS_ACCEPT });
  assert.equal(om.status, 200);
  assert.equal(om.contentType, 'application/openmetrics-text; version=1.0.0; charset=utf-8');
  assert.ok(om.text.endsWith('\n# EOF\n'));
  assert.match(om.text, /^# TYPE nanogate_requests counter$/m);
  assert.match(om.text, /^nanogate_requests_total\{/m);
  assert.match(om.text, /^# TYPE nanogate_build info$/m);
  assert.match(om.text, /^nanogate_request_duration_seconds_bucket\{route="fast",le="1\.0"\} /m);
  assert.deepEqual(openMetricsProblems(om.text), []);
  assert.equal(promtoolParsesOpenMetrics(om.text), '');
  // the same samples as the 0.0.4 text (but for le="1" vs le="1.0" and what moved between the two scrapes)
  const text = await scrapeRaw(gw.adminUrl);
  assert.equal(text.contentType, 'text/plain; version=0.0.4; charset=utf-8');
  const names = (t: string) => new Set(parsePrometheus(t.replace('# EOF\n', '').replace(/^# (HELP|TYPE) .*$/gm, '')).samples.map((s) => s.name));
  // the later scrape may have families the first had not yet (a first GC brings nodejs_gc_duration_seconds)
  const later = names(text.text);
  assert.deepEqual([...names(om.text)].filter((n) => !later.has(n)), []);
  assert.ok(later.size - names(om.text).size <= 3, 'the two formats list the same families');
  // plain text when OpenMetrics is not asked for, or ranked below text/plain
  assert.equal((await scrapeRaw(gw.adminUrl, { accept: 'text/plain' })).contentType, 'text/plain; version=0.0.4; charset=utf-8');
  assert.equal((await scrapeRaw(gw.adminUrl, { accept: 'application/openmetrics-text;q=0.2,text/plain;q=0.9' })).contentType, 'text/plain; version=0.0.4; charset=utf-8');
});

test('every metric docs/observability.md lists is in a scrape, under the type it says', T, async () => {
  const doc = readFileSync(new URL('../../../docs/observability.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('## Metrics'), doc.indexOf('## Where the time went'));
  const expand = (token: string): string[] => {
    const t = token.replace(/\{[^}]*\}$/, ''); // a trailing {labels}
    const m = /^(.*?)\{([^}]*)\}(.*)$/.exec(t);
    return m ? m[2].split(',').flatMap((part) => expand(m[1] + part + m[3])) : [t];
  };
  const listed = new Map<string, string>();
  for (const line of section.split('\n')) {
    if (!line.startsWith('| `')) continue;
    const cells = line.split('|').map((c) => c.trim());
    const type = /^(counter|gauge|histogram)/.exec(cells[2] ?? '')?.[1] ?? '';
    for (const [, token] of cells[1].matchAll(/`((?:nanogate|process|nodejs)_[^`]+)`/g)) for (const name of expand(token)) listed.set(name, type);
  }
  assert.ok(listed.size >= 40, `found ${listed.size} metric names in the doc`);
  const m = await scrape(gw.adminUrl);
  const missing = [...listed].filter(([name, type]) => {
    const actual = m.types.get(name);
    return actual === undefined || (type !== '' && actual !== type);
  });
  assert.deepEqual(missing, [], 'listed in the doc but not exported (or of another type)');
});

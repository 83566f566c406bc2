import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { REC_CLIENT, REC_SERVER, REC_TRACE, REC_VALUE_END, TraceParent, formatTraceparent, parseTraceparent, takeTraceRecord, traceRecords, unixNanos } from '../../src/observe/trace-context.js';
import { Redactor } from '../../src/observe/redact.js';
import { BOUNDS_MS, BUCKETS, HIST_SUM, STATUS_CODES, STATUS_OTHER, STATUS_SLOTS, bucketOf, classOfSlot, observe, statusSlot } from '../../src/observe/metrics-layout.js';
import { PromWriter, negotiateFormat } from '../../src/observe/prometheus.js';
import { ERRORS } from '../../src/errors/codes.js';
import { jsonString, phasesJson } from '../../src/policies/access-log/line.js';
import { openMetricsProblems } from '../helpers/openmetrics.js';
import { seededRandom } from '../helpers/random.js';
import { forEachPhase, ms3, msText, serverTimingValue } from '../../src/observe/phases.js';
import { parsePrometheus } from '../helpers/prometheus.js';
import type { RequestTiming } from '../../src/pipeline/policy.js';

const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const P = '00f067aa0ba902b7';

test('traceparent: valid values parse, the spec examples of invalid ones are refused', () => {
  const out = new TraceParent();
  assert.ok(parseTraceparent(`00-${T}-${P}-01`, out));
  assert.deepEqual({ ...out }, { traceId: T, parentId: P, flags: 1 });
  assert.ok(parseTraceparent(` 00-${T}-${P}-00 `, out), 'surrounding whitespace (OWS) is allowed');
  assert.equal(out.flags, 0);
  assert.ok(parseTraceparent(`01-${T}-${P}-01-future`, out), 'a later version may carry more fields');
  for (const bad of [
    `00-${T}-${P}-01-extra`, // version 00 is exactly 55 characters
    `ff-${T}-${P}-01`,
    `00-${'0'.repeat(32)}-${P}-01`,
    `00-${T}-${'0'.repeat(16)}-01`,
    `00-${T.toUpperCase()}-${P}-01`,
    `00-${T}-${P}-0g`,
    `00_${T}-${P}-01`,
    `00-${T.slice(1)}-${P}-01`,
    `01-${T}-${P}-01x`,
    '',
  ]) {
    assert.equal(parseTraceparent(bad, out), false, bad);
  }
  assert.equal(formatTraceparent(T, P, true), `00-${T}-${P}-01`);
});

/** A new trace's record: [traceparent value of an unsampled trace, trace id, client span, server span]. */
function nextRecord(): [string, string, string, string] {
  const at = takeTraceRecord();
  const t = traceRecords();
  return [
    t.slice(at, at + REC_VALUE_END),
    t.slice(at + REC_TRACE, at + REC_TRACE + 32),
    t.slice(at + REC_CLIENT, at + REC_CLIENT + 16),
    t.slice(at + REC_SERVER, at + REC_SERVER + 16),
  ];
}

test("a new trace's record: the upstream's traceparent as it is, then the server span; random hex, none all zero, across pool refills", () => {
  const traces = new Set<string>();
  const spans = new Set<string>();
  const parsed = new TraceParent();
  // 1,000 records span 8 refills of the pool
  for (let i = 0; i < 1000; i++) {
    const [value, trace, client, server] = nextRecord();
    assert.match(value, /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    assert.ok(parseTraceparent(value, parsed), value);
    assert.equal(parsed.traceId, trace);
    assert.equal(parsed.parentId, client);
    assert.equal(parsed.flags, 0);
    assert.match(server, /^[0-9a-f]{16}$/);
    for (const id of [trace, client, server]) assert.ok(/[1-9a-f]/.test(id), `an id is all zero: ${value} ${server}`);
    traces.add(trace);
    spans.add(client).add(server);
  }
  assert.equal(traces.size, 1000);
  assert.equal(spans.size, 2000);
});

test("ids are uniform: every hex digit as often as the others, every position's high bit set half the time", () => {
  // 4,000 requests' ids span 32 pool refills, each from its own seed; bounds are more than 6 standard deviations
  const digits = new Array<number>(16).fill(0);
  const high = new Array<number>(64).fill(0);
  const N = 4000;
  for (let i = 0; i < N; i++) {
    const [, trace, client, server] = nextRecord();
    const ids = trace + client + server;
    for (let p = 0; p < 64; p++) {
      const d = parseInt(ids[p], 16);
      digits[d]++;
      if (d >= 8) high[p]++;
    }
  }
  const each = (N * 64) / 16;
  for (let d = 0; d < 16; d++) assert.ok(Math.abs(digits[d] - each) < each * 0.05, `digit ${d.toString(16)}: ${digits[d]} of ${each} expected`);
  for (let p = 0; p < 64; p++) assert.ok(Math.abs(high[p] - N / 2) < 200, `position ${p}: high bit in ${high[p]} of ${N}`);
});

test('unix nanos: a decimal string of the wall-clock time', () => {
  const ns = BigInt(unixNanos(performance.now()));
  const now = BigInt(Date.now()) * 1_000_000n;
  assert.ok(ns > now - 5_000_000_000n && ns < now + 5_000_000_000n);
  assert.match(unixNanos(12.9999999), /^\d+$/);
});

test('redaction: query parameters by name (also encoded), header values by name, PII patterns', () => {
  const r = new Redactor('redact', ['token', 'api_key'], ['authorization'], ['\\d{16}']);
  assert.equal(r.query('token=abc&x=1&API_KEY=z&a%5Fb=2'), 'token=[redacted]&x=1&API_KEY=[redacted]&a%5Fb=2');
  assert.equal(r.query('api%5Fkey=z'), 'api%5Fkey=[redacted]');
  assert.equal(r.query('card=4111111111111111'), 'card=[redacted]');
  assert.equal(r.header('authorization', 'Bearer x'), '[redacted]');
  assert.equal(r.header('user-agent', 'curl 4111111111111111'), 'curl [redacted]');
  assert.equal(new Redactor('drop', [], [], []).query('a=1'), '');
  assert.equal(new Redactor('keep', ['token'], [], []).query('token=1'), 'token=1');
  assert.equal(r.query(''), '');
});

test('histogram buckets: a value goes to the first bound it does not exceed; the sum is in microseconds', () => {
  assert.equal(bucketOf(0), 0);
  assert.equal(bucketOf(0.025), 0);
  assert.equal(bucketOf(0.026), 1);
  assert.equal(bucketOf(1), BOUNDS_MS.indexOf(1));
  assert.equal(bucketOf(10_000), BOUNDS_MS.length - 1);
  assert.equal(bucketOf(10_001), BUCKETS - 1);
  const cells = new Int32Array(new SharedArrayBuffer(4 * (BUCKETS + 1)));
  observe(cells, 0, 1.5);
  observe(cells, 0, Number.NaN);
  observe(cells, 0, -3);
  assert.equal(cells[bucketOf(1.5)], 1);
  assert.equal(cells[0], 2, 'NaN and negative durations count as 0');
  assert.equal(cells[HIST_SUM], 1500);
});

test('bucketOf (one table read) puts every value where a scan of the bounds does', () => {
  const scan = (ms: number) => {
    let b = 0;
    while (b < BOUNDS_MS.length && ms > BOUNDS_MS[b]) b++;
    return b;
  };
  const values = [0, 0.0001, 0.001, 0.999e-3, 1e-3, 11, 1e7, 2 ** 31, Infinity];
  for (const bound of BOUNDS_MS) values.push(bound, bound * 0.999, bound * 1.001, bound / 2, bound * 2);
  const rnd = seededRandom(7);
  for (let i = 0; i < 20_000; i++) values.push(Math.exp(rnd.next() * 25 - 12)); // 6e-6 ms .. 1.6e5 ms
  for (const v of values) assert.equal(bucketOf(v), scan(v), `bucketOf(${v})`);
});

test('status slots: every status the gateway answers has its own slot, the rest of a class shares one, memory is fixed', () => {
  for (const { status } of Object.values(ERRORS)) assert.ok(statusSlot(status) < STATUS_OTHER, `gateway status ${status} counted exactly`);
  for (const code of STATUS_CODES) {
    assert.equal(STATUS_CODES[statusSlot(code)], code);
    assert.equal(classOfSlot(statusSlot(code)), ((code / 100) | 0) - 1);
  }
  assert.equal(statusSlot(218), STATUS_OTHER + 1);
  assert.equal(statusSlot(418), STATUS_OTHER + 3);
  assert.equal(classOfSlot(statusSlot(418)), 3);
  // out of range statuses count as 5xx, as the class counter did
  for (const s of [0, 42, 600, 999, -1, 1e9]) assert.equal(statusSlot(s), STATUS_OTHER + 4, `status ${s}`);
  assert.equal(STATUS_SLOTS, STATUS_OTHER + 5);
  assert.ok(STATUS_SLOTS <= 64, 'a route row stays small');
});

test('the Prometheus writer escapes label values and the test parser reads them back', () => {
  const w = new PromWriter();
  w.help('x_total', 'counter', 'a counter');
  w.sample('x_total', w.labels('plan', 'go"ld\\\nx', 'route', 'r'), 3);
  w.sample('y', '', Infinity);
  const s = parsePrometheus(w.text());
  assert.equal(s.types.get('x_total'), 'counter');
  assert.deepEqual(s.find('x_total')[0].labels, { plan: 'go"ld\\\nx', route: 'r' });
  assert.equal(s.sum('y'), Infinity);
});

test('the writer speaks OpenMetrics: family names without _total and _info, float bounds, quoted HELP escaped, # EOF', () => {
  const w = new PromWriter();
  w.help('x_total', 'counter', 'a "counter"');
  w.sample('x_total', w.labels('a', 'b'), 3);
  w.help('b_info', 'info', 'build');
  w.sample('b_info', w.labels('version', '1'), 1);
  w.help('h_seconds', 'histogram', 'h');
  w.bucket('h_seconds_bucket', w.labels('r', 'x'), 0.5, 1);
  w.bucket('h_seconds_bucket', w.labels('r', 'x'), 1, 2);
  w.bucket('h_seconds_bucket', w.labels('r', 'x'), Infinity, 2);
  w.sample('h_seconds_sum', w.labels('r', 'x'), 1.2);
  w.sample('h_seconds_count', w.labels('r', 'x'), 2);
  const om = w.text('openmetrics');
  assert.equal(
    om,
    [
      '# HELP x a \\"counter\\"',
      '# TYPE x counter',
      'x_total{a="b"} 3',
      '# HELP b build',
      '# TYPE b info',
      'b_info{version="1"} 1',
      '# HELP h_seconds h',
      '# TYPE h_seconds histogram',
      'h_seconds_bucket{r="x",le="0.5"} 1',
      'h_seconds_bucket{r="x",le="1.0"} 2',
      'h_seconds_bucket{r="x",le="+Inf"} 2',
      'h_seconds_sum{r="x"} 1.2',
      'h_seconds_count{r="x"} 2',
      '# EOF',
      '',
    ].join('\n'),
  );
  assert.deepEqual(openMetricsProblems(om), []);
  const text = w.text();
  assert.match(text, /^# TYPE x_total counter$/m);
  assert.match(text, /^# TYPE b_info gauge$/m);
  assert.match(text, /^h_seconds_bucket\{r="x",le="1"\} 2$/m);
  assert.ok(!text.includes('# EOF'));
  // a counter without _total cannot be written as OpenMetrics: found by any test that renders a scrape
  const bad = new PromWriter();
  bad.help('requests', 'counter', 'r');
  assert.throws(() => bad.text('openmetrics'), /must end in _total/);
});

test('the strict OpenMetrics check finds what an exposition gets wrong', () => {
  const problems = openMetricsProblems('# TYPE a_total counter\na_total 1\n# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_count 3\n\n');
  const joined = problems.join('\n');
  assert.match(joined, /does not end with "# EOF"/);
  assert.match(joined, /counter family a_total is named with its _total/);
  assert.match(joined, /belongs to no declared family/);
  assert.match(joined, /le="1" is not a canonical float/);
  assert.match(joined, /not cumulative/);
  assert.match(joined, /_count 3 is not the \+Inf bucket 1/);
  assert.match(joined, /empty line/);
});

test('the format follows the Accept header: OpenMetrics when asked for first or equally, else the 0.0.4 text', () => {
  assert.equal(negotiateFormat(undefined), 'prometheus');
  assert.equal(negotiateFormat('*/*'), 'prometheus');
  assert.equal(negotiateFormat('text/plain;version=0.0.4'), 'prometheus');
  assert.equal(negotiateFormat('application/openmetrics-text'), 'openmetrics');
  assert.equal(negotiateFormat('application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'), 'openmetrics');
  assert.equal(negotiateFormat('text/plain;q=1,application/openmetrics-text;q=0.5'), 'prometheus');
  assert.equal(negotiateFormat('application/openmetrics-text;q=0'), 'prometheus');
  assert.equal(negotiateFormat('Application/OpenMetrics-Text; Version=1.0.0'), 'openmetrics');
});

/** A request's timestamps: routed after 10 µs, upstream 0.5-101.9, ended at 102; hooks as given. */
function timingOf(hooks: number[], hookNames: string[]): RequestTiming {
  return { start: 100, routed: 100.01, upstreamStart: 100.5, connected: 100.6, upstreamHeaders: 101.9, end: 102, hooks, hookNames };
}

test('phases and Server-Timing from request timestamps; hooks that did not run are left out', () => {
  const t = timingOf([100.21, 100.5, 0], ['auth', 'rateLimit', 'headers']);
  const seen: [string, number][] = [];
  forEachPhase(t, t.end, (n, ms) => seen.push([n, Math.round(ms * 1000) / 1000]));
  assert.deepEqual(seen, [
    ['route', 0.01],
    ['auth', 0.2],
    ['rateLimit', 0.29],
    ['connect', 0.1],
    ['upstream', 1.3],
    ['transfer', 0.1],
  ]);
  assert.equal(serverTimingValue(t), 'route;dur=0.01, auth;dur=0.2, rateLimit;dur=0.29, connect;dur=0.1, upstream;dur=1.3');
  assert.equal(serverTimingValue({ ...t, start: 0 }), '');
});

test('msText writes a duration exactly as the number ms3 gives would print', () => {
  const samples = [0, -1, NaN, 0.0004, 0.0005, 0.001, 0.01, 0.1, 0.963, 0.9994, 0.9995, 1, 1.5, 2.0004, 12.3456, 999.9995, 1000, 123456.789, 86400000.001];
  for (let i = 0; i < 2000; i++) samples.push(Math.random() * 10 ** Math.floor(Math.random() * 7));
  for (const ms of samples) assert.equal(msText(ms), String(ms3(ms)), String(ms));
});

test('jsonString writes ASCII JSON text that reads back as the same string', () => {
  const samples = ['', 'plain', '/a/b?c=d', 'quote"d', 'back\\slash', 'tab\there', 'nl\n', '\u0000', 'caf\u00e9', '\u2028', '\ud83d\ude00', '\ud800', '~\u007f'];
  for (const s of samples) {
    const j = jsonString(s);
    assert.match(j, /^"[\x20-\x7e]*"$/, JSON.stringify(s));
    assert.equal(JSON.parse(j), s, JSON.stringify(s));
  }
  // ASCII stays as JSON.stringify writes it; the rest as \uXXXX per UTF-16 code unit
  assert.equal(jsonString('quote"d\n'), JSON.stringify('quote"d\n'));
  assert.equal(jsonString('caf\u00e9 \ud83d\ude00'), '"caf\\u00e9 \\ud83d\\ude00"');
});

test('phasesJson: every phase once, in the order they come, a policy timed twice summed', () => {
  const t = timingOf([100.21, 100.3, 100.5, 0], ['auth', 'rateLimit', 'rateLimit', 'headers']);
  assert.equal(phasesJson(t, t.end), '{"route":0.01,"auth":0.2,"rateLimit":0.29,"connect":0.1,"upstream":1.3,"transfer":0.1}');
  // the same names, another request: nothing of the first one's sums is left over
  assert.equal(phasesJson({ ...t, hooks: [100.02, 0, 0, 0], upstreamStart: 0, connected: 0, upstreamHeaders: 0 }, 0), '{"route":0.01,"auth":0.01}');
  assert.equal(phasesJson({ ...t, hooks: null, hookNames: null }, t.end), '{"route":0.01,"connect":0.1,"upstream":1.3,"transfer":0.1}');
  assert.equal(phasesJson({ ...t, start: 0 }, t.end), '{}');
});

/**
 * The text of a line's phases against forEachPhase's list, summed per name, for many requests of two routes (one
 * whose policies each time once, one timing a policy twice): the same numbers whether a value is below a millisecond
 * (its key and value come from a table filled as values are seen) or above, zero or a clock step backwards.
 */
test('phasesJson agrees with forEachPhase over many requests, below and above a millisecond', () => {
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const gap = () => { const r = random(); return r < 0.1 ? 0 : r < 0.15 ? -0.002 : r < 0.8 ? random() * 0.9 : random() * 30; };
  const routes = [['auth', 'authorize', 'rateLimit'], ['auth', 'rateLimit', 'rateLimit']];
  for (let n = 0; n < 400; n++) {
    const names = routes[n % 2];
    const start = 1000 + n;
    const routed = start + gap();
    const hooks: number[] = [];
    let at = routed;
    const ran = Math.floor(random() * (names.length + 1));
    for (let i = 0; i < names.length; i++) hooks.push(i < ran ? (at += Math.max(gap(), 0.0001)) : 0);
    const upstreamStart = random() < 0.9 ? at + gap() : 0;
    const connected = upstreamStart > 0 ? upstreamStart + gap() : 0;
    const upstreamHeaders = connected > 0 && random() < 0.9 ? connected + gap() : 0;
    const end = upstreamHeaders > 0 ? upstreamHeaders + gap() : 0;
    const t: RequestTiming = { start, routed, upstreamStart, connected, upstreamHeaders, end, hooks, hookNames: names };
    const sums = new Map<string, number>();
    forEachPhase(t, end, (name, ms) => sums.set(name, (sums.get(name) ?? 0) + ms));
    const expected = '{' + [...sums].map(([name, ms]) => JSON.stringify(name) + ':' + msText(ms)).join(',') + '}';
    assert.equal(phasesJson(t, end), expected, JSON.stringify(t));
  }
});

test('nodejs_eventloop_lag_*: about 10 wake-ups a second, the lag alone, and a blocked loop shows in it', async () => {
  const { ProcessMetrics } = await import('../../src/observe/process-metrics.js');
  const pm = new ProcessMetrics();
  const scrape = () => {
    const w = new PromWriter();
    pm.render(w);
    return parsePrometheus(w.text());
  };
  const switches = () => Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync('/proc/thread-self/status', 'utf8'))?.[1]);
  try {
    const s0 = switches();
    await new Promise((r) => setTimeout(r, 1000));
    // the thread sleeps between firings: about 10 wake-ups in that second (prom-client's 10 ms sampler made 100)
    const woke = switches() - s0;
    assert.ok(woke < 40, `${woke} wake-ups of an idle thread in 1 s`);
    const idle = scrape();
    // an idle loop fires its 100 ms sampler on time: what is left is well under the interval (it was ≥ 0.1 s with it)
    assert.ok(idle.sum('nodejs_eventloop_lag_p50_seconds') < 0.05, `idle p50 ${idle.sum('nodejs_eventloop_lag_p50_seconds')} s`);
    assert.ok(idle.sum('nodejs_eventloop_lag_min_seconds') >= 0);
    const until = performance.now() + 300;
    while (performance.now() < until) {
      // the control-plane thread blocked for 300 ms
    }
    await new Promise((r) => setTimeout(r, 250));
    const blocked = scrape();
    assert.ok(blocked.sum('nodejs_eventloop_lag_max_seconds') >= 0.15, `max ${blocked.sum('nodejs_eventloop_lag_max_seconds')} s after a 300 ms block`);
  } finally {
    pm.close();
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TraceParent, formatTraceparent, parseTraceparent, randomHex, unixNanos } from '../../src/observe/trace-context.js';
import { Redactor } from '../../src/observe/redact.js';
import { BOUNDS_MS, BUCKETS, HIST_SUM, bucketOf, observe } from '../../src/observe/metrics-layout.js';
import { PromWriter } from '../../src/observe/prometheus.js';
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

test('ids are random lower-case hex of the asked length, never all zero', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const id = randomHex(8);
    assert.match(id, /^[0-9a-f]{16}$/);
    assert.notEqual(id, '0'.repeat(16));
    seen.add(id);
  }
  assert.equal(seen.size, 2000);
  assert.match(randomHex(16), /^[0-9a-f]{32}$/);
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

test('phases and Server-Timing from request timestamps; hooks that did not run are left out', () => {
  const t: RequestTiming = {
    start: 100,
    routed: 100.01,
    upstreamStart: 100.5,
    connected: 100.6,
    upstreamHeaders: 101.9,
    end: 102,
    hooks: [100.21, 100.5, 0],
    hookNames: ['auth', 'rateLimit', 'headers'],
  };
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
  const samples = [0, -1, NaN, 0.0004, 0.0005, 0.001, 0.01, 0.1, 0.963, 1, 1.5, 2.0004, 12.3456, 999.9995, 1000, 123456.789, 86400000.001];
  for (let i = 0; i < 2000; i++) samples.push(Math.random() * 10 ** Math.floor(Math.random() * 7));
  for (const ms of samples) assert.equal(msText(ms), String(ms3(ms)), String(ms));
});

import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { Redactor } from '../../src/observe/redact.js';
import { isoTime, isoTimeAt } from '../../src/observe/log-format.js';
import { buildLine, lineCache, routePart } from '../../src/policies/access-log/line.js';
import { buildOtelLine, otelHeaderKeys, otelRoutePart } from '../../src/policies/access-log/line-otel.js';
import type { PolicyContext, RequestTiming } from '../../src/pipeline/policy.js';

/** The fields of a request that a line is built from; the rest of PolicyContext is not read. */
interface Facts {
  requestId: string;
  method: string;
  path: string;
  query: string;
  host: string;
  client: string;
  agent?: string;
  consumer: string | null;
  plan: string | null;
  node: string | null;
  bytesIn: number;
  status: number;
  rate?: { limited: boolean; limit: number; remaining: number };
}

function context(f: Facts): PolicyContext {
  const timing: RequestTiming = { start: 1, routed: 1.01, upstreamStart: 1.02, connected: 1.03, upstreamHeaders: 1.5, end: 1.6, hooks: null, hookNames: null };
  const ctx = {
    timing,
    requestId: f.requestId,
    method: f.method,
    path: f.path,
    query: f.query,
    hostHeader: f.host,
    clientIp: f.client,
    consumerId: f.consumer,
    consumerPlan: f.plan,
    upstreamNode: f.node,
    bytesIn: f.bytesIn,
    bytesOut: 100,
    trafficVersion: null,
    errorCode: null,
    upstreamError: null,
    slots: f.rate === undefined ? [] : [f.rate],
    header: (name: string) => (name === 'user-agent' ? f.agent : undefined),
  };
  return ctx as unknown as PolicyContext;
}

const first: Facts = {
  requestId: 'r-1', method: 'GET', path: '/orders/1', query: '', host: 'api.example:8080', client: '10.0.0.1', agent: 'curl/8',
  consumer: 'acme', plan: 'gold', node: '127.0.0.1:9001', bytesIn: 0, status: 200, rate: { limited: false, limit: 100, remaining: 99 },
};
const second: Facts = {
  requestId: 'r-2', method: 'POST', path: '/caf\u00e9 "x"', query: 'a=1', host: 'other.example', client: '::1', agent: 'wrk \u2192 2',
  consumer: null, plan: null, node: null, bytesIn: 42, status: 503, rate: { limited: true, limit: 5, remaining: 0 },
};
const third: Facts = { ...first, requestId: 'r-3', agent: undefined, rate: { limited: false, limit: 100, remaining: 98 } };

/**
 * A route's hook keeps the quoted value of the last line per field and the rate-limit field's fixed part: a line
 * whose values differ from the one before must carry its own values, in both formats, and each line is ASCII JSON.
 */
test('consecutive access-log lines carry their own values, whatever the line before held', () => {
  const redact = new Redactor('redact', ['token'], ['authorization'], []);
  const otel = { redact, headers: [], phases: false, phasesOverMs: 0, last: lineCache(), headerKeys: otelHeaderKeys([]) };
  const legacy = { redact, headers: [], phases: false, phasesOverMs: 0, last: lineCache() };
  const otelRoute = otelRoutePart('orders', '/orders/:id');
  const legacyRoute = routePart('orders');
  for (const facts of [first, second, third, first]) {
    const o = buildOtelLine(context(facts), facts.status, otelRoute, otel);
    const l = buildLine(context(facts), facts.status, legacyRoute, legacy);
    for (const line of [o, l]) assert.match(line, /^[\x20-\x7e]*\n$/, 'a line is printable ASCII');
    const a = JSON.parse(o) as Record<string, unknown>;
    assert.equal(a['nanogate.request_id'], facts.requestId);
    assert.equal(a['http.request.method'], facts.method);
    assert.equal(a['url.path'], facts.path);
    assert.equal(a['http.response.status_code'], facts.status);
    assert.equal(a['server.address'], facts.host.split(':')[0]);
    assert.equal(a['client.address'], facts.client);
    assert.equal(a['user_agent.original'], facts.agent);
    assert.equal(a['nanogate.consumer'], facts.consumer);
    assert.equal(a['nanogate.plan'], facts.plan ?? undefined);
    assert.equal(a['nanogate.upstream.node'], facts.node);
    assert.equal(a['http.request.body.size'], facts.bytesIn);
    assert.equal(a['http.response.body.size'], 100);
    assert.deepEqual(a['nanogate.rate_limit'], facts.rate);
    // timing of context(): start 1, upstream from 1.02, end 1.6
    assert.deepEqual([a.duration_ms, a['nanogate.gateway_duration_ms'], a['nanogate.upstream_duration_ms']], [0.6, 0.02, 0.58]);
    const b = JSON.parse(l) as Record<string, unknown>;
    assert.deepEqual(
      [b.reqId, b.method, b.path, b.status, b.client, b.consumer, b.plan, b.upstream, b.bytesIn, b.rateLimit],
      [facts.requestId, facts.method, facts.path, facts.status, facts.client, facts.consumer, facts.plan ?? undefined, facts.node, facts.bytesIn, facts.rate],
    );
  }
});

/** The time field is the ISO 8601 text of the current millisecond, across second, minute and year boundaries. */
test('isoTime gives the ISO 8601 text of Date.now(), rebuilt when the millisecond or the second changes', (t) => {
  t.after(() => mock.timers.reset());
  const instants = [
    Date.UTC(2026, 11, 31, 23, 59, 59, 998), Date.UTC(2026, 11, 31, 23, 59, 59, 999), Date.UTC(2027, 0, 1, 0, 0, 0, 0),
    Date.UTC(2027, 0, 1, 0, 0, 0, 0), Date.UTC(2027, 0, 1, 0, 0, 0, 7), Date.UTC(2027, 0, 1, 0, 0, 1, 70), Date.UTC(2027, 0, 1, 0, 0, 0, 7),
    0, Date.UTC(9999, 11, 31, 23, 59, 59, 999), Date.UTC(10000, 0, 1, 0, 0, 0, 5),
  ];
  mock.timers.enable({ apis: ['Date'], now: instants[0] });
  for (const at of instants) {
    mock.timers.setTime(at);
    assert.equal(Date.now(), at);
    assert.equal(isoTime(), `,"time":"${new Date(at).toISOString()}"`);
  }
});

/**
 * A line's time comes from its request's end (performance.now()) plus an offset to the wall clock taken again once a
 * second: it reads the wall clock, and a step of the wall clock (NTP, an operator) shows within a second.
 */
test('isoTimeAt maps a performance.now() instant to wall-clock text, and follows a clock step within a second', (t) => {
  const real = Date.parse(isoTimeAt(performance.now()).slice(9, -1));
  assert.ok(Math.abs(real - Date.now()) < 50, 'the text is the current wall-clock time');
  t.after(() => mock.timers.reset());
  // the wall clock stands still (mocked) while performance.now() runs on: the offset taken at a sync is
  // wall - performance.now() then, so every text is compared within a millisecond of what that offset gives
  const wall = Date.UTC(2026, 5, 1, 12, 0, 0, 0);
  mock.timers.enable({ apis: ['Date'], now: wall });
  const ms = (stamp: string) => Date.parse(stamp.slice(9, -1));
  const near = (stamp: string, expected: number, what: string) => assert.ok(Math.abs(ms(stamp) - expected) <= 1, `${what}: ${stamp} vs ${new Date(expected).toISOString()}`);
  const mono = 1e9; // far beyond any instant used so far: the offset is taken again
  const offset = wall - performance.now();
  near(isoTimeAt(mono), mono + offset, 'at the sync');
  near(isoTimeAt(mono + 250.7), mono + 250.7 + offset, 'a later instant');
  mock.timers.setTime(wall + 3_600_000); // the wall clock steps an hour ahead
  near(isoTimeAt(mono + 900), mono + 900 + offset, 'within the second, the offset held');
  const stepped = wall + 3_600_000 - performance.now();
  near(isoTimeAt(mono + 1000), mono + 1000 + stepped, 'after it, the new wall clock');
});

/**
 * The method-to-consumer fields are kept for the last line's inputs across routes: two routes with other PII
 * patterns, taking turns with the same request, each log the path as their own patterns mask it.
 */
test('routes with other PII patterns, taking turns, each mask the path their own way', () => {
  const masking = { redact: new Redactor('redact', [], [], ['\\d{4}-\\d{4}']), headers: [], phases: false, phasesOverMs: 0, last: lineCache(), headerKeys: otelHeaderKeys([]) };
  const plain = { redact: new Redactor('redact', [], [], []), headers: [], phases: false, phasesOverMs: 0, last: lineCache(), headerKeys: otelHeaderKeys([]) };
  const facts: Facts = { ...first, path: '/cards/1234-5678' };
  const route = otelRoutePart('cards', null);
  for (let i = 0; i < 3; i++) {
    const masked = JSON.parse(buildOtelLine(context(facts), 200, route, masking)) as Record<string, unknown>;
    const kept = JSON.parse(buildOtelLine(context(facts), 200, route, plain)) as Record<string, unknown>;
    assert.notEqual(masked['url.path'], facts.path);
    assert.doesNotMatch(String(masked['url.path']), /1234-5678/);
    assert.equal(kept['url.path'], facts.path);
  }
});

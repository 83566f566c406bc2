/**
 * The access-log line of one request: building its JSON text (line.ts, with phases, a consumer, a rate-limit slot)
 * and that plus handing it to a file destination's batch (encoded into the batch buffer; the batch's write goes to
 * /dev/null when it fills). The integrated figure, with the thread hops and the write, is the access-log row of
 * `nanogate bench policies`.
 */
import { defineSuite, consume, type MicroCase } from '../../src/bench/micro-api.js';
import { buildLine, lineCache, routePart, type LineOptions } from '../../src/policies/access-log/line.js';
import { buildOtelLine, otelHeaderKeys, otelRoutePart } from '../../src/policies/access-log/line-otel.js';
import { accessLogSink } from '../../src/observe/access-log-sink.js';
import { Redactor } from '../../src/observe/redact.js';
import type { PolicyContext } from '../../src/pipeline/policy.js';

function context(): PolicyContext {
  const t0 = performance.now();
  return {
    requestId: '92169f4f0-2g8k',
    method: 'GET',
    path: '/orders/12345',
    query: '',
    hostHeader: 'api.example.com',
    clientIp: '127.0.0.1',
    routeName: 'orders',
    consumerId: 'bench-client',
    consumerIndex: 0,
    consumerPlan: 'standard',
    scopes: null,
    roles: null,
    slots: [{ limited: false, limit: 1000000, remaining: 999999 }],
    status: 200,
    errorCode: null,
    bytesIn: 0,
    bytesOut: 100,
    upstreamNode: '127.0.0.1:19500',
    upstreamError: null,
    aborted: false,
    timing: { start: t0, routed: t0 + 0.003, upstreamStart: t0 + 0.009, connected: t0 + 0.03, upstreamHeaders: t0 + 0.96, end: t0 + 0.963, hooks: [t0 + 0.005, t0 + 0.006, t0 + 0.007], hookNames: ['auth', 'authorize', 'rateLimit'] },
    header: () => undefined,
  } as unknown as PolicyContext;
}

export default defineSuite({
  name: 'access-log',
  description: 'one access-log line: built as JSON text (otel and legacy format), and built + batched for a file destination',
  cases(): MicroCase[] {
    const ctx = context();
    const opts: LineOptions = { redact: new Redactor('redact', ['token'], ['authorization'], []), headers: [], phases: true, phasesOverMs: 0, last: lineCache() };
    const route = routePart('orders');
    const sink = accessLogSink({ type: 'file', path: '/dev/null', flushMs: 60000 } as never);
    const reps = 32;
    const otel = { ...opts, headerKeys: otelHeaderKeys([]) };
    const otelRoute = otelRoutePart('orders', '/orders/:id');
    return [
      {
        name: 'build otel line (the default format)',
        ops: reps,
        fn: () => {
          let n = 0;
          for (let i = 0; i < reps; i++) n += buildOtelLine(ctx, 200, otelRoute, otel).length;
          consume(n);
        },
      },
      {
        name: 'build legacy line (phases, consumer, rate limit)',
        ops: reps,
        fn: () => {
          let n = 0;
          for (let i = 0; i < reps; i++) n += buildLine(ctx, 200, route, opts).length;
          consume(n);
        },
      },
      {
        name: 'build + batch to a file',
        ops: reps,
        fn: () => {
          for (let i = 0; i < reps; i++) sink.write(buildLine(ctx, 200, route, opts));
        },
      },
    ];
  },
});

import type { PolicyContext, RequestTiming } from '../../pipeline/policy.js';
import { forEachPhase, msText } from '../../observe/phases.js';
import { isoTime } from '../../observe/log-format.js';
import type { Redactor } from '../../observe/redact.js';

/**
 * One access-log line as JSON text, written straight into a string: the field order and the encoding are those the
 * line had when pino serialised an object (`{"level":…,"time":…,"route":…,"reqId":…}`), without the object, the
 * child-logger bindings or a serialiser walk per line. Strings go through JSON.stringify (V8's fast path for
 * one-byte strings); numbers and booleans are written as they are.
 */
export interface LineOptions {
  readonly redact: Redactor;
  /** lower-case request headers to include */
  readonly headers: readonly string[];
  readonly phases: boolean;
}

/**
 * A string as JSON text. Printable ASCII without `"` or `\` (nearly every value here) needs no escaping and is
 * quoted as is, at about half the cost of a JSON.stringify call; anything else goes to JSON.stringify.
 */
export function jsonString(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 34 || c === 92 || c > 0x7e) return JSON.stringify(s);
  }
  return '"' + s + '"';
}

const q = jsonString;
/** booleans and numbers of the rate-limit slot, as JSON */
const json = JSON.stringify;

/** `,"route":"<name>"`, the part of every line of a route that never changes */
export function routePart(routeName: string): string {
  return ',"route":' + q(routeName);
}

// phase names and times of one line: module scratch (one thread, no re-entry), so the line allocates no array
const phaseNames: string[] = [];
const phaseMs: number[] = [];
let phaseCount = 0;
function addPhase(name: string, ms: number): void {
  for (let i = 0; i < phaseCount; i++) {
    if (phaseNames[i] === name) {
      phaseMs[i] += ms;
      return;
    }
  }
  phaseNames[phaseCount] = name;
  phaseMs[phaseCount++] = ms;
}

/** The request's phases as a JSON object's text, `{"route":0.003,…}` (a policy timed twice is summed). */
export function phasesJson(t: RequestTiming, end: number): string {
  phaseCount = 0;
  forEachPhase(t, end, addPhase);
  let s = '{';
  for (let i = 0; i < phaseCount; i++) s += (i > 0 ? ',' : '') + q(phaseNames[i]) + ':' + msText(phaseMs[i]);
  return s + '}';
}

/** Key prefixes of the fields both formats write after their fixed part (see tail). */
export interface TailKeys {
  readonly query: string;
  readonly plan: string;
  readonly version: string;
  readonly error: string;
  readonly upstreamError: string;
  readonly phases: string;
  readonly rateLimit: string;
  readonly cache: string;
  readonly graphql: string;
  readonly traceId: string;
  /** a WebSocket connection's summary (src/websocket/): messages each way, close code and who closed */
  readonly websocket: string;
  /** '' when the format has no span id */
  readonly spanId: string;
}

const LEGACY_KEYS: TailKeys = {
  query: ',"query":',
  plan: ',"plan":',
  version: ',"version":',
  error: ',"error":',
  upstreamError: ',"upstreamError":',
  phases: ',"phases":',
  rateLimit: ',"rateLimit":',
  cache: ',"cache":',
  graphql: ',"graphql":',
  traceId: ',"traceId":',
  websocket: ',"websocket":',
  spanId: '',
};

/** Query, plan, error, the upstream's cause, phases and what other policies left in their slots, in either format. */
export function tail(ctx: PolicyContext, end: number, o: LineOptions, k: TailKeys): string {
  let s = '';
  const query = o.redact.query(ctx.query);
  if (query !== '') s += k.query + q(query);
  if (ctx.consumerPlan !== null) s += k.plan + q(ctx.consumerPlan);
  if (ctx.trafficVersion !== null) s += k.version + q(ctx.trafficVersion);
  if (ctx.errorCode !== null) s += k.error + q(ctx.errorCode);
  // The cause the client's problem body leaves out (src/errors/problem.ts), beside the node it concerns.
  if (ctx.upstreamError !== null) s += k.upstreamError + q(ctx.upstreamError);
  if (o.phases) s += k.phases + phasesJson(ctx.timing, end);
  // Outcomes other policies leave in their slots, when present: rate limit {limited, limit, remaining},
  // cache {cacheStatus}, trace {traceId, spanId}, WebSocket {messagesIn, messagesOut, closeCode, closedBy},
  // graphql {graphqlOperation…}.
  const slots = ctx.slots;
  for (let i = 0; i < slots.length; i++) {
    const v = slots[i] as Record<string, unknown> | undefined;
    if (v === undefined || v === null || typeof v !== 'object') continue;
    if ('limited' in v && 'remaining' in v) s += k.rateLimit + '{"limited":' + json(v.limited) + ',"limit":' + json(v.limit) + ',"remaining":' + json(v.remaining) + '}';
    else if (typeof v.cacheStatus === 'string') s += k.cache + q(v.cacheStatus);
    // the graphql policy's OperationLog: {operation, type, depth, cost, fields}
    else if (typeof v.graphqlOperation === 'string') s += k.graphql + (v as unknown as { json(): string }).json();
    else if (typeof v.traceId === 'string') s += k.traceId + q(v.traceId) + (k.spanId !== '' && typeof v.spanId === 'string' ? k.spanId + q(v.spanId) : '');
    else if (typeof v.closedBy === 'string' && 'messagesIn' in v) s += k.websocket + '{"messagesIn":' + json(v.messagesIn) + ',"messagesOut":' + json(v.messagesOut) + ',"closeCode":' + json(v.closeCode) + ',"closedBy":' + q(v.closedBy as string) + '}';
  }
  return s;
}

export function buildLine(ctx: PolicyContext, status: number, route: string, o: LineOptions): string {
  const t = ctx.timing;
  const end = t.end > 0 ? t.end : performance.now();
  const total = end - t.start;
  const upstream = t.upstreamStart > 0 ? end - t.upstreamStart : 0;
  const consumer = ctx.consumerId;
  const node = ctx.upstreamNode;
  const redact = o.redact;
  let s =
    (status >= 500 ? '{"level":"error"' : '{"level":"info"') +
    isoTime() +
    route +
    ',"reqId":' + q(ctx.requestId) +
    ',"method":' + q(ctx.method) +
    ',"path":' + q(redact.pii(ctx.path)) +
    ',"status":' + status +
    ',"consumer":' + (consumer === null ? 'null' : q(consumer)) +
    ',"bytesIn":' + ctx.bytesIn +
    ',"bytesOut":' + ctx.bytesOut +
    ',"latency":{"total":' + msText(total) + ',"gateway":' + msText(total - upstream) + ',"upstream":' + msText(upstream) +
    '},"upstream":' + (node === null ? 'null' : q(node)) +
    ',"client":' + q(ctx.clientIp);
  s += tail(ctx, end, o, LEGACY_KEYS);
  const names = o.headers;
  if (names.length > 0) {
    s += ',"headers":{';
    let first = true;
    for (let i = 0; i < names.length; i++) {
      const v = ctx.header(names[i]);
      if (v === undefined) continue;
      s += (first ? '' : ',') + q(names[i]) + ':' + q(redact.header(names[i], v));
      first = false;
    }
    s += '}';
  }
  return s + '}\n';
}

import { performance } from 'node:perf_hooks';
import type { PolicyContext, RequestTiming } from '../../pipeline/policy.js';
import { msText, SUB_MS } from '../../observe/phases.js';
import { isoTimeAt } from '../../observe/log-format.js';
import type { Redactor } from '../../observe/redact.js';
import { LastResult } from '../../shared/last-result.js';
import { flat } from '../../shared/flat-string.js';

/**
 * One access-log line as JSON text, written straight into a string: the field order and the encoding are those the
 * line had when pino serialised an object (`{"level":…,"time":…,"route":…,"reqId":…}`), without the object, the
 * child-logger bindings or a serialiser walk per line. Strings go through jsonString; numbers and booleans are
 * written as they are. Every line is ASCII (jsonString escapes the rest as \uXXXX, which any JSON reader decodes):
 * the sink then encodes a batch as latin1, one copy, where UTF-8 would walk the batch twice more (its length, then its
 * bytes) after flattening it.
 */
export interface LineOptions {
  readonly redact: Redactor;
  /** lower-case request headers to include */
  readonly headers: readonly string[];
  /** the line may have the phases: `phases` true or slow */
  readonly phases: boolean;
  /**
   * 0: every line has them; otherwise (`phases: slow`) a line that took this many ms or more, or that answers 5xx
   * or a gateway error. The per-phase text is about a third of what the phases cost a request (1.5 µs in the standard
   * set, docs/performance.md), and on a fast 2xx line it tells nothing the metrics' phase histograms do not.
   */
  readonly phasesOverMs: number;
  /** the quoted values of the last line, per field (lineCache()) */
  readonly last: LineCache;
}

/**
 * Per route's hook: jsonString of the value each field had on the last line. Most fields repeat from one line to the
 * next (method, host, client address, user agent, consumer, plan, node): comparing with the last value costs less
 * than the scan and the two concatenations of quoting it again, each of them one more node for the sink to walk when
 * it copies the line.
 */
type Quoted = LastResult<string, string>;
export interface LineCache {
  readonly method: Quoted;
  readonly path: Quoted;
  readonly host: Quoted;
  readonly client: Quoted;
  readonly agent: Quoted;
  readonly consumer: Quoted;
  readonly plan: Quoted;
  readonly node: Quoted;
}

export function lineCache(): LineCache {
  // flattened once when it changes: every line that repeats it then copies one string (shared/flat-string.ts)
  const quoted = (): Quoted => new LastResult<string, string>((s) => flat(jsonString(s)), '');
  return { method: quoted(), path: quoted(), host: quoted(), client: quoted(), agent: quoted(), consumer: quoted(), plan: quoted(), node: quoted() };
}

/**
 * A string as ASCII JSON text. Printable ASCII without `"` or `\` (nearly every value here) needs no escaping and
 * is quoted as is, at about half the cost of a JSON.stringify call; anything else goes to JSON.stringify, and what
 * that leaves above U+007E is escaped as \uXXXX (a character outside the BMP as its two surrogates, as JSON writes it).
 */
export function jsonString(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 34 || c === 92 || c > 0x7e) return asciiJson(JSON.stringify(s));
  }
  return '"' + s + '"';
}

const NOT_ASCII = /[\u007f-\uffff]/g;
const escapeUnit = (c: string): string => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0');
/** JSON text with every code unit above U+007E written as \uXXXX: the same value, in ASCII. */
export function asciiJson(json: string): string {
  return json.replace(NOT_ASCII, escapeUnit);
}

const q = jsonString;

/**
 * A boolean or number of a policy's slot as JSON (what JSON.stringify gives, NaN and infinities as null) without a
 * call into JSON.stringify, which costs ~0.15 µs each from a line that has a few.
 */
function json(v: unknown): string {
  if (typeof v === 'number') return Number.isFinite(v) ? '' + v : 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  return v === undefined ? 'null' : (JSON.stringify(v) ?? 'null');
}

/** `,"route":"<name>"`, the part of every line of a route that never changes */
export function routePart(routeName: string): string {
  return flat(',"route":' + q(routeName));
}

/**
 * How a route's phases become the text of one line, worked out once per list of hook names (a route's list is one
 * array, shared by its requests): the quoted key of every phase and, for each phase, the slot it adds to (a policy
 * timed twice, e.g. rateLimit at two levels, is summed under one key).
 */
interface PhasePlan {
  /** `{"route":`, `,"auth":`… per slot, in the order the phases first come */
  readonly keys: readonly string[];
  /** slot of hook i */
  readonly hookSlot: Int32Array;
  readonly connect: number;
  readonly upstream: number;
  readonly transfer: number;
  /** every phase has a slot of its own: route 0, hook i slot i + 1, then connect, upstream, transfer (no summing) */
  readonly distinct: boolean;
  /** per slot, `<key><ms>` (see MsField) */
  readonly fields: readonly MsField[];
}

function phasePlan(hookNames: readonly string[] | null): PhasePlan {
  const names: string[] = ['route'];
  const slot = (name: string): number => {
    const i = names.indexOf(name);
    return i >= 0 ? i : names.push(name) - 1;
  };
  const hooks = hookNames ?? [];
  const hookSlot = Int32Array.from(hooks, slot);
  const connect = slot('connect');
  const upstream = slot('upstream');
  const transfer = slot('transfer');
  const distinct = names.length === hooks.length + 4;
  const keys = names.map((n, i) => flat((i === 0 ? '{' : ',') + q(n) + ':'));
  return { keys, hookSlot, connect, upstream, transfer, distinct, fields: keys.map((k) => new MsField(k)) };
}

/**
 * A key and a duration in ms as text (`,"duration_ms":0.123`). Most durations of a line take less than a
 * millisecond, and then the pair is one string of a table, made once per key and µs count: a line's phases are
 * seven pieces, not fourteen, each walked again when the line is copied out (shared/flat-string.ts). Counted by
 * native-bench/instructions.sh, the phases cost 5,100 instructions a request of the standard set before.
 */
export class MsField {
  readonly #key: string;
  // sized up front: grown from empty at random indexes, its lookups read past the end, and the optimizing compiler
  // left them as generic keyed loads (seen in --trace-turbo graphs)
  readonly #subMs: (string | undefined)[] = new Array<string | undefined>(1000).fill(undefined);

  constructor(key: string) {
    this.#key = flat(key);
  }

  of(ms: number): string {
    const us = ms > 0 ? Math.round(ms * 1000) : 0;
    if (us >= 1000) return this.#key + msText(ms);
    return (this.#subMs[us] ??= flat(this.#key + SUB_MS[us]));
  }
}

function piece(plan: PhasePlan, k: number, ms: number): string {
  return plan.fields[k].of(ms);
}

const plans = new WeakMap<readonly string[], PhasePlan>();
const NO_HOOKS_PLAN = phasePlan(null);
let lastNames: readonly string[] | null = null;
let lastPlan = NO_HOOKS_PLAN;
// per-line scratch (one thread, no re-entry): the time and whether the line has it, per slot
let slotMs = new Float64Array(8);
let slotSet = new Uint8Array(8);

/**
 * The request's phases as a JSON object's text, `{"route":0.003,…}`: the same phases as forEachPhase
 * (observe/phases.ts), in the order they first come.
 */
export function phasesJson(t: RequestTiming, end: number): string {
  if (t.start === 0) return '{}';
  const names = t.hookNames;
  let plan = NO_HOOKS_PLAN;
  if (names !== null) {
    if (names === lastNames) plan = lastPlan;
    else {
      plan = plans.get(names) ?? phasePlan(names);
      plans.set(names, plan);
      lastNames = names;
      lastPlan = plan;
    }
  }
  if (plan.distinct) return distinctPhasesJson(plan, t, end);
  const n = plan.keys.length;
  if (slotMs.length < n) {
    slotMs = new Float64Array(n);
    slotSet = new Uint8Array(n);
  }
  const ms = slotMs, set = slotSet;
  for (let i = 0; i < n; i++) set[i] = 0; // a loop: fill() is a call into the runtime
  ms[0] = t.routed - t.start;
  set[0] = 1;
  const hooks = t.hooks;
  if (hooks !== null) {
    const hookSlot = plan.hookSlot;
    let prev = t.routed;
    for (let i = 0; i < hooks.length && hooks[i] > 0; i++) {
      add(hookSlot[i], hooks[i] - prev);
      prev = hooks[i];
    }
  }
  if (t.upstreamStart > 0 && t.connected > 0) {
    add(plan.connect, t.connected - t.upstreamStart);
    if (t.upstreamHeaders > 0) {
      add(plan.upstream, t.upstreamHeaders - t.connected);
      if (end > 0) add(plan.transfer, end - t.upstreamHeaders);
    }
  }
  // slot 0 (route) is always there and its key opens the object
  const fields = plan.fields;
  let s = fields[0].of(ms[0]);
  for (let i = 1; i < n; i++) if (set[i] === 1) s += fields[i].of(ms[i]);
  return s + '}';
}

/** phasesJson when every phase has its own slot: each written as it comes, no sums to keep */
function distinctPhasesJson(plan: PhasePlan, t: RequestTiming, end: number): string {
  let s = piece(plan, 0, t.routed - t.start);
  const hooks = t.hooks;
  if (hooks !== null) {
    let prev = t.routed;
    for (let i = 0; i < hooks.length && hooks[i] > 0; i++) {
      s += piece(plan, i + 1, hooks[i] - prev);
      prev = hooks[i];
    }
  }
  if (t.upstreamStart > 0 && t.connected > 0) {
    s += piece(plan, plan.connect, t.connected - t.upstreamStart);
    if (t.upstreamHeaders > 0) {
      s += piece(plan, plan.upstream, t.upstreamHeaders - t.connected);
      if (end > 0) s += piece(plan, plan.transfer, end - t.upstreamHeaders);
    }
  }
  return s + '}';
}

function add(k: number, v: number): void {
  slotMs[k] = (slotSet[k] === 1 ? slotMs[k] : 0) + v;
  slotSet[k] = 1;
}

// `<key>{"limited":false,"limit":1000,"remaining":`, the part of the rate-limit field that changes least, kept for the
// last key, outcome and limit seen
let rlKey = '';
let rlLimited: unknown = undefined;
let rlLimit: unknown = undefined;
let rlPart = '';

function rateLimitPart(key: string, limited: unknown, limit: unknown): string {
  if (key !== rlKey || limited !== rlLimited || limit !== rlLimit) {
    rlKey = key;
    rlLimited = limited;
    rlLimit = limit;
    rlPart = flat(key + '{"limited":' + json(limited) + ',"limit":' + json(limit) + ',"remaining":');
  }
  return rlPart;
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
  if (ctx.consumerPlan !== null) s += k.plan + o.last.plan.of(ctx.consumerPlan);
  if (ctx.trafficVersion !== null) s += k.version + q(ctx.trafficVersion);
  if (ctx.errorCode !== null) s += k.error + q(ctx.errorCode);
  // The cause the client's problem body leaves out (src/errors/problem.ts), beside the node it concerns.
  if (ctx.upstreamError !== null) s += k.upstreamError + q(ctx.upstreamError);
  if (o.phases && (o.phasesOverMs === 0 || end - ctx.timing.start >= o.phasesOverMs || ctx.errorCode !== null || ctx.status >= 500)) {
    s += k.phases + phasesJson(ctx.timing, end);
  }
  // Outcomes other policies leave in their slots, when present: rate limit {limited, limit, remaining},
  // cache {cacheStatus}, trace {traceId, spanId}, WebSocket {messagesIn, messagesOut, closeCode, closedBy},
  // graphql {graphqlOperation…}.
  const slots = ctx.slots;
  for (let i = 0; i < slots.length; i++) {
    const v = slots[i] as Record<string, unknown> | undefined;
    if (v === undefined || v === null || typeof v !== 'object') continue;
    if ('limited' in v && 'remaining' in v) s += rateLimitPart(k.rateLimit, v.limited, v.limit) + json(v.remaining) + '}';
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
  const last = o.last;
  let s =
    (status >= 500 ? '{"level":"error"' : '{"level":"info"') +
    isoTimeAt(end) +
    route +
    ',"reqId":' + q(ctx.requestId) +
    ',"method":' + last.method.of(ctx.method) +
    ',"path":' + last.path.of(redact.pii(ctx.path)) +
    ',"status":' + status +
    ',"consumer":' + (consumer === null ? 'null' : last.consumer.of(consumer)) +
    ',"bytesIn":' + ctx.bytesIn +
    ',"bytesOut":' + ctx.bytesOut +
    ',"latency":{"total":' + msText(total) + ',"gateway":' + msText(total - upstream) + ',"upstream":' + msText(upstream) +
    '},"upstream":' + (node === null ? 'null' : last.node.of(node)) +
    ',"client":' + last.client.of(ctx.clientIp);
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

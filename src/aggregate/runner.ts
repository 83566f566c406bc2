import { ERRORS, type ErrorCode } from '../errors/codes.js';
import type { ProblemMembers } from '../errors/problem.js';
import type { UpstreamRuntime } from '../worker/runtime.js';
import { AggregateCall, type CallListener, type CallResult } from './call.js';
import type { PlanAggregate, PlanAggregateCall } from './compile.js';
import { headerSafe, pathSafe, render, type TemplateSource } from './template.js';

/** A worker's form of an aggregate route: the plan with its upstreams resolved. */
export interface AggregateRuntime {
  readonly plan: PlanAggregate;
  readonly upstreams: readonly UpstreamRuntime[];
}

export function aggregateRuntime(plan: PlanAggregate, upstreams: readonly UpstreamRuntime[]): AggregateRuntime {
  return { plan, upstreams: plan.calls.map((c) => upstreams[c.upstream]) };
}

/** What a run needs of the request it answers (the worker's Exchange). */
export interface AggregateHost extends TemplateSource {
  readonly aborted: boolean;
  /** answers the client through the response and log phases */
  respondNow(status: number, headers: readonly string[], body: string): void;
  failNow(code: ErrorCode, detail: string, members: ProblemMembers): void;
  /** the upstream causes, for the access log only */
  noteUpstreamError(detail: string): void;
  /** runs fn inside the client response's cork */
  batch(fn: () => void): void;
  /** the consistent-hash key of the request for an upstream that hashes (0 for the others) */
  hashKeyFor(upstream: UpstreamRuntime): number;
}

const COMPLETE = ['content-type', 'application/json', 'x-nanogate-completed', 'true'] as const;
const INCOMPLETE = ['content-type', 'application/json', 'x-nanogate-completed', 'false'] as const;

/** One request of an aggregate route: every call sent at once, the answers merged when the last one is in. */
export class AggregateRun implements CallListener {
  readonly #calls: AggregateCall[];
  readonly #results: (CallResult | null)[];
  #left: number;
  #over = false;

  constructor(
    private readonly rt: AggregateRuntime,
    private readonly host: AggregateHost,
    params: readonly string[],
  ) {
    const calls = rt.plan.calls;
    this.#results = new Array(calls.length).fill(null);
    this.#left = calls.length;
    this.#calls = calls.map((c, i) => {
      const upstream = rt.upstreams[i];
      const [line, rest] = requestHead(c, rt.plan.requestIdHeader, host, params);
      return new AggregateCall(i, upstream, line, rest, c.method, c.timeoutMs, c.maxBodyBytes, c.okStatuses, this, host.hashKeyFor(upstream));
    });
  }

  start(): void {
    for (const c of this.#calls) {
      if (this.#over) return;
      c.start();
    }
  }

  /** The client went away. */
  cancel(): void {
    if (this.#over) return;
    this.#over = true;
    for (const c of this.#calls) c.cancel();
  }

  batch(fn: () => void): void {
    this.host.batch(fn);
  }

  callDone(index: number, result: CallResult): void {
    if (this.#over) return;
    this.#results[index] = result;
    if (--this.#left > 0) return;
    this.#over = true;
    if (this.host.aborted) return;
    this.host.batch(() => this.#answer());
  }

  #answer(): void {
    const plan = this.rt.plan;
    const results = this.#results as CallResult[];
    const failed: number[] = [];
    let requiredFailed = false;
    for (let i = 0; i < results.length; i++) {
      if (results[i].code === null) continue;
      failed.push(i);
      if (plan.calls[i].required) requiredFailed = true;
    }
    if (failed.length > 0) this.host.noteUpstreamError(failed.map((i) => `${plan.calls[i].name}: ${results[i].detail}`).join('; '));
    if (failed.length === 0 || (plan.partial && !requiredFailed && failed.length < results.length)) {
      const body: Record<string, unknown> = Object.create(null);
      for (let i = 0; i < results.length; i++) {
        if (results[i].code !== null) continue;
        const c = plan.calls[i];
        place(body, c.into, c.pick === null ? results[i].value : dig(results[i].value, c.pick));
      }
      if (failed.length > 0) body[plan.errorsKey] = failed.map((i) => errorEntry(plan.calls[i], results[i]));
      this.host.respondNow(failed.length === 0 ? 200 : plan.partialStatus, failed.length === 0 ? COMPLETE : INCOMPLETE, JSON.stringify(body));
      return;
    }
    const parts = failed.map((i) => errorEntry(plan.calls[i], results[i]));
    const why = requiredFailed ? 'a required part failed' : failed.length === results.length ? 'every part failed' : 'a part failed';
    this.host.failNow('NG_ERR_AGGREGATE_FAILED', `${why}: ${parts.map((p) => `${p.part} (${p.code})`).join(', ')}`, { parts });
  }
}

/** The part of an error entry a client may see: the part, the code, statuses; never the node or the cause. */
function errorEntry(c: PlanAggregateCall, r: CallResult): { part: string; code: string; status: number; upstreamStatus?: number } {
  const code = r.code!;
  const entry: { part: string; code: string; status: number; upstreamStatus?: number } = { part: c.name, code, status: ERRORS[code].status };
  if (code === 'NG_ERR_AGGREGATE_PART_STATUS') entry.upstreamStatus = r.status;
  return entry;
}

/** The request line (without CRLF handling of the Host, which the node adds) and the rest of the head of a call. */
function requestHead(c: PlanAggregateCall, requestIdHeader: string, host: AggregateHost, params: readonly string[]): [string, string] {
  let target = render(c.path, host, params, pathSafe);
  let sep = target.includes('?') ? '&' : '?';
  for (const [name, parts] of c.query) {
    const v = render(parts, host, params, String);
    if (v === '') continue;
    target += sep + encodeURIComponent(name) + '=' + encodeURIComponent(v);
    sep = '&';
  }
  let rest = '';
  for (const [name, parts] of c.headers) {
    const v = headerSafe(render(parts, host, params, String));
    if (v !== '') rest += name + ': ' + v + '\r\n';
  }
  for (const name of c.forward) {
    const v = host.header(name);
    if (v !== undefined) rest += name + ': ' + headerSafe(v) + '\r\n';
  }
  rest += 'accept: application/json\r\n';
  rest += 'x-forwarded-for: ' + host.clientIp + '\r\n';
  rest += requestIdHeader + ': ' + host.requestId + '\r\n';
  if (c.method === 'DELETE' || c.method === 'OPTIONS') rest += 'content-length: 0\r\n';
  return [c.method + ' ' + target + ' HTTP/1.1\r\n', rest + '\r\n'];
}

/** value at a dot path of a JSON value, or null */
function dig(v: unknown, path: readonly string[]): unknown {
  let cur = v;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object') return null;
    cur = Array.isArray(cur) ? (/^\d+$/.test(key) ? cur[Number(key)] : undefined) : (cur as Record<string, unknown>)[key];
    if (cur === undefined) return null;
  }
  return cur;
}

function place(body: Record<string, unknown>, into: readonly string[], value: unknown): void {
  if (into.length === 0) {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) for (const [k, v] of Object.entries(value)) body[k] = v;
    return;
  }
  let cur = body;
  for (let i = 0; i < into.length - 1; i++) {
    const next = cur[into[i]];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) cur = cur[into[i]] = Object.create(null) as Record<string, unknown>;
    else cur = next as Record<string, unknown>;
  }
  cur[into[into.length - 1]] = value;
}

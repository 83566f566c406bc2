import { performance } from 'node:perf_hooks';
import type { ErrorCode } from '../errors/codes.js';
import { CONTINUE, type PolicyContext, type RequestTiming } from '../pipeline/policy.js';

export { NO_ROUTE } from '../observe/metrics-layout.js';

const NO_SLOTS: unknown[] = [];

/**
 * The log-phase view of a request the handler refused without an Exchange (bad framing, a `..` path, 414, 431,
 * no route, a disabled route…): what the access log needs, nothing more. It exists only on the refusal path and
 * only when a log hook will read it, so a request that is proxied never allocates one. The request-phase methods
 * are inert: log hooks only read.
 */
export class Refusal implements PolicyContext {
  readonly requestId: string;
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly hostHeader: string;
  readonly clientIp: string;
  readonly routeName: string;
  readonly status: number;
  readonly errorCode: ErrorCode;
  readonly timing: RequestTiming;
  readonly bytesIn = 0;
  readonly bytesOut = 0;
  readonly upstreamNode = null;
  readonly trafficVersion = null;
  readonly upstreamError = null;
  readonly aborted = false;
  readonly responseLength = -1;
  readonly responseDate = undefined;
  consumerId = null;
  consumerIndex = -1;
  consumerPlan = null;
  scopes = null;
  roles = null;
  requestCost = -1;
  readonly bodyTransform = false;
  readonly slots = NO_SLOTS;
  readonly #names: readonly string[];
  readonly #values: readonly string[];

  constructor(
    facts: { requestId: string; method: string; path: string; query: string; hostHeader: string; clientIp: string; routeName: string },
    code: ErrorCode,
    status: number,
    startedAt: number,
    headerNames: readonly string[],
    headerValues: readonly string[],
  ) {
    this.requestId = facts.requestId;
    this.method = facts.method;
    this.path = facts.path;
    this.query = facts.query;
    this.hostHeader = facts.hostHeader;
    this.clientIp = facts.clientIp;
    this.routeName = facts.routeName;
    this.status = status;
    this.errorCode = code;
    const now = performance.now();
    // all of its time went to reading and checking the request: the "route" phase, ending at the refusal
    this.timing = { start: startedAt, routed: now, upstreamStart: 0, connected: 0, upstreamHeaders: 0, end: now, hooks: null, hookNames: null };
    this.#names = headerNames;
    this.#values = headerValues;
  }

  /** a refusal's timestamps are taken anyway */
  startTiming(): void {}

  header(name: string): string | undefined {
    const names = this.#names;
    for (let i = 0; i < names.length; i++) if (names[i] === name) return this.#values[i];
    return undefined;
  }

  headerValues(name: string): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.#names.length; i++) if (this.#names[i] === name) out.push(this.#values[i]);
    return out;
  }

  queryParam(name: string): string | null {
    for (const [k, v] of new URLSearchParams(this.query)) if (k === name) return v;
    return null;
  }

  responseHeader(): string | undefined {
    return undefined;
  }
  refresh(): boolean {
    return false;
  }
  responseHeaders(): readonly string[] {
    return [];
  }
  responseHeaderValues(): string[] {
    return [];
  }
  setUpstreamHeader(): void {}
  removeUpstreamHeader(): void {}
  removeUpstreamQueryParam(): void {}
  addUpstreamQueryParam(): void {}
  addResponseHeader(): void {}
  addResponseFields(): void {}
  removeResponseHeader(): void {}
  respondProblem(): void {}
  respond(): void {}
  resume(_result: typeof CONTINUE): void {}
}

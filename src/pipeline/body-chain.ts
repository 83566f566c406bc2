import type { ErrorCode } from '../errors/codes.js';
import type { BodySink, PolicyContext, PolicyHooks, ResponseBodyFilter } from './policy.js';

/**
 * The response body filters one response runs through (see ResponseBodyFilter in policy.ts), between the upstream
 * (or a prepared body) and the client:
 *
 *   upstream chunk -> write() -> filter 0 -> Link(1) -> filter 1 -> … -> filter n-1 -> this (the last sink)
 *   upstream end  -> complete()                                                       -> owner.filteredChunk/End()
 *
 * A chain exists only for a response whose route has responseBody hooks and where at least one of them accepted it:
 * a declined response allocates nothing, a route without such hooks does not even look (RouteRuntime.responseBody
 * is null). Output pushed inside a call into a filter is held and written once when the outermost call returns (one
 * write per cork: uWS 20.30 can break its chunk framing when one cork holds a small write followed by a large one
 * under backpressure, see h1-pool.ts); output pushed from an asynchronous callback (a zlib 'data' event) is written
 * at once, in a cork of its own (owner.batch).
 */
export interface ChainOwner {
  /**
   * the next bytes of the filtered body for the client; runs corked; false: they wait for the client to drain.
   * `last`: they are all of it (the end follows at once)
   */
  filteredChunk(chunk: Buffer, last?: boolean): boolean;
  /** the filtered body is complete; runs corked */
  filteredEnd(): void;
  /** a filter gave up: the response is cut */
  filterFailed(reason: string): void;
  /** a holdsHead filter refused the body: a problem+json in place of the response while its head is held */
  filterRefused(code: ErrorCode, detail: string): void;
  /** every filter that held its input takes more again: the upstream may go on (once the client drains too) */
  filterReady(): void;
  /** runs fn corked (uWS cork), for output that arrives outside any call */
  batch(fn: () => void): void;
}

/** The sink of filter i-1: feeds filter i. */
class Link implements BodySink {
  readonly #chain: BodyChain;
  readonly #index: number;
  constructor(chain: BodyChain, index: number) {
    this.#chain = chain;
    this.#index = index;
  }
  push(chunk: Buffer): boolean {
    return this.#chain.feed(this.#index, chunk);
  }
  end(): void {
    this.#chain.endAt(this.#index);
  }
  resume(): void {
    this.#chain.resume();
  }
  fail(reason: string): void {
    this.#chain.fail(reason);
  }
  last(chunk: Buffer): void {
    this.#chain.feed(this.#index, chunk);
    this.#chain.endAt(this.#index);
  }
  refuse(code: ErrorCode, detail: string): void {
    this.#chain.refuse(code, detail);
  }
}

export class BodyChain implements BodySink {
  /** some filter changes the bytes: the response goes out chunked, without Content-Length */
  readonly changesLength: boolean;
  /** some filter reads the whole body first (ResponseBodyFilter.holdsHead): the head waits for the first output */
  readonly holdsHead: boolean;
  readonly #owner: ChainOwner;
  readonly #filters: readonly ResponseBodyFilter[];
  /** sinks[i]: where filter i pushes to (a Link, or this chain for the last one) */
  readonly #sinks: readonly BodySink[];
  /** depth of calls into filters in progress; > 0 means terminal output is held (#held) */
  #depth = 0;
  #held: Buffer[] | null = null;
  /** the terminal end came inside a call: sent after the held output */
  #endHeld = false;
  /** filters that returned false from onChunk and have not resumed */
  #waits = 0;
  /** the body's end was passed to the first filter */
  #ended = false;
  #closed = false;
  /** asynchronous output waiting for its cork (a field, not a closure per chunk) */
  #pending: Buffer | null = null;
  #pendingOk = true;
  readonly #writePending = (): void => {
    const chunk = this.#pending!;
    this.#pending = null;
    this.#pendingOk = this.#owner.filteredChunk(chunk);
  };
  readonly #endNow = (): void => this.#owner.filteredEnd();
  readonly #lastNow = (): void => {
    const chunk = this.#pending!;
    this.#pending = null;
    this.#owner.filteredChunk(chunk, true);
    this.#owner.filteredEnd();
  };

  constructor(owner: ChainOwner, filters: readonly ResponseBodyFilter[]) {
    this.#owner = owner;
    this.#filters = filters;
    const sinks: BodySink[] = [];
    for (let i = 1; i < filters.length; i++) sinks.push(new Link(this, i));
    sinks.push(this);
    this.#sinks = sinks;
    let changes = false;
    let holds = false;
    for (const f of filters) {
      if (f.changesLength) changes = true;
      if (f.holdsHead === true) holds = true;
    }
    this.changesLength = changes;
    this.holdsHead = holds;
  }

  /** true when no filter holds its input */
  get ready(): boolean {
    return this.#waits === 0;
  }

  /** A chunk of the body (valid during the call). Returns false when a filter asked to hold the upstream. */
  write(chunk: Buffer): boolean {
    this.feed(0, chunk);
    return this.#waits === 0;
  }

  /** The body is complete. Safe to call more than once (the owner may finish before the upstream's end arrives). */
  complete(): void {
    if (this.#ended || this.#closed) return;
    this.#ended = true;
    this.endAt(0);
  }

  /** Every filter's onClose, once; later sink calls do nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#held = null;
    for (const f of this.#filters) {
      try {
        f.onClose();
      } catch {
        /* a filter's cleanup must not stop the others' */
      }
    }
  }

  feed(i: number, chunk: Buffer): boolean {
    if (this.#closed) return true;
    this.#depth++;
    let ok = true;
    try {
      ok = this.#filters[i].onChunk(chunk, this.#sinks[i]);
    } catch (err) {
      this.#depth--;
      this.fail(`${(err as Error).message}`);
      return true;
    }
    this.#depth--;
    if (!ok) this.#waits++;
    if (this.#depth === 0) this.#flush();
    return ok;
  }

  endAt(i: number): void {
    if (this.#closed) return;
    this.#depth++;
    try {
      this.#filters[i].onEnd(this.#sinks[i]);
    } catch (err) {
      this.#depth--;
      this.fail(`${(err as Error).message}`);
      return;
    }
    this.#depth--;
    if (this.#depth === 0) this.#flush();
  }

  // ------------------------------------------------------------------ BodySink of the last filter

  push(chunk: Buffer): boolean {
    if (this.#closed) return true;
    if (this.#depth > 0) {
      (this.#held ??= []).push(chunk);
      return true;
    }
    this.#pending = chunk;
    this.#owner.batch(this.#writePending);
    return this.#pendingOk;
  }

  end(): void {
    if (this.#closed) return;
    if (this.#depth > 0) this.#endHeld = true;
    else this.#owner.batch(this.#endNow);
  }

  resume(): void {
    if (this.#closed || this.#waits === 0) return;
    if (--this.#waits === 0) this.#owner.filterReady();
  }

  fail(reason: string): void {
    if (this.#closed) return;
    this.#owner.filterFailed(reason);
  }

  last(chunk: Buffer): void {
    if (this.#closed) return;
    if (this.#depth > 0) {
      (this.#held ??= []).push(chunk);
      this.#endHeld = true;
      return;
    }
    this.#pending = chunk;
    this.#owner.batch(this.#lastNow);
  }

  refuse(code: ErrorCode, detail: string): void {
    if (this.#closed) return;
    this.#owner.filterRefused(code, detail);
  }

  #flush(): void {
    const held = this.#held;
    if (held !== null && held.length > 0 && !this.#closed) {
      const all = held.length === 1 ? held[0] : Buffer.concat(held);
      held.length = 0;
      this.#owner.filteredChunk(all, this.#endHeld);
    }
    if (this.#endHeld && !this.#closed) {
      this.#endHeld = false;
      this.#owner.filteredEnd();
    }
  }
}

/**
 * Opens the response's filters (hooks: the route's responseBody hooks, in order); null when none accepts it. The
 * array is made only once one has accepted.
 */
export function openBodyChain(hooks: readonly PolicyHooks[], ctx: PolicyContext, owner: ChainOwner): BodyChain | null {
  let filters: ResponseBodyFilter[] | null = null;
  for (let i = 0; i < hooks.length; i++) {
    const f = hooks[i].responseBody!(ctx);
    if (f !== null) (filters ??= []).push(f);
  }
  return filters === null ? null : new BodyChain(owner, filters);
}

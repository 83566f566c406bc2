import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { Pool } from 'undici';

const gzipAsync = promisify(gzip);

export interface DeliveryOptions {
  readonly url: string;
  readonly batchSize: number;
  readonly flushMs: number;
  readonly queueLimit: number;
  readonly timeoutMs: number;
  readonly headers?: Record<string, string>;
  /** gzip each request body (content-encoding: gzip); the compression runs on libuv's thread pool */
  readonly gzip?: boolean;
}

const MAX_BACKOFF_MS = 30_000;

/**
 * Background delivery of items (log lines, spans) to an HTTP endpoint, in batches, from the thread that produced
 * them. The queue is bounded: when the endpoint is slow or away, new items are dropped and counted instead of
 * growing memory or holding anything up. At most one request is in flight; after a failure the next attempt waits
 * (flushMs doubling up to 30 s) and items keep being dropped at the queue limit meanwhile. Nothing here is awaited by
 * a request: `push` is an array push, and sending happens on a timer or a setImmediate.
 */
export class BatchPoster<T> {
  readonly #opts: DeliveryOptions;
  readonly #encode: (items: T[]) => string | Uint8Array;
  readonly #contentType: string;
  readonly #onSent: (n: number) => void;
  readonly #onDropped: (n: number) => void;
  readonly #pool: Pool;
  readonly #path: string;
  #queue: T[] = [];
  #sending = false;
  #scheduled = false;
  #failures = 0;
  #retryAt = 0;
  #timer: NodeJS.Timeout;
  #closed = false;

  constructor(opts: DeliveryOptions, contentType: string, encode: (items: T[]) => string | Uint8Array, onSent: (n: number) => void, onDropped: (n: number) => void) {
    this.#opts = opts;
    this.#encode = encode;
    this.#contentType = contentType;
    this.#onSent = onSent;
    this.#onDropped = onDropped;
    const url = new URL(opts.url);
    this.#path = url.pathname + url.search;
    this.#pool = new Pool(url.origin, {
      connections: 2,
      connectTimeout: opts.timeoutMs,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      keepAliveTimeout: 4000,
    });
    this.#timer = setInterval(() => void this.flush(), opts.flushMs);
    this.#timer.unref();
  }

  get queued(): number {
    return this.#queue.length;
  }

  /** Queues one item; false (and counted as dropped) when the queue is full. */
  push(item: T): boolean {
    if (this.#closed || this.#queue.length >= this.#opts.queueLimit) {
      this.#onDropped(1);
      return false;
    }
    this.#queue.push(item);
    if (this.#queue.length >= this.#opts.batchSize && !this.#sending && !this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        void this.flush();
      });
    }
    return true;
  }

  /** Sends one batch if nothing is in flight and no back-off is running. Resolves when that request is over. */
  async flush(): Promise<void> {
    if (this.#sending || this.#queue.length === 0) return;
    if (this.#failures > 0 && Date.now() < this.#retryAt) return;
    this.#sending = true;
    const batch = this.#queue.length <= this.#opts.batchSize ? this.#queue : this.#queue.slice(0, this.#opts.batchSize);
    this.#queue = batch === this.#queue ? [] : this.#queue.slice(batch.length);
    let ok = false;
    try {
      const encoded = this.#encode(batch);
      const res = await this.#pool.request({
        path: this.#path,
        method: 'POST',
        headers: this.#opts.gzip
          ? { ...this.#opts.headers, 'content-type': this.#contentType, 'content-encoding': 'gzip' }
          : { ...this.#opts.headers, 'content-type': this.#contentType },
        body: this.#opts.gzip ? await gzipAsync(encoded) : encoded,
      });
      await res.body.dump();
      ok = res.statusCode >= 200 && res.statusCode < 300;
    } catch {
      ok = false;
    }
    if (ok) {
      this.#failures = 0;
      this.#onSent(batch.length);
    } else {
      this.#failures++;
      this.#retryAt = Date.now() + Math.min(MAX_BACKOFF_MS, this.#opts.flushMs * 2 ** Math.min(this.#failures - 1, 10));
      this.#onDropped(batch.length);
    }
    this.#sending = false;
    if (ok && this.#queue.length >= this.#opts.batchSize) void this.flush();
  }

  /** Tries to send what is queued (one attempt per batch, bounded by the timeout), then closes. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#failures = 0;
    while (this.#queue.length > 0 && !this.#closed) {
      const before = this.#queue.length;
      await this.flush();
      if (this.#failures > 0 || this.#queue.length >= before) break;
    }
    this.#closed = true;
    if (this.#queue.length > 0) this.#onDropped(this.#queue.length);
    this.#queue = [];
    await this.#pool.close().catch(() => {});
  }
}

import type { Plan } from '../config/plan.js';

/** Messages between the control plane and a worker thread. */
export type ToWorker =
  | { type: 'plan-prepare'; plan: Plan }
  | { type: 'plan-commit'; version: number }
  | { type: 'plan-abort'; version: number }
  | { type: 'upstream-load'; id: number }
  /** a new consumer table (src/identity/table.ts), shared, not copied; replaces plan.services.consumers */
  | { type: 'consumers'; table: SharedArrayBuffer; generation: number }
  | { type: 'drain'; timeoutMs: number }
  /** log rotation (SIGUSR2): file access-log destinations reopen their path */
  | { type: 'reopen-logs' }
  /** cache purge in every zone of the worker (src/policies/cache/purge-local.ts); answered with cache-purged */
  | { type: 'cache-purge'; id: number; kind: 'key' | 'prefix' | 'tag'; value: string }
  | { type: 'crash' };

export type FromWorker =
  | { type: 'listening'; index: number; port: number; /** the node:http2 listener's port (worker 0, when listen.http2 is set) */ http2Port?: number }
  | { type: 'listen-failed'; index: number; reason: string }
  | { type: 'plan-prepared'; index: number; version: number }
  | { type: 'plan-failed'; index: number; version: number; message: string }
  | { type: 'plan-applied'; index: number; version: number }
  | { type: 'upstream-load'; index: number; id: number; version: number; upstreams: { name: string; inFlight: number[]; resent: number[]; lastErrors: (NodeError | null)[] }[] }
  | { type: 'consumers-applied'; index: number; generation: number }
  | { type: 'exited'; index: number; inFlight: number }
  /** the worker gave a consumer plan a slot in its metrics block (src/observe/metrics-layout.ts) */
  | { type: 'metrics-plan'; index: number; slot: number; name: string }
  | { type: 'internal-error'; index: number; message: string; stack: string }
  /** the worker's entries removed by a cache-purge */
  | { type: 'cache-purged'; index: number; id: number; removed: number }
  /** a log line of a worker's component (the cache L2's Redis state): the control plane writes it with its logger */
  | { type: 'log'; index: number; level: 'info' | 'warn' | 'error'; msg: string; fields: Record<string, unknown> }
  /** a worker asks for a purge in every worker of the node (an unsafe request invalidated a URI) */
  | { type: 'cache-invalidate'; index: number; kind: 'key' | 'prefix' | 'tag'; value: string };

/** The last failure of a request on one upstream node, as a worker saw it (GET /upstreams shows the newest). */
export interface NodeError {
  /** epoch ms */
  at: number;
  code: string;
  /** node address and cause, e.g. "connect to 10.0.0.5:8080 failed (ECONNREFUSED)" */
  detail: string;
}

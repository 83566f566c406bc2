/** What the orchestrator asks the load-generator process to do, and what it gets back (plain JSON over IPC). */

export type LoadKind = 'fixed' | 'max';

export interface LoadJob {
  kind: LoadKind;
  host: string;
  port: number;
  method: string;
  /** request targets, used in turn */
  paths: string[];
  headers: Record<string, string>;
  /** request body size (bytes of 'b'); 0 = no body */
  bodyBytes: number;
  connections: number;
  durationMs: number;
  /** fixed only: requests per second over all connections */
  rate: number;
  /** a request unanswered this long counts as a timeout */
  timeoutMs: number;
  /** when set, a 2xx response with another body size counts as a mismatch */
  expectBodyBytes: number | null;
  /** a label for progress lines */
  label: string;
  /** WebSocket messages to an echo endpoint instead of HTTP requests (wsload.ts); null or absent for HTTP */
  websocket?: { messageBytes: number; window: number } | null;
}

export interface LoadErrors {
  /** connections refused or failed before a request */
  connect: number;
  /** connection closed or reset with a request in flight */
  reset: number;
  /** no response within timeoutMs */
  timeout: number;
  /** response not parseable as HTTP/1.1 */
  parse: number;
  /** fixed rate: scheduled requests still unanswered (or unsent) when the phase ended */
  unfinished: number;
  /** 2xx response whose body size differs from expectBodyBytes */
  mismatch: number;
}

export interface LoadResult {
  kind: LoadKind;
  /** completed responses (any status) */
  responses: number;
  /** requests written to a socket */
  sent: number;
  /** fixed only: requests the schedule called for */
  scheduled: number;
  /** wall time of the measured window, ms */
  elapsedMs: number;
  /** responses per second over the window */
  rps: number;
  statuses: Record<string, number>;
  non2xx: number;
  errors: LoadErrors;
  /** encoded HdrHistogram (µs): fixed = from the scheduled send time; max = from the write */
  latency: string;
  /** fixed only: from the actual write (what a closed-loop tool reports) */
  service: string | null;
  /** fixed only: actual write minus scheduled time (generator lateness plus waiting for a free connection) */
  sendLag: string | null;
  /** bytes received */
  bytesIn: number;
  /** connections reopened because the server closed them after a response (Connection: close); -1 when unknown */
  reconnects: number;
  /** generator process CPU over the window, percent of one core */
  generatorCpuPct: number;
}

export type ToLoadgen = { type: 'run'; id: number; job: LoadJob } | { type: 'exit' };
export type FromLoadgen =
  | { type: 'ready' }
  | { type: 'progress'; id: number; responses: number; elapsedMs: number }
  | { type: 'result'; id: number; result: LoadResult }
  | { type: 'failed'; id: number; message: string };

export function emptyErrors(): LoadErrors {
  return { connect: 0, reset: 0, timeout: 0, parse: 0, unfinished: 0, mismatch: 0 };
}

export function totalErrors(e: LoadErrors): number {
  return e.connect + e.reset + e.timeout + e.parse + e.unfinished + e.mismatch;
}

/** The raw request bytes for each path: one buffer each, built once. */
export function buildRequests(job: LoadJob): Buffer[] {
  const body = job.bodyBytes > 0 ? Buffer.alloc(job.bodyBytes, 0x62) : null;
  return job.paths.map((path) => {
    let head = `${job.method} ${path} HTTP/1.1\r\nhost: ${job.host}:${job.port}\r\nuser-agent: nanogate-bench\r\n`;
    for (const [k, v] of Object.entries(job.headers)) head += `${k}: ${v}\r\n`;
    if (body) head += `content-length: ${body.length}\r\n`;
    head += '\r\n';
    return body ? Buffer.concat([Buffer.from(head, 'latin1'), body]) : Buffer.from(head, 'latin1');
  });
}

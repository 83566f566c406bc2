import type { LatencySummary } from './hist.js';
import type { LoadErrors, LoadKind } from './load-types.js';

/** The shape of a bench run, as written by --json and read by every report. Latencies are µs. */

export interface TargetStats extends LatencySummary {
  /** fixed: achieved responses/s (median of rounds); max: throughput (median of rounds) */
  rps: number;
  rpsMin: number;
  rpsMax: number;
  responses: number;
  /** every failure summed over rounds (see errorBreakdown) */
  errors: number;
  errorBreakdown: LoadErrors;
  non2xx: number;
  statuses: Record<string, number>;
  /** fixed only: connections the target closed after a response (Connection: close) and the client reopened */
  reconnects: number | null;
  /** fixed only: write -> response end (closed-loop view) */
  service: LatencySummary | null;
  /** fixed only: scheduled -> write (generator lateness + waiting for a free connection) */
  sendLag: LatencySummary | null;
  /** CPU of the gateway process per response (gateway target only, when /proc is readable) */
  gatewayCpuUsPerReq: number | null;
  /** CPU of the bench upstream per response (when the bench started it) */
  upstreamCpuUsPerReq: number | null;
  /** load generator CPU, percent of one core (median of rounds); near 100 means the generator was the limit */
  generatorCpuPct: number;
  /** merged histogram of all rounds, HdrHistogram compressed base64 */
  histogram: string;
}

export interface RoundStats {
  round: number;
  target: 'direct' | 'gateway';
  rps: number;
  p50: number;
  p95: number;
  p99: number;
  errors: number;
  non2xx: number;
}

export interface ModeResult {
  kind: LoadKind;
  /** requests/s offered (fixed) */
  rate: number | null;
  connections: number;
  durationSeconds: number;
  direct: TargetStats;
  gateway: TargetStats;
  /**
   * gateway minus direct, per percentile, µs; gatewayCpuUsPerReq: only with a baseline gateway (scenario
   * gateway.baseline), whose CPU per request is then direct.gatewayCpuUsPerReq
   */
  added: { p50: number; p90: number; p95: number; p99: number; p999: number; max: number; gatewayCpuUsPerReq: number | null };
  /** gateway throughput / direct throughput */
  ratio: number;
  rounds: RoundStats[];
}

export interface ScenarioResult {
  name: string;
  description: string;
  file: string;
  gatewayConfig: string;
  gatewayWorkers: number;
  /** the baseline gateway's config (gateway.baseline): it, not the upstream, is the "direct" target */
  baselineConfig: string | null;
  /** a WebSocket message scenario: responses are echoes, rps messages/s, latencies per message */
  websocket: { messageBytes: number; window: number } | null;
  routes: number | null;
  request: { method: string; paths: string[]; directPaths: string[]; bodyBytes: number; headers: Record<string, string> };
  expect: { status: number; bodyBytes?: number };
  durationSeconds: number;
  warmupSeconds: number;
  rounds: number;
  fixed: ModeResult | null;
  max: ModeResult | null;
  /** requests counted by each gateway worker over the whole scenario (admin /status) */
  workerRequests: number[] | null;
  warnings: string[];
}

export interface BudgetOutcome {
  scenario: string;
  metric: string;
  limit: { max?: number; min?: number };
  unit: string;
  note: string;
  value: number | null;
  status: 'ok' | 'broken' | 'skipped';
  /** how far past the limit (positive = broken), in the metric's unit */
  by: number | null;
  message: string;
}

export interface BenchRun {
  tool: 'nanogate bench';
  version: 1;
  startedAt: string;
  finishedAt: string;
  short: boolean;
  machine: { cpu: string; cores: number; memoryGiB: number; kernel: string; node: string; hostname: string };
  nanogate: { version: string; commit: string | null };
  upstream: { url: string; own: boolean };
  scenarios: ScenarioResult[];
  budgets: { file: string | null; outcomes: BudgetOutcome[] };
  notes: string[];
}

import { readFileSync, readdirSync } from 'node:fs';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import type { PromWriter } from './prometheus.js';
import { LagSamples } from '../shared/loop-lag.js';

/**
 * The lag sampler's period. prom-client samples every 10 ms (perf_hooks.monitorEventLoopDelay): on an idle gateway
 * that was 100 wake-ups a second of the control-plane thread, 3 ms of CPU a second on this VM, on the core that the
 * workers share when pinned. Every 100 ms is 10 wake-ups; what is reported is how late each firing was, the lag
 * alone (prom-client's values include its 10 ms interval).
 */
const LOOP_SAMPLE_MS = 100;
/** samples kept between two scrapes: 100 s of them (a slower scraper sees the latest) */
const LOOP_SAMPLES = 1000;
/** prom-client's buckets, so that dashboards made for it read these as they are */
const GC_BUCKETS = [0.001, 0.01, 0.1, 1, 2, 5];
/** PerformanceEntry detail.kind (perf_hooks.constants.NODE_PERFORMANCE_GC_*) to prom-client's `kind` label */
const GC_KINDS: Readonly<Record<number, string>> = { 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weakcb' };
const LAG_PROBE_MS = 1000;

interface GcSeries {
  buckets: number[];
  sum: number;
  count: number;
}

/**
 * The standard `process_*` and `nodejs_*` families under prom-client's names and meanings, written here rather than
 * taken from prom-client (a registry, a collector per family and promises per scrape, for two dozen numbers).
 * `process_*` is the whole process, every worker thread included (CPU, memory and descriptors are per process);
 * `nodejs_*` is the control-plane thread that serves the scrape: each worker has its own event loop and heap, in
 * `nanogate_worker_*`. Nothing here runs on a worker or per request: a one-second timer for the lag probe, a GC
 * observer on this thread, and reads of /proc on a scrape (Linux; elsewhere those families are left out, as
 * prom-client does).
 */
export class ProcessMetrics {
  readonly #loop = new LagSamples(LOOP_SAMPLE_MS, LOOP_SAMPLES);
  readonly #loopTimer: NodeJS.Timeout;
  readonly #gc = new Map<string, GcSeries>();
  readonly #observer: PerformanceObserver;
  readonly #timer: NodeJS.Timeout;
  readonly #startTime = Math.round(Date.now() / 1000 - process.uptime());
  /** delay of a setImmediate scheduled by the last probe, in seconds */
  #lag = 0;

  constructor() {
    this.#loop.start(performance.now());
    this.#loopTimer = setInterval(() => this.#loop.fired(performance.now()), LOOP_SAMPLE_MS);
    this.#loopTimer.unref();
    this.#observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) this.#gcObserved((e as { detail?: { kind?: number } }).detail?.kind ?? 0, e.duration / 1000);
    });
    this.#observer.observe({ entryTypes: ['gc'] });
    this.#timer = setInterval(() => {
      const t0 = process.hrtime.bigint();
      setImmediate(() => (this.#lag = Number(process.hrtime.bigint() - t0) / 1e9));
    }, LAG_PROBE_MS);
    this.#timer.unref();
  }

  #gcObserved(kind: number, seconds: number): void {
    const name = GC_KINDS[kind] ?? 'unknown';
    let s = this.#gc.get(name);
    if (s === undefined) this.#gc.set(name, (s = { buckets: GC_BUCKETS.map(() => 0), sum: 0, count: 0 }));
    for (let b = 0; b < GC_BUCKETS.length; b++) if (seconds <= GC_BUCKETS[b]) s.buckets[b]++;
    s.sum += seconds;
    s.count++;
  }

  render(out: PromWriter): void {
    const cpu = process.cpuUsage();
    const mem = process.memoryUsage();
    out.help('process_cpu_user_seconds_total', 'counter', 'Total user CPU time spent in seconds.');
    out.sample('process_cpu_user_seconds_total', '', cpu.user / 1e6);
    out.help('process_cpu_system_seconds_total', 'counter', 'Total system CPU time spent in seconds.');
    out.sample('process_cpu_system_seconds_total', '', cpu.system / 1e6);
    out.help('process_cpu_seconds_total', 'counter', 'Total user and system CPU time spent in seconds.');
    out.sample('process_cpu_seconds_total', '', (cpu.user + cpu.system) / 1e6);
    out.help('process_start_time_seconds', 'gauge', 'Start time of the process since unix epoch in seconds.');
    out.sample('process_start_time_seconds', '', this.#startTime);
    out.help('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.');
    out.sample('process_resident_memory_bytes', '', mem.rss);
    const status = procStatus();
    if (status !== null) {
      out.help('process_virtual_memory_bytes', 'gauge', 'Virtual memory size in bytes.');
      out.sample('process_virtual_memory_bytes', '', status.virtual);
      out.help('process_heap_bytes', 'gauge', 'Process heap size in bytes.');
      out.sample('process_heap_bytes', '', status.heap);
    }
    const fds = openFds();
    if (fds !== null) {
      out.help('process_open_fds', 'gauge', 'Number of open file descriptors.');
      out.sample('process_open_fds', '', fds);
    }
    const max = maxFds();
    if (max !== null) {
      out.help('process_max_fds', 'gauge', 'Maximum number of open file descriptors.');
      out.sample('process_max_fds', '', max);
    }

    out.help('nodejs_eventloop_lag_seconds', 'gauge', 'Lag of event loop in seconds.');
    out.sample('nodejs_eventloop_lag_seconds', '', this.#lag);
    const loop = this.#loop.take(); // as prom-client: each scrape reports the delays since the previous one
    const stats: [string, string, number][] = [
      ['min', 'The minimum recorded event loop delay.', loop.min],
      ['max', 'The maximum recorded event loop delay.', loop.max],
      ['mean', 'The mean of the recorded event loop delays.', loop.mean],
      ['stddev', 'The standard deviation of the recorded event loop delays.', loop.stddev],
      ['p50', 'The 50th percentile of the recorded event loop delays.', loop.p50],
      ['p90', 'The 90th percentile of the recorded event loop delays.', loop.p90],
      ['p99', 'The 99th percentile of the recorded event loop delays.', loop.p99],
    ];
    for (const [stat, help, us] of stats) {
      const name = `nodejs_eventloop_lag_${stat}_seconds`;
      out.help(name, 'gauge', help);
      out.sample(name, '', us / 1e6);
    }

    out.help('nodejs_heap_size_total_bytes', 'gauge', 'Process heap size from Node.js in bytes.');
    out.sample('nodejs_heap_size_total_bytes', '', mem.heapTotal);
    out.help('nodejs_heap_size_used_bytes', 'gauge', 'Process heap size used from Node.js in bytes.');
    out.sample('nodejs_heap_size_used_bytes', '', mem.heapUsed);
    out.help('nodejs_external_memory_bytes', 'gauge', 'Node.js external memory size in bytes.');
    out.sample('nodejs_external_memory_bytes', '', mem.external);
    const spaces = getHeapSpaceStatistics();
    const perSpace: [string, string, (s: (typeof spaces)[number]) => number][] = [
      ['nodejs_heap_space_size_total_bytes', 'Process heap space size total from Node.js in bytes.', (s) => s.space_size],
      ['nodejs_heap_space_size_used_bytes', 'Process heap space size used from Node.js in bytes.', (s) => s.space_used_size],
      ['nodejs_heap_space_size_available_bytes', 'Process heap space size available from Node.js in bytes.', (s) => s.space_available_size],
    ];
    for (const [name, help, value] of perSpace) {
      out.help(name, 'gauge', help);
      for (const s of spaces) out.sample(name, out.labels('space', s.space_name.replace(/_space$/, '')), value(s));
    }

    const [major, minor, patch] = process.versions.node.split('.');
    out.help('nodejs_version_info', 'info', 'Node.js version info.');
    out.sample('nodejs_version_info', out.labels('version', process.version, 'major', major, 'minor', minor, 'patch', patch), 1);

    out.help('nodejs_gc_duration_seconds', 'histogram', 'Garbage collection duration by kind, one of major, minor, incremental or weakcb.');
    for (const [kind, s] of this.#gc) {
      const labels = out.labels('kind', kind);
      for (let b = 0; b < GC_BUCKETS.length; b++) out.bucket('nodejs_gc_duration_seconds_bucket', labels, GC_BUCKETS[b], s.buckets[b]);
      out.bucket('nodejs_gc_duration_seconds_bucket', labels, Infinity, s.count);
      out.sample('nodejs_gc_duration_seconds_sum', labels, s.sum);
      out.sample('nodejs_gc_duration_seconds_count', labels, s.count);
    }
  }

  close(): void {
    clearInterval(this.#timer);
    this.#observer.disconnect();
    clearInterval(this.#loopTimer);
  }
}

/** VmSize and VmData of /proc/self/status in bytes; null where there is no /proc */
function procStatus(): { virtual: number; heap: number } | null {
  let text: string;
  try {
    text = readFileSync('/proc/self/status', 'utf8');
  } catch {
    return null;
  }
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s*(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return { virtual: kb('VmSize'), heap: kb('VmData') };
}

function openFds(): number | null {
  try {
    return readdirSync('/proc/self/fd').length - 1; // the directory being read is one of them
  } catch {
    return null;
  }
}

/** the soft limit of open files ("unlimited" is left out) */
function maxFds(): number | null {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

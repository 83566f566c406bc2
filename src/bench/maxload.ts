import autocannon from 'autocannon';
import { encodeHistogram, newHistogram } from './hist.js';
import { emptyErrors, type LoadJob, type LoadResult } from './load-types.js';

/**
 * Maximum throughput: autocannon 9, closed loop (each connection sends its next request when the previous
 * response is complete), pipelining 1.
 *
 * Latency: autocannon's own histogram records whole milliseconds (lowestDiscernibleValue 1 ms), too coarse here.
 * But the duration it passes with each 'response' event is taken with process.hrtime from the moment the request
 * was queued for writing to the end of its response, as a float in ms. We record that, in µs, into our own
 * HdrHistogram. In a closed loop this is service time: at saturation it mostly measures queueing (latency ≈
 * connections / throughput, Little's law); the fixed-rate phase is the one to read for added latency.
 */
export async function runMax(job: LoadJob, progress: (responses: number, elapsedMs: number) => void): Promise<LoadResult> {
  const hist = newHistogram();
  const body = job.bodyBytes > 0 ? Buffer.alloc(job.bodyBytes, 0x62) : undefined;
  // autocannon adds Host, Connection: keep-alive and Content-Length itself (a second Content-Length would be ours).
  const headers: Record<string, string> = { 'user-agent': 'nanogate-bench', ...job.headers };
  let responses = 0;
  let mismatches = 0;
  const cpu0 = process.cpuUsage();
  const started = process.hrtime.bigint();
  let finishedAt = started;
  const timer = setInterval(() => progress(responses, Number(process.hrtime.bigint() - started) / 1e6), 250);
  const result = await new Promise<import('autocannon').AutocannonResult>((resolve, reject) => {
    const inst = autocannon(
      {
        url: `http://${job.host}:${job.port}`,
        connections: job.connections,
        // autocannon stops on its sample tick: a 100 ms tick keeps the window within 100 ms of the duration.
        duration: job.durationMs / 1000,
        sampleInt: 100,
        pipelining: 1,
        timeout: Math.max(1, Math.ceil(job.timeoutMs / 1000)),
        method: job.method,
        headers,
        body,
        requests: job.paths.map((path) => ({ path })),
      },
      (err, res) => {
        finishedAt = process.hrtime.bigint();
        if (err) reject(err);
        else resolve(res);
      },
    );
    inst.on('response', (_client: unknown, _status: number, _bytes: number, responseTimeMs: number) => {
      responses++;
      hist.recordValue(Math.max(1, Math.round(responseTimeMs * 1000)));
    });
    inst.on('reqMismatch', () => mismatches++);
  }).finally(() => clearInterval(timer));
  const cpu = process.cpuUsage(cpu0);
  const elapsedMs = Number(finishedAt - started) / 1e6;
  const statuses: Record<string, number> = {};
  for (const [code, v] of Object.entries(result.statusCodeStats ?? {})) statuses[code] = v.count;
  const errors = emptyErrors();
  errors.timeout = result.timeouts;
  // autocannon counts connection failures and resets together in `errors` (timeouts included).
  errors.reset = Math.max(0, result.errors - result.timeouts);
  // Body sizes are checked in the fixed-rate phase (autocannon does not report them per response).
  errors.mismatch = mismatches;
  return {
    kind: 'max',
    responses,
    sent: result.totalRequests,
    scheduled: 0,
    elapsedMs,
    rps: (responses * 1000) / elapsedMs,
    statuses,
    non2xx: result.non2xx,
    errors,
    latency: encodeHistogram(hist),
    service: null,
    sendLag: null,
    bytesIn: result.totalBytes,
    generatorCpuPct: ((cpu.user + cpu.system) / 1000 / elapsedMs) * 100,
  };
}

import autocannon from 'autocannon';
import { encodeHistogram, newHistogram } from './hist.js';
import { emptyErrors, type LoadJob, type LoadResult } from './load-types.js';

/**
 * Maximum throughput: autocannon 9, closed loop (each connection sends its next request when the previous
 * response is complete), pipelining 1.
 *
 * Latency: autocannon's own histogram records whole milliseconds (lowestDiscernibleValue 1 ms), too coarse here,
 * so each client is timed here: a 'request' event (emitted just before autocannon writes the request) stamps
 * process.hrtime on the client, and the next 'response' event of that client records now - stamp, in µs, into
 * our own HdrHistogram. With pipelining 1 the latest request of a client is the one being answered.
 *
 * Why not the duration autocannon passes with 'response': it comes from a per-client FIFO of request start times
 * that is not cleared when the server closes the connection after a response (Connection: close). autocannon has
 * then already written the next request on the closing socket; that request is lost, its entry stays at the head
 * of the FIFO, and every later response of that client is matched to an older request: measured against a gateway
 * that sheds connections, P50 read 26-40 ms at 50 connections and 10,800 req/s (Little's law allows ~4.6 ms).
 *
 * In a closed loop this is service time: at saturation it mostly measures queueing (latency ≈ connections /
 * throughput, Little's law); the fixed-rate phase is the one to read for added latency.
 */
interface TimedClient {
  ngSentAt: bigint;
  on(event: 'request', listener: () => void): void;
}

/** Runs in each autocannon client's constructor, before its first request. */
function setupClient(client: TimedClient): void {
  client.ngSentAt = 0n;
  client.on('request', () => {
    client.ngSentAt = process.hrtime.bigint();
  });
}

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
        setupClient,
      },
      (err, res) => {
        finishedAt = process.hrtime.bigint();
        if (err) reject(err);
        else resolve(res);
      },
    );
    inst.on('response', (client: TimedClient) => {
      responses++;
      const started = client.ngSentAt;
      if (started > 0n) hist.recordValue(Math.max(1, Math.round(Number(process.hrtime.bigint() - started) / 1000)));
      client.ngSentAt = 0n;
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
    // autocannon reconnects silently; the requests it wrote on closing sockets show as sent - responses.
    reconnects: -1,
    generatorCpuPct: ((cpu.user + cpu.system) / 1000 / elapsedMs) * 100,
  };
}

// Evenly spaced load for profile.sh (RATE=...): the bench harness's open-loop generator (request i is sent at
// i / rate over idle connections), so that each request arrives on its own, as light production traffic does.
// wrk's paced mode (PACE_MS) lets connections fall into step and sends requests in bursts, which hides wake-ups.
//   node native-bench/openloop.mjs <root> <port> <rate> <seconds> [header]     prints "N requests in S s ..."
// and a line "JSON {...}" with the fields of report.lua's (latency from each request's scheduled send, µs), which
// run.sh reads when PACED_BY=even.
import { pathToFileURL } from 'node:url';
const [root, port, rate, secs, header] = process.argv.slice(2);
const { OpenLoop } = await import(pathToFileURL(`${root}/dist/src/bench/openloop.js`).href);
const { decodeHistogram } = await import(pathToFileURL(`${root}/dist/src/bench/hist.js`).href);
const headers = header ? Object.fromEntries([header.split(/:\s*/, 2)]) : {};
const r = await new OpenLoop({
  kind: 'fixed', host: '127.0.0.1', port: Number(port), method: 'GET', paths: ['/'], headers, bodyBytes: 0,
  connections: 50, durationMs: Number(secs) * 1000, rate: Number(rate), timeoutMs: 5000, expectBodyBytes: null, label: 'profile',
}).run(() => {});
const failed = Object.values(r.errors).reduce((a, b) => a + b, 0);
console.log(`${r.responses} requests in ${(r.elapsedMs / 1000).toFixed(2)}s, ${r.non2xx} not 2xx, ${failed} failed`);
const h = decodeHistogram(r.latency);
const at = (q) => h.getValueAtPercentile(q);
console.log('JSON ' + JSON.stringify({
  requests: r.responses, duration_us: Math.round(r.elapsedMs * 1000), rps: Number(r.rps.toFixed(1)),
  p50: at(50), p90: at(90), p99: at(99), p999: at(99.9), max: h.maxValue, mean: Number(h.mean.toFixed(1)),
  err_connect: 0, err_read: failed, err_write: 0, err_status: r.non2xx, err_timeout: 0,
}));

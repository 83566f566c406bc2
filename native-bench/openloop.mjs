// Evenly spaced load for profile.sh (RATE=...): the bench harness's open-loop generator (request i is sent at
// i / rate over idle connections), so that each request arrives on its own, as light production traffic does.
// wrk's paced mode (PACE_MS) lets connections fall into step and sends requests in bursts, which hides wake-ups.
//   node native-bench/openloop.mjs <root> <port> <rate> <seconds> [header]     prints "N requests in S s ..."
import { pathToFileURL } from 'node:url';
const [root, port, rate, secs, header] = process.argv.slice(2);
const { OpenLoop } = await import(pathToFileURL(`${root}/dist/src/bench/openloop.js`).href);
const headers = header ? Object.fromEntries([header.split(/:\s*/, 2)]) : {};
const r = await new OpenLoop({
  kind: 'fixed', host: '127.0.0.1', port: Number(port), method: 'GET', paths: ['/'], headers, bodyBytes: 0,
  connections: 50, durationMs: Number(secs) * 1000, rate: Number(rate), timeoutMs: 5000, expectBodyBytes: null, label: 'profile',
}).run(() => {});
const failed = Object.values(r.errors).reduce((a, b) => a + b, 0);
console.log(`${r.responses} requests in ${(r.elapsedMs / 1000).toFixed(2)}s, ${r.non2xx} not 2xx, ${failed} failed`);

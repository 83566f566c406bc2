// A fixed number of requests, for instructions.sh: the instruction count of a window is divided by the requests in
// it, so the window must hold a known number of them (wrk runs for a time, not a count).
//   node native-bench/fixed-count.mjs <root> <port> <requests> <connections> [header]
// prints {"requests":N,"ok":N,"failed":N} (ok: 2xx answers)
import { createRequire } from 'node:module';
const [root, port, amount, connections, header] = process.argv.slice(2);
const autocannon = createRequire(`${root}/package.json`)('autocannon');
const headers = {};
if (header) {
  const colon = header.indexOf(':');
  headers[header.slice(0, colon).trim()] = header.slice(colon + 1).trim();
}
const r = await autocannon({ url: `http://127.0.0.1:${port}/`, connections: Number(connections), amount: Number(amount), headers, timeout: 30 });
const ok = r['2xx'];
console.log(JSON.stringify({ requests: r.requests.total, ok, failed: r.errors + r.timeouts + r.non2xx }));

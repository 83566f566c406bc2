// Reads a profile of native-bench/profile.sh (results/profile-NAME/: stacks.txt from `perf script -F ip,sym`, wrk.txt)
// and prints µs per request: by area, then the costliest frames inclusive of what they call. With a second name it
// prints both side by side and the difference (B − A). A sample is 1/4,999 s of CPU: µs/request = samples × 200 / requests.
//
//   node native-bench/profile-report.js native-bench/results standard [pass]
import fs from 'node:fs';
import path from 'node:path';

// An area is the first whose pattern any frame of a sample matches, in this order: policies before the request path
// that calls them, the kernel entries last.
const AREAS = [
  ['access log: build the line', /policies\/access-log\//],
  // the sink's write is inlined into the log phase: its copy and the file write show under runLogHooks
  ['access log: copy into the batch, file write (and other log hooks)', /observe\/access-log-sink|sonic-boom|runLogHooks/],
  ['auth (JWT, API key…)', /policies\/auth\//],
  ['authorize', /policies\/authorize\//],
  ['rate limit', /policies\/rate-limit\//],
  ['tracing', /policies\/tracing\/|observe\/trace-context/],
  ['other policies', /dist\/src\/policies\//],
  ['metrics', /observe\/worker-metrics|observe\/metrics-layout/],
  ['GC', /Scavenger|MarkCompact|Heap::|Sweeper|ConcurrentMarking/],
  ['kernel: send to the client (sendto)', /__x64_sys_sendto/],
  ['kernel: receive from the client (recvfrom)', /__x64_sys_recvfrom/],
  ['kernel: write to the upstream', /ksys_write|__x64_sys_writev/],
  ['kernel: read from the upstream', /ksys_read/],
  ['kernel: epoll', /epoll/],
  ['kernel: other system calls', /entry_SYSCALL/],
  ['request path (handler, exchange, upstream client)', /dist\/src\/(worker|upstream|pipeline|router)\//],
];

function load(dir, name) {
  const base = path.join(dir, `profile-${name}`);
  const wrk = fs.readFileSync(path.join(base, 'wrk.txt'), 'utf8');
  const requests = Number(/(\d+) requests in/.exec(wrk)?.[1] ?? NaN);
  const samples = fs.readFileSync(path.join(base, 'stacks.txt'), 'utf8').split('\n\n');
  const areas = new Map();
  const frames = new Map();
  let total = 0;
  for (const block of samples) {
    const stack = block.split('\n').map((l) => l.trim().replace(/^[0-9a-f]+ /, '')).filter(Boolean);
    if (stack.length === 0) continue;
    total++;
    const area = AREAS.find(([, re]) => stack.some((f) => re.test(f)));
    const key = area ? area[0] : 'other (Node, V8, libuv, uWS)';
    areas.set(key, (areas.get(key) ?? 0) + 1);
    // inclusive: each JS function or kernel entry once per sample, without its line:column (inlining moves them)
    const seen = new Set();
    for (const f of stack) {
      let k = null;
      if (f.startsWith('JS:')) k = f.replace(/^JS:[*^~]?/, '').replace(/file:\/\/\/\S*?\/dist\//, '').replace(/:\d+:\d+$/, '');
      else if (/^\[?k?\]? ?__x64_sys_|^ksys_/.test(f)) k = f.replace(/^\[k\] /, '');
      if (k !== null && !seen.has(k)) {
        seen.add(k);
        frames.set(k, (frames.get(k) ?? 0) + 1);
      }
    }
  }
  const us = (n) => (n * 200) / requests;
  return { name, requests, total: us(total), areas: new Map([...areas].map(([k, v]) => [k, us(v)])), frames: new Map([...frames].map(([k, v]) => [k, us(v)])) };
}

const [dir, a, b] = process.argv.slice(2);
if (!dir || !a) {
  console.error('usage: node profile-report.js <results dir> <name> [other name]');
  process.exit(2);
}
const A = load(dir, a);
const B = b ? load(dir, b) : null;
const f = (x) => x.toFixed(2).padStart(7);
const row = (label, x, y) => console.log(B ? `${f(x)} ${f(y)} ${(y - x >= 0 ? '+' : '') + (y - x).toFixed(2).padStart(6)}  ${label}` : `${f(x)}  ${label}`);
console.log(B ? `µs/request: ${A.name} (${A.requests} requests) | ${B.name} (${B.requests}) | difference` : `µs/request, ${A.name} (${A.requests} requests)`);
row('total', A.total, B?.total ?? 0);
console.log('\nby area (each sample in the first area that matches)');
const areaKeys = [...new Set([...A.areas.keys(), ...(B?.areas.keys() ?? [])])];
areaKeys.sort((x, y) => Math.max(B?.areas.get(y) ?? 0, A.areas.get(y) ?? 0) - Math.max(B?.areas.get(x) ?? 0, A.areas.get(x) ?? 0));
for (const k of areaKeys) row(k, A.areas.get(k) ?? 0, B?.areas.get(k) ?? 0);
console.log('\ncostliest frames, inclusive');
const frameKeys = [...new Set([...A.frames.keys(), ...(B?.frames.keys() ?? [])])];
const weight = (k) => (B ? Math.abs((B.frames.get(k) ?? 0) - (A.frames.get(k) ?? 0)) + 0.25 * (B.frames.get(k) ?? 0) : A.frames.get(k) ?? 0);
frameKeys.sort((x, y) => weight(y) - weight(x));
for (const k of frameKeys.slice(0, 40)) row(k, A.frames.get(k) ?? 0, B?.frames.get(k) ?? 0);

// Chaos table for docs/resilience.md: three real upstream processes behind a two-worker gateway under steady
// closed-loop load, one fault per case (SIGKILL, hang, 500 to everything, 200 ms slower, black hole), and what clients
// saw: failed requests, time until the bad node stopped getting traffic, P99 during the fault, and whether traffic came
// back after recovery. Every case is bounded in time. Run after `npm run build`:
//   node scripts/measure-chaos.mjs [--seconds 8] [--concurrency 16]
import { parseArgs } from 'node:util';
import { connect } from 'node:net';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Agent, request } from 'undici';
import { Gateway } from '../dist/src/control/gateway.js';
import { startFaultUpstream } from '../dist/test/helpers/fault-upstream.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '8' }, concurrency: { type: 'string', default: '16' } } });
const SECONDS = Number(values.seconds);
const CONCURRENCY = Number(values.concurrency);
const FAULT_AT_MS = 2000;

/**
 * A listener that never accepts (python3: listen() without accept()), its backlog filled, so further SYNs go
 * unanswered: a black-holed node, whose connects hang until the connect timeout.
 */
async function blackHole() {
  const child = spawn('python3', ['-c', 'import socket,sys\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\nsys.stdin.read()'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise((resolve) => child.stdout.once('data', (d) => resolve(Number(String(d).trim()))));
  const fillers = [];
  for (let i = 0; i < 4; i++) fillers.push(connect(port, '127.0.0.1').on('error', () => {}));
  await new Promise((r) => setTimeout(r, 200));
  return { port, close: () => { for (const f of fillers) f.destroy(); child.kill('SIGKILL'); } };
}

async function gateway(urls, upstreamExtra = '') {
  const dir = mkdtempSync(join(tmpdir(), 'nanogate-chaos-'));
  const file = join(dir, 'gateway.yaml');
  writeFileSync(
    file,
    `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
upstreams:
  app:
    readTimeoutMs: 1000
    connectTimeoutMs: 500
    nodes: [${urls.map((u) => `{ url: "${u}" }`).join(', ')}]
${upstreamExtra}
routes:
  - { name: api, match: { prefix: /api }, upstream: app, retries: { attempts: 2, on: [connect-failure, reset] } }
`,
  );
  const g = new Gateway({ configFile: file, workers: 2, logger: pino({ level: 'silent' }) });
  await g.start();
  return g;
}

function p99(xs) {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.99))];
}

async function run(name, extra, fault, recover, badName = 'c') {
  const nodes = [await startFaultUpstream('a'), await startFaultUpstream('b'), await startFaultUpstream('c')];
  let hole = null;
  let urls = nodes.map((n) => n.url);
  if (name.includes('black')) {
    hole = await blackHole();
    urls = [nodes[0].url, nodes[1].url, `http://127.0.0.1:${hole.port}`];
  }
  const g = await gateway(urls, extra);
  const agent = new Agent({ connections: CONCURRENCY * 2 });
  const base = `http://127.0.0.1:${g.port}/api`;
  const results = [];
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  let faulted = false;
  const loop = async () => {
    while (performance.now() < end) {
      const started = performance.now();
      let status = 0;
      let node = '';
      try {
        const res = await request(base, { dispatcher: agent, headersTimeout: 5000, bodyTimeout: 5000 });
        node = await res.body.text();
        status = res.statusCode;
        if (status >= 500 && node.startsWith('{')) status = `${status} ${JSON.parse(node).code ?? ''}`.trim();
      } catch {
        status = 0;
      }
      results.push({ at: started - t0, ms: performance.now() - started, status, node: status === 200 ? node : '' });
    }
  };
  const faultTimer = setTimeout(async () => {
    await fault(nodes);
    faulted = true;
  }, FAULT_AT_MS);
  await Promise.all(Array.from({ length: CONCURRENCY }, loop));
  clearTimeout(faultTimer);
  const during = results.filter((r) => r.at >= FAULT_AT_MS);
  const failed = during.filter((r) => r.status !== 200).length;
  // the bad node's last answer (or, for a node that never answers, the last failure) after the fault
  const lastBad = during.reduce((t, r) => (r.node === badName || r.status !== 200 ? Math.max(t, r.at + r.ms) : t), FAULT_AT_MS);
  const kinds = {};
  for (const r of during) if (r.status !== 200) kinds[r.status] = (kinds[r.status] ?? 0) + 1;
  // recovery: the node comes back and takes traffic again
  let recovered = 'n/a';
  if (recover && faulted) {
    await recover(nodes);
    const since = Date.now();
    const deadline = since + 60000;
    recovered = 'no (60 s)';
    while (Date.now() < deadline) {
      let got = 0;
      for (let i = 0; i < 30; i++) {
        const res = await request(base, { dispatcher: agent });
        if ((await res.body.text()) === badName) got++;
      }
      if (got > 0) {
        recovered = `after ${((Date.now() - since) / 1000).toFixed(1)} s`;
        break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  await g.stop();
  await agent.close();
  for (const n of nodes) await n.stop();
  if (hole) hole.close();
  return {
    case: name,
    requests: during.length,
    failed: failed === 0 ? '0' : `${failed} (${Object.entries(kinds).map(([k, v]) => `${v}× ${k === '0' ? 'reset' : k}`).join(', ')})`,
    ejectedAfterMs: Math.round(lastBad - FAULT_AT_MS),
    p99DuringMs: Number(p99(during.map((r) => r.ms)).toFixed(1)),
    badNodeShare: `${((100 * during.filter((r) => r.node === badName).length) / Math.max(1, during.length)).toFixed(2)} %`,
    recovered,
  };
}

const ONLY = process.env.CHAOS_ONLY;
const cases = [
  ['(a) SIGKILL', '', (n) => n[2].kill(), (n) => n[2].restart()],
  ['(b) hang (accepts, never answers)', '    outlierDetection: { baseEjectionMs: 3000 }', (n) => n[2].setMode('hang'), (n) => n[2].setMode('ok')],
  ['(c) 500 to everything', '    outlierDetection: { consecutive5xx: 3, baseEjectionMs: 3000 }', (n) => n[2].setMode('500'), (n) => n[2].setMode('ok')],
  ['(d) 200 ms slower (peak-ewma)', '    balancer: peak-ewma', (n) => n[2].setMode('slow:200'), (n) => n[2].setMode('ok')],
  ['(e) black hole (backlog full)', '', () => {}, null],
];
const rows = [];
for (const [name, extra, fault, recover] of cases) if (!ONLY || name.includes(ONLY)) rows.push(await run(name, extra, fault, recover));
console.log(`${SECONDS} s per case, fault at ${FAULT_AT_MS / 1000} s, ${CONCURRENCY} clients, 2 workers, 3 nodes`);
console.log('| case | requests after the fault | failed | bad node last served after (ms) | P99 during fault (ms) | bad node share | traffic back after recovery |');
console.log('|---|---:|---:|---:|---:|---:|---|');
for (const r of rows) console.log(`| ${r.case} | ${r.requests} | ${r.failed} | ${r.ejectedAfterMs} | ${r.p99DuringMs} | ${r.badNodeShare} | ${r.recovered} |`);
process.exit(0);

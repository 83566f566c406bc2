/**
 * Does a Prometheus scrape slow requests? A bounded load run through the gateway (autocannon, fixed connections, 10 s),
 * once without scraping and once scraping /metrics every 100 ms, alternated for `rounds`; reports latency percentiles
 * and throughput of each. Gateway, upstream (the bench upstream, uWS) and load generator run as separate processes;
 * the scraper runs in the load generator's process (a fetch every 100 ms).
 *
 * Run: npm run build && node dist/bench/micro/observe-scrape.js [--workers 1] [--duration 10] [--connections 16] [--rounds 2]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';

const { values } = parseArgs({
  options: { workers: { type: 'string', default: '1' }, duration: { type: 'string', default: '10' }, connections: { type: 'string', default: '16' }, rounds: { type: 'string', default: '2' } },
});
const root = fileURLToPath(new URL('../../../', import.meta.url));

function firstLine(child: ChildProcess, test: (line: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (l) => {
      if (test(l)) resolve(l);
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code}`)));
  });
}

const upstream = spawn(process.execPath, [join(root, 'dist/src/bench/upstream-server.js'), '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
const upPort = JSON.parse(await firstLine(upstream, (l) => l.startsWith('{'))).port as number;

const dir = mkdtempSync(join(tmpdir(), 'nanogate-scrape-'));
const config = join(dir, 'gateway.yaml');
writeFileSync(
  config,
  `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
upstreams:
  app: { nodes: [{ url: http://127.0.0.1:${upPort} }] }
routes:
  - { name: plain, match: { prefix: /plain }, upstream: app }
  - name: timed
    match: { prefix: /timed }
    upstream: app
    policies: { serverTiming: {} }
`,
);
const gateway = spawn(process.execPath, [join(root, 'bin/nanogate.js'), 'start', '--config', config, '--workers', values.workers!], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, NANOGATE_LOG_LEVEL: 'info' },
});
const serving = JSON.parse(await firstLine(gateway, (l) => l.includes('nanogate is serving')));
const url = `http://127.0.0.1:${serving.port}`;
const adminUrl = `http://127.0.0.1:${serving.admin}`;

async function load(path: string, scrapeEveryMs: number): Promise<{ p50: number; p90: number; p99: number; p999: number; rps: number; scrapes: number; scrapeMs: number }> {
  let stop = false;
  let scrapes = 0;
  let scrapeTime = 0;
  const scraper = (async () => {
    while (!stop && scrapeEveryMs > 0) {
      const t = performance.now();
      const res = await fetch(`${adminUrl}/metrics`);
      await res.text();
      scrapeTime += performance.now() - t;
      scrapes++;
      await new Promise((r) => setTimeout(r, scrapeEveryMs));
    }
  })();
  const result = await new Promise<any>((resolve, reject) =>
    autocannon({ url: url + path, connections: Number(values.connections), duration: Number(values.duration) }, (err, res) => (err ? reject(err) : resolve(res))),
  );
  stop = true;
  await scraper;
  const l = result.latency as unknown as Record<string, number>;
  return { p50: l.p50, p90: l.p90, p99: l.p99, p999: l.p99_9, rps: Math.round(result.requests.average), scrapes, scrapeMs: scrapes ? +(scrapeTime / scrapes).toFixed(2) : 0 };
}

await load('/plain/warm', 0).catch(() => {});
const rows: Record<string, unknown>[] = [];
for (let r = 0; r < Number(values.rounds); r++) {
  rows.push({ run: `no scrape #${r + 1}`, ...(await load('/plain/x', 0)) });
  rows.push({ run: `scrape/100ms #${r + 1}`, ...(await load('/plain/x', 100)) });
}
console.log(`latency in ms (autocannon), ${values.connections} connections, ${values.duration} s, gateway workers: ${values.workers}`);
console.table(rows);
gateway.kill('SIGTERM');
upstream.kill('SIGTERM');

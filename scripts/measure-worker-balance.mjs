#!/usr/bin/env node
// How evenly SO_REUSEPORT spreads long-lived keep-alive connections over the worker threads.
// Starts a gateway (N workers, default 2) in front of a local upstream, opens C keep-alive connections
// (default 50), sends R requests (default 20000) over them, and prints the share each worker served,
// from the admin /status counters. Repeats the whole run RUNS times (default 5): each run is a fresh
// set of connections, so the spread of the shares across runs is what a user would see.
// Usage: node scripts/measure-worker-balance.mjs [workers] [connections] [requests] [runs]
import { createServer } from 'node:http';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import pino from 'pino';
import { Gateway } from '../dist/src/control/gateway.js';

const [workers = 2, conns = 50, total = 20000, runs = 5] = process.argv.slice(2).map(Number);
const up = createServer((_req, res) => res.end('ok'));
await new Promise((r) => up.listen(0, '127.0.0.1', r));
const dir = mkdtempSync(join(tmpdir(), 'ng-balance-'));
const file = join(dir, 'gw.yaml');
writeFileSync(file, `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
upstreams: { up: { nodes: [{ url: http://127.0.0.1:${up.address().port} }] } }
routes: [{ name: all, match: { prefix: / }, upstream: up }]
`);
const gw = new Gateway({ configFile: file, workers, logger: pino({ level: 'warn' }) });
await gw.start();
const status = async () => (await (await fetch(`http://127.0.0.1:${gw.admin.port}/status`)).json()).workers.map((w) => w.requests);
const rows = [];
for (let run = 0; run < runs; run++) {
  await new Promise((r) => setTimeout(r, 1100)); // counters are folded every second
  const before = await status();
  const pool = new Pool(`http://127.0.0.1:${gw.port}`, { connections: conns, pipelining: 1 });
  let sent = 0;
  await Promise.all(
    Array.from({ length: conns }, async () => {
      while (sent < total) {
        sent++;
        const { body } = await pool.request({ path: '/', method: 'GET' });
        await body.text();
      }
    }),
  );
  await pool.close();
  await new Promise((r) => setTimeout(r, 1100));
  const after = await status();
  const served = after.map((v, i) => v - before[i]);
  const sum = served.reduce((a, b) => a + b, 0);
  const shares = served.map((v) => v / sum);
  rows.push(shares);
  console.log(`run ${run + 1}: ${shares.map((s, i) => `worker ${i} ${(s * 100).toFixed(1)}%`).join(', ')}`);
}
const worst = Math.max(...rows.flat().map((s) => Math.abs(s - 1 / workers)));
console.log(`largest deviation from an even ${(100 / workers).toFixed(1)}% share: ${(worst * 100).toFixed(1)} points`);
await gw.stop();
up.close();

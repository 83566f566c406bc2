/**
 * What a hit from the cache's Redis L2 costs, against an L1 hit and going upstream, through real gateway processes:
 *
 *   1. a "warm" node (its own process) fetches N keys from the origin: they land in its L1 and in the L2
 *   2. a second node, started afterwards (its L1 empty), is asked for each key once: every answer is an L2 hit
 *      (checked: Cache-Status says detail=l2)
 *   3. the same node is asked again: every answer is an L1 hit
 *   4. the same node, a route without the cache: every request goes upstream
 *   5. the same node, the cached route with keys nobody fetched yet: L1 miss, L2 miss, upstream, store in both
 *
 *   node dist/bench/cache-l2-hit.js [keys per phase, default 1000] [body bytes, default 1024] [compressAboveBytes]
 *
 * The third argument sets cache.l2.compressAboveBytes (default: the schema's), for an A/B of compressed and plain
 * values in one run of the machine.
 *
 * l2.timeoutMs is raised to 1 s so that a loaded machine measures slow hits rather than timeouts turned misses.
 * One connection, one request at a time (latency, not throughput), each node with one worker; redis-server (from
 * the PATH or REDIS_SERVER), the origin and the client on the same machine, loopback. Bounded: about a second per
 * phase. Prints p50 / p90 / p99 per phase.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { Redis } from 'ioredis';

const BIN = fileURLToPath(new URL('../../bin/nanogate.js', import.meta.url));
const KEYS = Number(process.argv[2] ?? 1000);
const BODY = Number(process.argv[3] ?? 1024);
const COMPRESS_ABOVE = process.argv[4] === undefined ? '' : `, compressAboveBytes: ${Number(process.argv[4])}`;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function startNode(yaml: string): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const admin = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ng-l2-bench-'));
  const file = join(dir, 'gw.yaml');
  writeFileSync(file, `listen: { host: 127.0.0.1, port: ${port} }\nadmin: { host: 127.0.0.1, port: ${admin} }\n${yaml}`);
  const child = spawn(process.execPath, [BIN, 'start', '--config', file, '--workers', '1'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NANOGATE_LOG_LEVEL: 'info' } });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const on = (d: Buffer) => {
      out += d.toString();
      if (out.includes('cache purge bus: subscribed') && out.includes('nanogate is serving')) resolve();
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
    child.once('exit', (code) => reject(new Error(`gateway exited ${code}: ${out}`)));
  });
  return { port, child };
}

function quantiles(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  const us = (v: number) => `${Math.round(v * 1000)} µs`.padStart(8);
  return `p50 ${us(q(0.5))}  p90 ${us(q(0.9))}  p99 ${us(q(0.99))}`;
}

async function phase(pool: Pool, paths: string[], expect?: RegExp): Promise<number[]> {
  const times: number[] = [];
  for (const path of paths) {
    const t = performance.now();
    const res = await pool.request({ method: 'GET', path, headers: { host: 'bench.test' } });
    await res.body.arrayBuffer();
    times.push(performance.now() - t);
    if (res.statusCode !== 200) throw new Error(`${path}: ${res.statusCode}`);
    if (expect && !expect.test(String(res.headers['cache-status']))) throw new Error(`${path}: Cache-Status ${String(res.headers['cache-status'])}`);
  }
  return times;
}

async function main(): Promise<void> {
  const redisPort = await freePort();
  const redis = spawn(process.env.REDIS_SERVER ?? 'redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const body = Buffer.from(JSON.stringify({ items: Array.from({ length: BODY }, (_, i) => i % 10) })).subarray(0, BODY);
  const origin = createHttpServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=600', 'content-length': body.length });
    res.end(body);
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
  const client = new Redis(`redis://127.0.0.1:${redisPort}`, { retryStrategy: () => 20 });
  client.on('error', () => {});
  for (let i = 0; i < 100 && (await client.ping().catch(() => '')) !== 'PONG'; i++) await sleep(20);
  const yaml = `
redis: { url: "redis://127.0.0.1:${redisPort}" }
upstreams:
  origin: { nodes: [{ url: ${originUrl} }] }
routes:
  - { name: cached, match: { prefix: /c }, upstream: origin, policies: { cache: { l2: { timeoutMs: 1000${COMPRESS_ABOVE} } } } }
  - { name: direct, match: { prefix: /u }, upstream: origin }
`;
  const nodes: ChildProcess[] = [];
  try {
    const warm = await startNode(yaml);
    nodes.push(warm.child);
    const keys = Array.from({ length: KEYS }, (_, i) => `/c/item/${i}`);
    const warmPool = new Pool(`http://127.0.0.1:${warm.port}`, { connections: 1 });
    await phase(warmPool, keys, /stored/);
    await warmPool.close();
    for (let i = 0; i < 500 && (await client.dbsize()) < KEYS; i++) await sleep(10);
    const stored = await client.dbsize();
    if (stored < KEYS) throw new Error(`only ${stored} of ${KEYS} entries reached the L2 (a loaded machine: raise l2.timeoutMs)`);

    const cold = await startNode(yaml);
    nodes.push(cold.child);
    const pool = new Pool(`http://127.0.0.1:${cold.port}`, { connections: 1 });
    await phase(pool, Array.from({ length: 200 }, (_, i) => `/u/warmup/${i}`)); // connections, JIT
    const l2 = await phase(pool, keys, /detail=l2/);
    const l1 = await phase(pool, keys, /^nanogate; hit; ttl=\d+$/);
    const upstream = await phase(pool, keys.map((k) => k.replace('/c/', '/u/')));
    const miss = await phase(pool, keys.map((k) => k.replace('/item/', '/new/')), /fwd=uri-miss/);
    await pool.close();
    console.log(`${KEYS} requests per phase, ${body.length}-byte JSON body${COMPRESS_ABOVE}, 1 connection, 1 worker per node, load ${(await import('node:os')).loadavg()[0].toFixed(1)}`);
    console.log(`  L1 hit                         ${quantiles(l1)}`);
    console.log(`  L2 hit, L1 cold                ${quantiles(l2)}`);
    console.log(`  no cache, upstream             ${quantiles(upstream)}`);
    console.log(`  L1 + L2 miss, upstream, store  ${quantiles(miss)}`);
  } finally {
    for (const c of nodes) c.kill('SIGTERM');
    client.disconnect();
    origin.close();
    redis.kill('SIGTERM');
  }
}

await main();

/**
 * Where the cache's L2 client lives, measured: a Redis client in each worker thread (a lookup is one round trip
 * from the worker) against one client on the main thread that workers reach with a message (worker -> main ->
 * Redis -> main -> worker, the value's bytes transferred, not copied). Both decode the value in the worker.
 *
 *   node dist/bench/cache-l2-placement.js [gets per case, default 3000]
 *
 * Starts its own redis-server (from the PATH, or REDIS_SERVER) on a free loopback port; two workers run the same
 * sequential lookups at once (as two gateway workers would), for an entry of 1 KiB and one of 64 KiB. Prints the
 * median and p99 of a lookup as each worker saw it. Bounded: a few seconds.
 */
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { decodeEntry, encodeEntry, type StoredEntry } from '../src/policies/cache/l2-redis.js';

interface Job {
  mode: 'worker' | 'main';
  url: string;
  key: string;
  gets: number;
}

const SIZES = [1024, 65536];

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function runWorker(job: Job): Promise<number[]> {
  const times: number[] = [];
  if (job.mode === 'worker') {
    const client = new Redis(job.url, { enableAutoPipelining: true });
    await client.ping();
    for (let i = 0; i < job.gets; i++) {
      const t = performance.now();
      const v = await client.getBuffer(job.key);
      const e = await decodeEntry(v!);
      if (e === null) throw new Error('miss');
      times.push(performance.now() - t);
    }
    client.disconnect();
  } else {
    const pending = new Map<number, (b: Buffer) => void>();
    parentPort!.on('message', (m: { id: number; buf: ArrayBuffer }) => {
      pending.get(m.id)!(Buffer.from(m.buf));
      pending.delete(m.id);
    });
    for (let i = 0; i < job.gets; i++) {
      const t = performance.now();
      const v = await new Promise<Buffer>((resolve) => {
        pending.set(i, resolve);
        parentPort!.postMessage({ id: i, key: job.key });
      });
      const e = await decodeEntry(v);
      if (e === null) throw new Error('miss');
      times.push(performance.now() - t);
    }
  }
  return times;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function main(): Promise<void> {
  const gets = Number(process.argv[2] ?? 3000);
  const port = await freePort();
  const server = spawn(process.env.REDIS_SERVER ?? 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  const client = new Redis(url, { enableAutoPipelining: true, retryStrategy: () => 20 });
  client.on('error', () => {});
  for (let i = 0; i < 100; i++) {
    try {
      await client.ping();
      break;
    } catch {
      await sleep(20);
    }
  }
  try {
    for (const size of SIZES) {
      // a JSON-like body, so that it compresses as real ones do
      const text = JSON.stringify(Array.from({ length: size / 32 }, (_, i) => ({ id: i, v: (i * 2654435761) % 1e6 }))).slice(0, size);
      const entry: StoredEntry = { status: 200, headers: ['content-type', 'application/json', 'etag', '"v1"'], body: new TextEncoder().encode(text), storedAt: Date.now(), meta: { v: 1, lifetimeMs: 60000 } };
      const key = `bench:${size}`;
      const value = await encodeEntry(entry, 'deflate', 1024);
      await client.set(key, value);
      for (const mode of ['worker', 'main'] as const) {
        const file = fileURLToPath(import.meta.url);
        const workers = [0, 1].map(() => new Worker(file, { workerData: { mode, url, key, gets } satisfies Job }));
        if (mode === 'main') {
          for (const w of workers) {
            w.on('message', (m: { id?: number; key?: string; times?: number[] }) => {
              if (m.key === undefined) return;
              void client.getBuffer(m.key).then((b) => {
                const ab = b!.buffer.slice(b!.byteOffset, b!.byteOffset + b!.byteLength);
                w.postMessage({ id: m.id, buf: ab }, [ab as ArrayBuffer]);
              });
            });
          }
        }
        const results = await Promise.all(workers.map((w) => new Promise<number[]>((resolve, reject) => {
          w.on('message', (m: { times?: number[] }) => m.times && resolve(m.times));
          w.once('error', reject);
        })));
        await Promise.all(workers.map((w) => w.terminate()));
        const all = results.flat().sort((a, b) => a - b);
        console.log(`${String(size / 1024).padStart(3)} KiB (${value.length} B in Redis)  client in ${mode === 'worker' ? 'each worker ' : 'main thread '}  p50 ${(quantile(all, 0.5) * 1000).toFixed(0)} µs  p99 ${(quantile(all, 0.99) * 1000).toFixed(0)} µs  (${all.length} lookups, 2 workers at once)`);
      }
    }
  } finally {
    client.disconnect();
    server.kill('SIGTERM');
  }
}

if (isMainThread) await main();
else parentPort!.postMessage({ times: await runWorker(workerData as Job) });

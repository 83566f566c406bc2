import { Piscina } from 'piscina';
import type { PoolResult, PoolTask } from './run.js';

/**
 * The worker pool of large body transforms: one per gateway worker thread, started on the first body at or above
 * a route's `pool.thresholdBytes` (a gateway that never sees one starts no thread), one thread, which exits after a
 * minute without work. Bodies are copied both ways (structured clone): a transferred Buffer could detach the
 * memory of Node's shared small-buffer slab.
 */
let pool: Piscina | null = null;

export function runInPool(task: PoolTask): Promise<PoolResult> {
  pool ??= new Piscina({
    filename: new URL('./pool-worker.js', import.meta.url).href,
    minThreads: 0,
    maxThreads: 1,
    idleTimeout: 60_000,
  });
  return pool.run(task);
}

/** Stops the pool's thread (a worker thread that exits closes it too). */
export async function closePool(): Promise<void> {
  const p = pool;
  pool = null;
  if (p !== null) await p.destroy();
}

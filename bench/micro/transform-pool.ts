/**
 * Where the transform policy's piscina pool starts to pay (pool.thresholdBytes): for bodies of 16 KB to 1 MB, the
 * time of a transform on the event loop, against the time a transform in the pool takes to come back and the part
 * of it the event loop is busy (cloning the body in and the result out). Bounded: a fixed number of runs per size.
 *
 *   npm run build && node dist/bench/micro/transform-pool.js
 */
import { BodyProgram } from '../../src/policies/transform/program.js';
import { transformBody } from '../../src/policies/transform/run.js';
import { runInPool, closePool } from '../../src/policies/transform/pool.js';
import { body, PROGRAMS } from './transform-bodies.js';

const RUNS = 40;
const config = PROGRAMS.find(([n]) => n === 'all')![1];
const program = new BodyProgram(config, 'response');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Runs `fn` while a setImmediate ticker measures the event loop's longest stall (ms). */
async function longestStall(fn: () => Promise<unknown>): Promise<number> {
  let last = performance.now();
  let worst = 0;
  let on = true;
  const tick = () => {
    const now = performance.now();
    worst = Math.max(worst, now - last);
    last = now;
    if (on) setImmediate(tick);
  };
  setImmediate(tick);
  await fn();
  on = false;
  await new Promise((r) => setImmediate(r));
  return worst;
}

const rows: string[] = ['| body | on the loop: time = loop stall (ms) | in the pool: time until the result is back (ms) | in the pool: longest loop stall (ms) | idle loop over that time: longest stall (ms) |', '|---:|---:|---:|---:|---:|'];
// warm the pool's thread and both code paths
await runInPool({ key: 'k', program: config, side: 'response', kind: 'json', body: body(16 * 1024), scopes: null, version: null });
for (const kb of [16, 64, 128, 256, 512, 1024]) {
  const input = body(kb * 1024);
  const inline: number[] = [];
  const pooled: number[] = [];
  const stalls: number[] = [];
  const idle: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    transformBody(program, 'json', input, null, null);
    inline.push(performance.now() - t);
    let took = 0;
    stalls.push(
      await longestStall(async () => {
        const t0 = performance.now();
        const out = await runInPool({ key: 'k', program: config, side: 'response', kind: 'json', body: input, scopes: null, version: null });
        took = performance.now() - t0;
        if (out === 1) throw new Error('bad JSON');
      }),
    );
    pooled.push(took);
    // the floor: the longest stall of an idle loop over the same time (other processes' share of the cores)
    idle.push(await longestStall(() => new Promise((r) => setTimeout(r, took))));
  }
  rows.push(`| ${kb} KB | ${median(inline).toFixed(2)} | ${median(pooled).toFixed(2)} | ${median(stalls).toFixed(2)} | ${median(idle).toFixed(2)} |`);
}
await closePool();
console.log(rows.join('\n'));

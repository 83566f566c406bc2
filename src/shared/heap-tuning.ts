import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * V8 heap settings of a `nanogate start` process, set before its workers exist (v8.setFlagsFromString; a worker's
 * heap reads the flags when it is made, and the one below is read at every scavenge).
 *
 * `--no-parallel-scavenge`: each thread scavenges its own young generation alone. With the default, a scavenge hands
 * work to V8's helper threads and waits for them: wake-ups and cross-core traffic, while the other cores are busy
 * being the other workers, for a young generation that holds little live data (a request's garbage dies young).
 * Measured on the standard policy set with native-bench/ab.sh (SIMUL=1): as a node flag, -0.46 µs of CPU per request
 * (5 of 6 rounds faster); set here, against the same build without it, -0.22 (9 of 12 rounds faster). Small; it is
 * kept because it never measured slower in the median. Pass-through does not change.
 *
 * Not set, and why: `--single-threaded-gc` measured a little better on the AMD host (-0.70) and worse on the Intel
 * one that followed (+0.39, 8 of 8 rounds slower, 2026-12-05); it cannot be set in a running process either (it
 * turns off concurrent marking under a heap that may be marking, and V8 aborts), so it would take node's command
 * line. `--min-semi-space-size=16` (a full-size young generation from the start) measured nothing (+0.06) for up
 * to 24 MiB more per thread.
 *
 * NANOGATE_V8_HEAP=default leaves V8's own defaults; NANOGATE_V8_HEAP="<flags>" sets other flags instead (flags
 * that are safe to change at run time only).
 */
export const HEAP_FLAGS = '--no-parallel-scavenge';

export function tuneHeaps(env: NodeJS.ProcessEnv = process.env): string {
  const chosen = env.NANOGATE_V8_HEAP;
  if (chosen === 'default') return '';
  const flags = chosen !== undefined && chosen.trim() !== '' ? chosen.trim() : HEAP_FLAGS;
  for (const flag of flags.split(/\s+/)) setFlagsFromString(flag);
  return flags;
}

/**
 * Whether node was started with `--no-memory-reducer` (bin/nanogate.js's first line, `npm start`, deploy/ do).
 *
 * V8's memory reducer shrinks an idle-looking heap: ~8 s after a major GC of the control plane (the main thread,
 * which hardly allocates while the workers serve) it runs a compacting "Mark-Compact (reduce)", 30 -> 30 MB live but
 * 65 -> 32 MB committed, with a 14-22 ms final pause and four V8 helper threads: 15-20 ms taken from the CPU a
 * worker needs, in 3 of 8 paced runs of native-bench's setup (the max latency went from 4-6 ms to 19-22 ms). The
 * flag must be on node's command line: the main thread's heap exists before any code runs, and setting it later
 * (v8.setFlagsFromString) changes only the heaps made afterwards, as does --gc-memory-reducer-start-delay-ms
 * (both measured: the reduce GCs still came). What it costs: the control plane keeps the ~35 MB it committed
 * during start-up instead of returning it.
 */
export function memoryReducerOff(execArgv: readonly string[] = process.execArgv): boolean {
  return execArgv.some((a) => a === '--no-memory-reducer' || a === '--no-memory_reducer');
}

let collect: (() => void) | undefined;

/**
 * A full collection of this thread's heap, now, before the gateway says it serves (`nanogate start`, when
 * memoryReducerOff(); the Gateway takes it as `beforeServing`). Loading modules and compiling the config leave the
 * control plane's heap at ~45 MB with a third of it garbage; left alone, V8 collects it when the control plane
 * next crosses its old-generation limit, which came at 1.7 s and 6.7 s after start in 2 of 8 runs, under traffic
 * (a ~10 ms final pause plus helper threads). Collected here (~25-30 ms, nothing served yet), the heap is ~30 MB
 * live and the control plane allocates too little to reach its next limit while it serves: 0 major GCs of the
 * control plane in 8 of 8 runs. Not with the memory reducer on: this collection would start its 8 s timer, and its
 * two reduce GCs came in 8 of 8 runs. Returns the pause in ms. The gc function comes from a context made while
 * `--expose-gc` was set; holding the function keeps that context, so no context is ever disposed for it.
 */
export function collectStartupGarbage(): number {
  if (collect === undefined) {
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as () => void;
    setFlagsFromString('--no-expose-gc');
  }
  const t0 = performance.now();
  collect();
  return performance.now() - t0;
}

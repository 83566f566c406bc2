import { setFlagsFromString } from 'node:v8';

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
 * Not set, and why: `--single-threaded-gc` measured a little better (-0.70) but cannot be set in a running process
 * (it turns off concurrent marking under a heap that may be marking, and V8 aborts); it would take node's command
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

import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/**
 * Where things are, from the compiled file's location (dist/src/bench/paths.js): the repository root holds bin/,
 * bench/ (scenarios, configs, budgets, micro baseline) and dist/.
 */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BENCH_DIR = join(ROOT, 'bench');
export const NANOGATE_BIN = join(ROOT, 'bin', 'nanogate.js');
export const DIST_BENCH = fileURLToPath(new URL('./', import.meta.url));

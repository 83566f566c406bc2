import { addOwn } from '../shared/own-cells.js';

/**
 * Counters of this thread's log and trace pipelines (lines written, dropped, spans exported…), in this worker's
 * block of the metrics region. The access-log sinks and the span exporter are per-thread resources, so they count
 * through this one binding rather than carrying the region around. Unbound (tests, tools): counting is a no-op.
 */
let cells: Int32Array | null = null;
let base = 0;

export function bindThreadStats(region: Int32Array, blockBase: number): void {
  cells = region;
  base = blockBase;
}

/** adds `n` to worker header cell `cell` (W_* in metrics-layout.ts) */
export function countStat(cell: number, n = 1): void {
  if (cells !== null) addOwn(cells, base + cell, n);
}

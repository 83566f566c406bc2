/**
 * The cache's counters, one shared region per zone (CompileContext.shared, the same buffer across reloads). Each
 * worker owns one row and is its only writer; the control plane reads every row on a scrape (renderCacheMetrics).
 *
 *   row w (ROW_CELLS x int32), at w * ROW_CELLS:
 *   +------+--------+-------+--------+--------+-------------+-------------+-----------+-------+---------+
 *   | HITS | MISSES | STALE | BYPASS | STORES | REVALIDATED | STALE_ERROR | COALESCED | BYTES | ENTRIES |
 *   +------+--------+-------+--------+--------+-------------+-------------+-----------+-------+---------+
 *   HITS..COALESCED are counters (32-bit, read as unsigned; a wrap reads as a counter reset), BYTES and ENTRIES
 *   gauges of the worker's L1 (BYTES read as unsigned: a zone is at most 4 GiB per worker).
 */
import type { PromWriter } from '../../observe/prometheus.js';

export const HITS = 0;
export const MISSES = 1;
/** served stale: stale-while-revalidate, max-stale */
export const STALE = 2;
export const BYPASS = 3;
export const STORES = 4;
/** a stored response validated with the origin (304) */
export const REVALIDATED = 5;
/** served stale in place of an upstream failure (stale-if-error) */
export const STALE_ERROR = 6;
/** misses that waited for another request's answer */
export const COALESCED = 7;
export const BYTES = 8;
export const ENTRIES = 9;
export const ROW_CELLS = 10;
export const MAX_WORKERS = 256;
export const REGION_BYTES = ROW_CELLS * MAX_WORKERS * 4;

const COUNTERS: [number, string, string][] = [
  [HITS, 'hit', 'answered from the cache'],
  [MISSES, 'miss', 'not in the cache, or stored but not usable'],
  [STALE, 'stale', 'answered with a stale response (stale-while-revalidate, max-stale)'],
  [BYPASS, 'bypass', 'not looked up (method, request directives, bypass headers, Range)'],
];

/** One zone's metrics region as the control plane sees it. */
export interface ZoneRegion {
  readonly zone: string;
  readonly region: SharedArrayBuffer;
}

export function renderCacheMetrics(zones: readonly ZoneRegion[], out: PromWriter): void {
  if (zones.length === 0) return;
  out.help('nanogate_cache_lookups_total', 'counter', 'cache lookups by result (hit, miss, stale, bypass)');
  out.help('nanogate_cache_stores_total', 'counter', 'responses stored');
  out.help('nanogate_cache_revalidations_total', 'counter', 'stored responses validated with the origin (304)');
  out.help('nanogate_cache_stale_if_error_total', 'counter', 'stale responses served in place of an upstream failure');
  out.help('nanogate_cache_coalesced_total', 'counter', 'misses that waited for another request to the same key');
  out.help('nanogate_cache_stored_bytes', 'gauge', 'bytes held by the zone, summed over workers');
  out.help('nanogate_cache_entries', 'gauge', 'entries held by the zone, summed over workers');
  for (const z of zones) {
    const cells = new Int32Array(z.region);
    const sum = (cell: number) => {
      let n = 0;
      for (let w = 0; w < MAX_WORKERS; w++) n += Atomics.load(cells, w * ROW_CELLS + cell) >>> 0;
      return n;
    };
    for (const [cell, result] of COUNTERS) out.sample('nanogate_cache_lookups_total', out.labels('zone', z.zone, 'result', result), sum(cell));
    out.sample('nanogate_cache_stores_total', out.labels('zone', z.zone), sum(STORES));
    out.sample('nanogate_cache_revalidations_total', out.labels('zone', z.zone), sum(REVALIDATED));
    out.sample('nanogate_cache_stale_if_error_total', out.labels('zone', z.zone), sum(STALE_ERROR));
    out.sample('nanogate_cache_coalesced_total', out.labels('zone', z.zone), sum(COALESCED));
    out.sample('nanogate_cache_stored_bytes', out.labels('zone', z.zone), sum(BYTES));
    out.sample('nanogate_cache_entries', out.labels('zone', z.zone), sum(ENTRIES));
  }
}

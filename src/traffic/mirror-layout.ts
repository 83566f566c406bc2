/**
 * The shared cells of one route's mirror: one small SharedArrayBuffer per route name (SharedRegistry key
 * `mirror:<route>`), so counts stay monotonic across reloads and every worker adds to the same cells with Atomics.
 * The control plane reads them on a scrape and for the admin API; no worker is asked anything.
 *
 *   Int32 cells (MIRROR_CELLS x 4 bytes):
 *   +---------+------+--------------+--------------+---------------+---------+-------+----+-----------+
 *   | SAMPLER | SENT | DROPPED_FULL | SKIPPED_BODY | SKIPPED_MATCH | TIMEOUT | ERROR | OK | IN_FLIGHT |
 *   +---------+------+--------------+--------------+---------------+---------+-------+----+-----------+
 *   SAMPLER:   matching requests seen, across workers: the sampling schedule (mirror.ts `sampled`)
 *   SENT..OK:  outcome counters, in the order of MIRROR_OUTCOMES (32-bit, wrapping; read as unsigned)
 *   IN_FLIGHT: copies dispatched or waiting for a connection, across workers (a gauge)
 */

export const M_SAMPLER = 0;
/** the first outcome counter; outcome k is at M_OUTCOMES + k */
export const M_OUTCOMES = 1;
export const MIRROR_OUTCOMES = ['sent', 'dropped_full', 'skipped_body', 'skipped_match', 'timeout', 'error', 'ok'] as const;
export type MirrorOutcome = (typeof MIRROR_OUTCOMES)[number];
export const M_SENT = M_OUTCOMES + 0;
export const M_DROPPED_FULL = M_OUTCOMES + 1;
export const M_SKIPPED_BODY = M_OUTCOMES + 2;
export const M_SKIPPED_MATCH = M_OUTCOMES + 3;
export const M_TIMEOUT = M_OUTCOMES + 4;
export const M_ERROR = M_OUTCOMES + 5;
export const M_OK = M_OUTCOMES + 6;
export const M_IN_FLIGHT = M_OUTCOMES + MIRROR_OUTCOMES.length;
export const MIRROR_CELLS = M_IN_FLIGHT + 1;
export const MIRROR_BYTES = MIRROR_CELLS * Int32Array.BYTES_PER_ELEMENT;

/** The outcome counts and the in-flight gauge of one route's mirror cells (control plane: scrape, admin API). */
export function readMirrorCells(sab: SharedArrayBuffer): { outcomes: Record<MirrorOutcome, number>; inFlight: number } {
  const cells = new Int32Array(sab);
  const outcomes = {} as Record<MirrorOutcome, number>;
  for (let k = 0; k < MIRROR_OUTCOMES.length; k++) outcomes[MIRROR_OUTCOMES[k]] = Atomics.load(cells, M_OUTCOMES + k) >>> 0;
  return { outcomes, inFlight: Math.max(0, Atomics.load(cells, M_IN_FLIGHT)) };
}

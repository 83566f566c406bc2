import { allZones } from './store.js';

/**
 * Purges inside one worker, and the way a worker asks for a purge everywhere on its node. The worker thread
 * (src/worker/worker.ts) registers how to reach the control plane; the control plane fans a purge out to every
 * worker (Gateway.purgeCache), which applies it here to each of its zones.
 */
export type PurgeKind = 'key' | 'prefix' | 'tag';

let broadcaster: ((kind: PurgeKind, value: string) => void) | null = null;

/** Set once by the worker thread. */
export function setPurgeBroadcaster(fn: (kind: PurgeKind, value: string) => void): void {
  broadcaster = fn;
}

/** Asks the control plane to purge in every worker of the node (this one included: purges are idempotent). */
export function broadcastPurge(kind: PurgeKind, value: string): void {
  broadcaster?.(kind, value);
}

/**
 * Purges applied in this worker so far. A request notes it when it starts; an entry it fetched (from the L2 or
 * upstream) is not stored if a purge came meanwhile: it may be the old content, read before the purge removed it
 * everywhere and landing after (docs/caching.md#purges-across-nodes).
 */
let generation = 0;

export function purgeGeneration(): number {
  return generation;
}

/** Applies a purge to every zone of this worker; returns the number of entries removed. */
export function purgeHere(kind: PurgeKind, value: string, zone?: string): number {
  generation++;
  let n = 0;
  for (const [name, store] of allZones()) {
    if (zone !== undefined && zone !== name) continue;
    n += kind === 'key' ? store.purgeKey(value) : kind === 'prefix' ? store.purgePrefix(value) : store.purgeTag(value);
    store.publish();
  }
  return n;
}

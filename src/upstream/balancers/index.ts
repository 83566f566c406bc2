import { LeastRequestBalancer } from './least-request.js';
import { MaglevBalancer } from './maglev.js';
import { PeakEwmaBalancer } from './peak-ewma.js';
import { RoundRobinBalancer } from './round-robin.js';
import type { BalancingConfig } from './schema.js';
import type { Balancer } from './view.js';

/**
 * Balancers for the upstream cluster: pure modules over NodeView (view.ts). See docs/balancing.md.
 */
export type { Balancer, NodeView } from './view.js';
export { NO_NODE } from './view.js';
export { ArrayNodeView } from './array-view.js';
export { RoundRobinBalancer, smoothSchedule } from './round-robin.js';
export { LeastRequestBalancer } from './least-request.js';
export { MaglevBalancer, buildMaglevTable, isPrime, type MaglevNode } from './maglev.js';
export { PeakEwmaBalancer, ewmaAt, ewmaNext, ewmaUpdate } from './peak-ewma.js';
export { slowStartFactor, type SlowStartConfig } from './slow-start.js';
export { compileHashKey, hashString, type HashKeyRequest } from './hash.js';
export { BalancingSchema, balancingIssues, type BalancingConfig } from './schema.js';

/**
 * One balancer for one worker and upstream, from the validated config. peakEwma.decayMs is not the balancer's: the
 * cluster applies it where it records latencies (ewmaUpdate) and reads them (ewmaAt). `seed` sets the worker apart (its index + 1
 * is fine); `table` is the Maglev table of the current node set (buildMaglevTable), needed for consistent-hash;
 * `weights`, the configured weights, lets round robin unroll its schedule.
 */
export function createBalancer(config: BalancingConfig, seed: number, table?: Int32Array, weights?: readonly number[]): Balancer {
  switch (config.algorithm) {
    case 'round-robin':
      return new RoundRobinBalancer({ seed, weights });
    case 'least-request':
      return new LeastRequestBalancer({ seed, choices: config.leastRequest.choices, activeRequestBias: config.leastRequest.activeRequestBias });
    case 'peak-ewma':
      return new PeakEwmaBalancer({ seed });
    case 'consistent-hash': {
      if (!table) throw new RangeError('consistent-hash needs the Maglev table of the node set (buildMaglevTable)');
      const ch = config.consistentHash;
      return new MaglevBalancer(table, { size: ch.tableSize, loadFactor: ch.boundedLoad ? ch.loadFactor : 0 });
    }
  }
}

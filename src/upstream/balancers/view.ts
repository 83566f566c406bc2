/**
 * What a balancer sees of an upstream's nodes, and what it answers. The cluster layer implements NodeView over its
 * shared region (src/upstream/cluster*.ts); ArrayNodeView (array-view.ts) is a plain one for tests and benches.
 *
 * A balancer is pure over the view: it reads availability, weight and load at pick time and keeps no per-node state
 * of its own except where the algorithm needs it (the smooth round robin's counters, a PRNG). So one balancer
 * instance per worker and upstream, fed the shared view, balances across all workers.
 */
export interface NodeView {
  readonly count: number;
  /** false while a node is drained, ejected, unhealthy or not yet discovered; panic mode is decided by the caller */
  available(i: number): boolean;
  /** configured weight × slow-start factor at `now` (>= 0; fractional allowed) */
  weight(i: number): number;
  /** requests in flight to node i across all workers */
  inFlight(i: number): number;
  /** peak EWMA of response time in µs; 0 = no sample yet */
  latencyUs(i: number): number;
}

/** The answer when no node may take the request. */
export const NO_NODE = -1;

export interface Balancer {
  /**
   * Index of the node for this attempt, or NO_NODE (-1). `skip` is a node that just failed this request (-1 for
   * none); `key` is a 32-bit hash of the request (hash.ts), 0 when the algorithm does not use one.
   * Never throws and never allocates on the pick path.
   */
  pick(view: NodeView, skip: number, key: number): number;
}

/**
 * Adding to a counter cell that only this thread writes (its own row of the counters region, its own block of the
 * metrics region), read by the control plane with Atomics.load.
 *
 * An Atomics.add is a call into a builtin and a locked instruction, ~10 ns; this is a plain load and store, ~2 ns,
 * and a request adds to 10-25 cells. It is enough for a cell with one writer: an aligned Int32Array element access is
 * tear-free (ECMAScript, "Shared Memory and Atomics": NoTear), so a reader sees the old or the new count, never a mix;
 * it may see it a little late, which a scrape once a second does not notice. A cell that two threads write (a route's
 * concurrency, a node's in-flight count) must keep Atomics.
 */
export function addOwn(cells: Int32Array, at: number, n: number): void {
  cells[at] = (cells[at] + n) | 0;
}

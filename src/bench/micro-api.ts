/**
 * The shape of a micro-benchmark suite. A suite is one file, bench/micro/<name>.bench.ts, whose default export is
 * defineSuite({...}); `nanogate bench micro` finds every compiled *.bench.js next to it, so adding a suite is adding
 * that one file. Each case is timed on its own (tinybench), and reported in nanoseconds per operation.
 *
 * Example (bench/micro/example.bench.ts):
 *
 *   import { defineSuite, consume } from '../../src/bench/micro-api.js';
 *   export default defineSuite({
 *     name: 'example',
 *     description: 'what is measured and why it is hot',
 *     cases() {
 *       const inputs = ['a', 'bb', 'ccc'];
 *       return [{ name: 'length of 3 strings', ops: 3, fn: () => { for (const s of inputs) consume(s.length); } }];
 *     },
 *   });
 *
 * `ops` is how many operations one call of fn performs: batch cheap operations (tens of ns) so the timer's own
 * cost (about 50-100 ns per sample here) does not swamp them. Pass results to consume() so V8 cannot drop the work.
 */

export interface MicroCase {
  /** unique within the suite; the baseline is keyed by "suite/case" */
  name: string;
  fn: () => unknown;
  /** operations per call of fn (default 1) */
  ops?: number;
}

export interface MicroSuite {
  name: string;
  description: string;
  /** builds inputs once and returns the cases; may be async */
  cases(): MicroCase[] | Promise<MicroCase[]>;
  /** releases what cases() made (sockets, timers), if anything */
  teardown?(): void | Promise<void>;
}

export function defineSuite(suite: MicroSuite): MicroSuite {
  return suite;
}

let sink: unknown = null;
let sinkCount = 0;

/** Keeps a value alive so the optimiser cannot remove the computation that made it. */
export function consume(value: unknown): void {
  sink = value;
  sinkCount++;
}

/** For the runner: reading the sink makes it observable. */
export function sinkState(): string {
  return `${typeof sink}:${sinkCount}`;
}

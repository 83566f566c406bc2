/**
 * The shared state of one upstream cluster: what every worker must agree on about its nodes (health from active
 * checks, passive ejection, in-flight counts across workers, latency) within one check interval. The control plane
 * creates one region per upstream (keyed by upstream name and node URLs in src/shared/registry.ts, so a reload that
 * keeps the node set keeps the state), writes active-check results into it, and workers add their passive
 * observations with Atomics. Nothing here allocates; every access is one Atomics call on an Int32Array, or a plain
 * read where a count a few µs old will do.
 *
 *   Int32Array:
 *   +---------------------------------- header (HEADER_SLOTS) ----------------------------------+
 *   | GENERATION | NODE_COUNT | PANIC | EJECTED_NOW | ACTIVE | RETRIES_ACTIVE | CIRCUIT ... totals  |
 *   | circuit window: 10 buckets × [epoch, calls, failures, slow]                                 |
 *   +--------------------------------------------------------------------------------------------+
 *   | node 0: NODE_STRIDE cells (HEALTH, EJECTED_UNTIL, EJECTIONS, IN_FLIGHT, LATENCY_US, ...)   |
 *   | node 1 ...                                                                                 |
 *   +--------------------------------------------------------------------------------------------+
 *   | STRIPES stripes, one per worker, whole cache lines: ACTIVE, then IN_FLIGHT per node (below)  |
 *   +--------------------------------------------------------------------------------------------+
 *
 * Times are the low 32 bits of Date.now() (`clock32()`), compared with wrap-around arithmetic (`after()`), which is
 * exact for intervals under 24 days. A time cell of 0 (NONE) means "not set".
 *
 * Writers: HEALTH and HEALTH_CHANGED_AT only by the control plane (active checks); the rest by any worker.
 */

// ---- header cells
/** bumped on every health or ejection change (the admin API and tests wait on it) */
export const GENERATION = 0;
export const NODE_COUNT = 1;
/** 1 while no node is available and traffic goes to all of them (panic mode); set by the workers that saw it */
export const PANIC = 2;
/** nodes ejected by passive checks right now (kept by whoever ejects or restores) */
export const EJECTED_NOW = 3;
/** requests admitted under a concurrency limit (maxConcurrent) across all workers; the rest count in the stripes (active()) */
export const ACTIVE = 4;
/** retries in flight or waiting in backoff across all workers (the retry budget counts them) */
export const RETRIES_ACTIVE = 5;
/** circuit breaker: CIRCUIT_CLOSED, CIRCUIT_OPEN or CIRCUIT_HALF_OPEN */
export const CIRCUIT = 6;
/** clock32() when the circuit last opened */
export const CIRCUIT_OPENED_AT = 7;
/** half-open probes admitted, and those that passed */
export const CIRCUIT_PROBES = 8;
export const CIRCUIT_PROBES_OK = 9;
/** times the circuit opened, for metrics */
export const CIRCUIT_OPENINGS = 10;
/** requests refused at once by an open circuit, a full queue or the concurrency limit, for metrics */
export const SHED_TOTAL = 11;
export const RETRIES_TOTAL = 12;
/** retries the budget refused */
export const RETRIES_REFUSED = 13;
/** stripes in use: one more than the highest stripe a worker took (readers sum this many) */
export const STRIPES_USED = 14;
/** circuit window: CIRCUIT_BUCKETS buckets of [epoch, calls, failures, slow] from WINDOW_BASE */
export const WINDOW_BASE = 16;
export const CIRCUIT_BUCKETS = 10;
export const BUCKET_CELLS = 4;
export const HEADER_SLOTS = WINDOW_BASE + CIRCUIT_BUCKETS * BUCKET_CELLS;

export const CIRCUIT_CLOSED = 0;
export const CIRCUIT_OPEN = 1;
export const CIRCUIT_HALF_OPEN = 2;
export const CIRCUIT_NAMES = ['closed', 'open', 'half-open'] as const;

// ---- per node cells (offset inside a node's stride)
/** HEALTH_UNKNOWN until an active check decided; workers treat unknown as healthy */
export const HEALTH = 0;
/** clock32() until which the node is ejected by passive checks, or NONE */
export const EJECTED_UNTIL = 1;
/** times ejected since it was last healthy for a whole ejection period (ejection time grows with it) */
export const EJECTIONS = 2;
/** unused: a node's requests in flight are counted in the stripes (ClusterState.inFlight) */
export const IN_FLIGHT = 3;
/** peak-sensitive EWMA of the time to the response head, µs (0: no sample yet); kept for peak-ewma upstreams only */
export const LATENCY_US = 4;
export const CONSECUTIVE_5XX = 5;
/** refused, reset or timed-out attempts in a row */
export const CONSECUTIVE_GATEWAY = 6;
/** after an ejection ends with no active check configured: trial requests still allowed before it is trusted */
export const TRIALS = 7;
/** success-rate window: attempts and successes since the control plane last evaluated (counted only when configured) */
export const WINDOW_TOTAL = 8;
export const WINDOW_OK = 9;
/** clock32() when the node last became healthy (slow start ramps from here) */
export const HEALTHY_SINCE = 10;
/** what last went wrong with the node (LAST_* codes), for the admin API */
export const LAST_FAILURE = 11;
export const LAST_FAILURE_AT = 12;
/** total ejections, for metrics */
export const EJECTIONS_TOTAL = 13;
/** clock32() of the last LATENCY_US update (the average decays from there: balancers/peak-ewma.ts) */
export const LATENCY_STAMP = 14;
/** what this node's pipelining is (PIPE_* | reason << 4), written by the workers' pools (h1-pool.ts); NONE: not probed yet */
export const PIPELINING = 15;
export const NODE_STRIDE = 16;

export const NONE = 0;

export const HEALTH_UNKNOWN = 0;
export const HEALTH_UP = 1;
export const HEALTH_DOWN = 2;

export const LAST_NONE = 0;
export const LAST_CONNECT = 1;
export const LAST_RESET = 2;
export const LAST_TIMEOUT = 3;
export const LAST_5XX = 4;
export const LAST_BAD_RESPONSE = 5;
export const LAST_ACTIVE_CHECK = 6;
export const LAST_SUCCESS_RATE = 7;
export const LAST_FAILURE_NAMES = ['none', 'connect', 'reset', 'timeout', '5xx', 'bad-response', 'active-check', 'success-rate'] as const;

/** PIPELINING cell: state in the low 4 bits, reason (PIPE_WHY_*) above */
export const PIPE_PROBING = 0;
export const PIPE_ON = 1;
export const PIPE_OFF = 2;
export const PIPE_STATE_NAMES = ['probing', 'on', 'off'] as const;
export const PIPE_WHY_NOT_YET = 0;
export const PIPE_WHY_PASSED = 1;
export const PIPE_WHY_HTTP10 = 2;
export const PIPE_WHY_CLOSE = 3;
export const PIPE_WHY_CLOSED_AFTER_FIRST = 4;
export const PIPE_WHY_CLOSED_BEFORE_FIRST = 5;
export const PIPE_WHY_SECOND_MISSING = 6;
export const PIPE_WHY_FRAMING = 7;
export const PIPE_WHY_MID_BATCH = 8;
export const PIPE_WHY_RECONNECT = 9;
export const PIPE_WHY_UNREACHABLE = 10;
export const PIPE_WHY_NAMES = [
  'not probed yet',
  'probe passed: two pipelined HEAD requests answered in order',
  'probe: the node answered with HTTP/1.0',
  'probe: the node answered with Connection: close',
  'probe: the connection closed after the first answer',
  'probe: the connection closed before any answer',
  'probe: the second answer did not come',
  'probe: the answers were not framed correctly',
  'the node closed a connection in the middle of a batch',
  'every connection was lost: probing again',
  'probe: the node could not be reached; probing again',
] as const;

export function pipeCell(state: number, why: number): number {
  return state | (why << 4);
}

/** The low 32 bits of Date.now(), never NONE. */
export function clock32(now = Date.now()): number {
  const t = now | 0;
  return t === NONE ? 1 : t;
}

/** a is later than b (wrap-around safe for intervals under 24 days) */
export function after(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

/**
 * Striped counters: the counts every request changes twice (ACTIVE when admitted and released, a node's IN_FLIGHT
 * when its attempt begins and ends) are kept per worker, each worker's in a stripe of its own cache lines, and read
 * as the sum of the stripes. With one shared cell, every request's four read-modify-writes moved the cache line
 * between the cores of two workers, and the line held per-request reads beside it (PANIC, CIRCUIT). On the 2-core
 * VM of native-bench the gain is within its noise (about 0.05 µs a request with two workers, native-bench/ab.sh
 * WORKERS=2 in both orders); what it surely buys is that a crashed worker's requests no longer stay counted in flight
 * for good (its replacement clears its stripe), which skewed least-request and the retry budget until a restart.
 * Workers from STRIPES - 1 on share the last stripe (the adds stay atomic for that), and it is never cleared. The header's ACTIVE cell still counts what a concurrency limit admits (maxConcurrent > 0), where the
 * limit must hold exactly across workers. Readers sum STRIPES_USED stripes: two loads with two workers.
 *
 *   stripe s (from stripeBase, stripeCells each, whole cache lines): | ACTIVE | node 0 IN_FLIGHT | node 1 ... |
 */
export const STRIPES = 64;
/** cells of a cache line (64 bytes) */
const LINE_CELLS = 16;
const S_ACTIVE = 0;
const S_NODES = 1;

function stripeBase(nodeCount: number): number {
  return Math.ceil((HEADER_SLOTS + nodeCount * NODE_STRIDE) / LINE_CELLS) * LINE_CELLS;
}

function stripeCells(nodeCount: number): number {
  return Math.ceil((S_NODES + nodeCount) / LINE_CELLS) * LINE_CELLS;
}

export function regionBytes(nodeCount: number): number {
  return (stripeBase(nodeCount) + STRIPES * stripeCells(nodeCount)) * Int32Array.BYTES_PER_ELEMENT;
}

/** The stripes of regions this thread has written to, by region: a stripe is cleared when first met (see stripe()). */
const metStripes = new WeakMap<SharedArrayBuffer, Set<number>>();

/** A view over one upstream's region; the same class serves the control plane and the workers. */
export class ClusterState {
  readonly cells: Int32Array;
  readonly nodeCount: number;

  /** where stripe 0 starts, and the cells of one stripe */
  readonly #stripes: number;
  readonly #stripeCells: number;

  constructor(buffer: SharedArrayBuffer, nodeCount: number) {
    this.cells = new Int32Array(buffer);
    this.nodeCount = nodeCount;
    this.#stripes = stripeBase(nodeCount);
    this.#stripeCells = stripeCells(nodeCount);
    if (this.cells.length < this.#stripes + STRIPES * this.#stripeCells) throw new Error('cluster region too small');
    Atomics.store(this.cells, NODE_COUNT, nodeCount);
  }

  /**
   * The first cell of worker `index`'s stripe, for addActive and addInFlight. The first time a thread meets a region
   * it clears its stripe, when the stripe is its alone: a worker that crashed with requests in flight left its counts
   * there, and its replacement (same index, started after it exited) starts them again from zero.
   */
  stripe(index: number): number {
    const s = Math.min(index, STRIPES - 1);
    const buffer = this.cells.buffer as SharedArrayBuffer;
    let met = metStripes.get(buffer);
    if (met === undefined) metStripes.set(buffer, (met = new Set()));
    const at = this.#stripes + s * this.#stripeCells;
    if (!met.has(s)) {
      met.add(s);
      if (s === index && s < STRIPES - 1) for (let i = 0; i < this.#stripeCells; i++) Atomics.store(this.cells, at + i, 0);
      for (;;) {
        const used = Atomics.load(this.cells, STRIPES_USED);
        if (used > s || Atomics.compareExchange(this.cells, STRIPES_USED, used, s + 1) === used) break;
      }
    }
    return at;
  }

  /** Adds to this worker's count of its admitted requests (stripe: from stripe()). */
  addActive(stripe: number, delta: number): void {
    Atomics.add(this.cells, stripe + S_ACTIVE, delta);
  }

  /** Adds to this worker's count of requests in flight to `node`. */
  addInFlight(stripe: number, node: number, delta: number): void {
    Atomics.add(this.cells, stripe + S_NODES + node, delta);
  }

  /**
   * Requests of this upstream in flight across all workers: the concurrency limit's cell plus every stripe. Plain
   * reads of the stripes (a count a few µs old), like peek.
   */
  active(): number {
    const cells = this.cells;
    let n = Atomics.load(cells, ACTIVE);
    const used = cells[STRIPES_USED];
    for (let s = 0, at = this.#stripes + S_ACTIVE; s < used; s++, at += this.#stripeCells) n += cells[at];
    return n;
  }

  /** Requests to `node` in flight across all workers (the sum of the stripes, plain reads). */
  inFlight(node: number): number {
    const cells = this.cells;
    let n = 0;
    const used = cells[STRIPES_USED];
    for (let s = 0, at = this.#stripes + S_NODES + node; s < used; s++, at += this.#stripeCells) n += cells[at];
    return n;
  }

  static create(nodeCount: number): ClusterState {
    return new ClusterState(new SharedArrayBuffer(regionBytes(nodeCount)), nodeCount);
  }

  cell(node: number, field: number): number {
    return HEADER_SLOTS + node * NODE_STRIDE + field;
  }

  get(node: number, field: number): number {
    return Atomics.load(this.cells, HEADER_SLOTS + node * NODE_STRIDE + field);
  }

  /**
   * A plain (relaxed) read of the cell: another worker's store shows a little later at worst, never torn (an aligned
   * 32-bit cell), and it costs a load where Atomics.load is a call into the runtime (~100 instructions: counted by
   * native-bench/instructions.sh, four of them per balancer pick). For the per-request checks whose answer may be a
   * few µs old (is the node up, ejected, on trial); never for a loop that waits for a change, where the compiler may
   * keep the value it read, nor for a read-modify-write.
   */
  peek(node: number, field: number): number {
    return this.cells[HEADER_SLOTS + node * NODE_STRIDE + field];
  }

  set(node: number, field: number, value: number): void {
    Atomics.store(this.cells, HEADER_SLOTS + node * NODE_STRIDE + field, value);
  }

  add(node: number, field: number, delta: number): number {
    return Atomics.add(this.cells, HEADER_SLOTS + node * NODE_STRIDE + field, delta) + delta;
  }

  bump(): void {
    Atomics.add(this.cells, GENERATION, 1);
  }

  get generation(): number {
    return Atomics.load(this.cells, GENERATION);
  }

  /** Ejected by passive checks at `now` (clock32). */
  ejected(node: number, now: number): boolean {
    const until = this.get(node, EJECTED_UNTIL);
    return until !== NONE && after(until, now);
  }

  /** Down by an active check. */
  down(node: number): boolean {
    return this.get(node, HEALTH) === HEALTH_DOWN;
  }

  /**
   * Ejects the node until `until` unless it already is, or unless `maxEjected` nodes already are (EJECTED_NOW is
   * reserved first with a compare-exchange loop, so two workers cannot together pass the cap); true when this call
   * did it, so only one worker logs and counts an ejection that several saw at once.
   */
  eject(node: number, now: number, until: number, failure: number, maxEjected: number): boolean {
    const cells = this.cells;
    const cell = this.cell(node, EJECTED_UNTIL);
    const current = Atomics.load(cells, cell);
    if (current !== NONE) return false; // ejected, or its period just ended and expire() has not run yet
    for (;;) {
      const n = Atomics.load(cells, EJECTED_NOW);
      if (n >= maxEjected) return false;
      if (Atomics.compareExchange(cells, EJECTED_NOW, n, n + 1) === n) break;
    }
    if (Atomics.compareExchange(cells, cell, NONE, until) !== NONE) {
      Atomics.sub(cells, EJECTED_NOW, 1);
      return false;
    }
    this.set(node, TRIALS, 0);
    this.set(node, CONSECUTIVE_GATEWAY, 0);
    this.set(node, CONSECUTIVE_5XX, 0);
    this.set(node, LAST_FAILURE, failure);
    this.set(node, LAST_FAILURE_AT, now);
    this.add(node, EJECTIONS, 1);
    this.add(node, EJECTIONS_TOTAL, 1);
    this.bump();
    return true;
  }

  /**
   * The ejection period passed: the node takes traffic again, at first only `trials` requests at a time (trial
   * requests), until one succeeds (trialPassed). With trials = 0 it is trusted at once (an active check passed).
   * True when this call did it.
   */
  expire(node: number, trials: number): boolean {
    const cell = this.cell(node, EJECTED_UNTIL);
    const current = Atomics.load(this.cells, cell);
    if (current === NONE) return false;
    if (Atomics.compareExchange(this.cells, cell, current, NONE) !== current) return false;
    this.set(node, TRIALS, trials);
    this.set(node, HEALTHY_SINCE, clock32());
    Atomics.sub(this.cells, EJECTED_NOW, 1);
    this.bump();
    return true;
  }

  /** Copies what should survive a node-set change (by node URL) from an older region. */
  carryFrom(old: ClusterState, oldUrls: readonly string[], urls: readonly string[]): void {
    for (let i = 0; i < urls.length; i++) {
      const j = oldUrls.indexOf(urls[i]);
      if (j < 0) continue;
      for (const f of [HEALTH, EJECTED_UNTIL, EJECTIONS, LATENCY_US, LATENCY_STAMP, HEALTHY_SINCE, LAST_FAILURE, LAST_FAILURE_AT, EJECTIONS_TOTAL, TRIALS]) {
        this.set(i, f, old.get(j, f));
      }
      if (this.get(i, EJECTED_UNTIL) !== NONE) Atomics.add(this.cells, EJECTED_NOW, 1);
    }
  }
}

import type { Plan } from '../../config/plan.js';
import type { PromWriter } from '../../observe/prometheus.js';
import type { ErrorCode } from '../../errors/codes.js';

/**
 * Operation metrics of one route's graphql policy (requests, refusals by code, cost, by operation name) in a
 * SharedArrayBuffer from CompileContext.shared: the same memory in every worker and across reloads (keyed by route
 * and size). Every worker adds to the same cells with Atomics; the main thread folds the 32-bit cells into 64-bit
 * totals every second and on a scrape (GraphqlMetrics below).
 *
 * The label set is bounded: `names` named slots, given to operation names first come first served (a slot is never
 * reassigned, so each series stays a monotonic counter), then every other name counts under `_other`; operations
 * without a name count under `_anonymous`. A worker resolves a name once per cached operation (a document-cache miss),
 * never per request: the slot index is kept with the operation.
 *
 *   region (Int32 cells):
 *   +-----------+------------------+-------------------+---------------------------------------+
 *   | CLAIMED   | slot 0 _anonymous| slot 1 _other     | slot 2 .. names+1: named              |
 *   +-----------+------------------+-------------------+---------------------------------------+
 *   slot (SLOT_CELLS): STATE | NAME_LEN | NAME (NAME_CELLS x 4 bytes, ASCII) | REQUESTS | COST | CODES (CODES.length)
 *   STATE: FREE -> CLAIMING (one worker writes the name) -> READY
 *
 * Two workers claiming the same new name at the same instant may take two slots for it; the scrape merges slots by
 * name, so counts stay right and only the bound is reached sooner.
 */
const CLAIMED = 0;
const HEADER = 1;
const FREE = 0;
const CLAIMING = 1;
const READY = 2;
const S_STATE = 0;
const S_LEN = 1;
const S_NAME = 2;
/** GraphQL names are ASCII ([_A-Za-z][_0-9A-Za-z]*): 64 of them fit; a longer name counts as _other */
const NAME_CELLS = 16;
const MAX_NAME = NAME_CELLS * 4;
const S_REQUESTS = S_NAME + NAME_CELLS;
const S_COST = S_REQUESTS + 1;
const S_CODES = S_COST + 1;
/** the refusals counted by code; any other gateway error is "other", an upstream 5xx "upstream_5xx" */
export const COUNTED_CODES: readonly ErrorCode[] = [
  'NG_ERR_GRAPHQL_DEPTH',
  'NG_ERR_GRAPHQL_ALIASES',
  'NG_ERR_GRAPHQL_ROOT_FIELDS',
  'NG_ERR_GRAPHQL_COST',
  'NG_ERR_GRAPHQL_MUTATION_GET',
  'NG_ERR_GRAPHQL_INTROSPECTION',
  'NG_ERR_GRAPHQL_FIELD_FORBIDDEN',
  'NG_ERR_RATE_LIMITED',
];
const CODE_LABELS = [...COUNTED_CODES, 'other', 'upstream_5xx'];
const C_OTHER = COUNTED_CODES.length;
const C_UPSTREAM = C_OTHER + 1;
const SLOT_CELLS = S_CODES + CODE_LABELS.length;
export const SLOT_ANONYMOUS = 0;
export const SLOT_OTHER = 1;
const FIXED = 2;

export function metricsBytes(names: number): number {
  return (HEADER + (FIXED + names) * SLOT_CELLS) * 4;
}

const codeIndex = new Map<string, number>(COUNTED_CODES.map((c, i) => [c, i]));

/** Worker side: resolves names to slots (once per cached operation) and records requests. */
export class OperationCounters {
  readonly #cells: Int32Array;
  readonly #names: number;
  constructor(sab: SharedArrayBuffer, names: number) {
    this.#cells = new Int32Array(sab);
    this.#names = names;
  }

  /** The slot of an operation name: its own, a new one, or _other when all are taken. Not per request. */
  slotOf(name: string | null): number {
    if (name === null || name === '') return SLOT_ANONYMOUS;
    if (name.length > MAX_NAME) return SLOT_OTHER;
    const c = this.#cells;
    const n = this.#names;
    for (let i = 0; i < n; i++) {
      const at = HEADER + (FIXED + i) * SLOT_CELLS;
      let state = Atomics.load(c, at + S_STATE);
      if (state === FREE) {
        if (Atomics.compareExchange(c, at + S_STATE, FREE, CLAIMING) === FREE) {
          Atomics.store(c, at + S_LEN, name.length);
          for (let k = 0; k < NAME_CELLS; k++) {
            let v = 0;
            for (let b = 0; b < 4; b++) v |= (name.charCodeAt(k * 4 + b) & 0x7f) << (b * 8);
            Atomics.store(c, at + S_NAME + k, v);
          }
          Atomics.store(c, at + S_STATE, READY);
          Atomics.add(c, CLAIMED, 1);
          return FIXED + i;
        }
        state = Atomics.load(c, at + S_STATE);
      }
      // another worker is writing this slot's name (a few stores): wait for it rather than take a second slot
      for (let spin = 0; state === CLAIMING && spin < 10_000; spin++) state = Atomics.load(c, at + S_STATE);
      if (state === READY && nameAt(c, at) === name) return FIXED + i;
    }
    return SLOT_OTHER;
  }

  /** One request of the operation in `slot`, with its cost (0 when refused before) and how it ended. */
  record(slot: number, cost: number, errorCode: ErrorCode | null, status: number): void {
    const at = HEADER + slot * SLOT_CELLS;
    const c = this.#cells;
    Atomics.add(c, at + S_REQUESTS, 1);
    if (cost > 0) Atomics.add(c, at + S_COST, cost);
    if (errorCode !== null) Atomics.add(c, at + S_CODES + (codeIndex.get(errorCode) ?? C_OTHER), 1);
    else if (status >= 500) Atomics.add(c, at + S_CODES + C_UPSTREAM, 1);
  }
}

function nameAt(c: Int32Array, at: number): string {
  const len = Atomics.load(c, at + S_LEN);
  let s = '';
  for (let i = 0; i < len; i++) s += String.fromCharCode((Atomics.load(c, at + S_NAME + (i >> 2)) >>> ((i & 3) * 8)) & 0x7f);
  return s;
}

/** What the main thread needs of a route's region (in the graphql policy's compiled data). */
export interface OperationMetricsData {
  readonly sab: SharedArrayBuffer;
  readonly names: number;
}

interface Folded {
  readonly sab: SharedArrayBuffer;
  readonly last: Uint32Array;
  readonly total: Float64Array;
}

const POLL_MS = 1000;

/** Main-thread side: folds every route's region into 64-bit totals and renders the families. */
export class GraphqlMetrics {
  /** by route name; a region that leaves the plan takes its totals along */
  readonly #folded = new Map<string, Folded>();
  #routes: { route: string; data: OperationMetricsData }[] = [];
  #timer: NodeJS.Timeout | null = null;

  attach(plan: Plan): void {
    const routes: { route: string; data: OperationMetricsData }[] = [];
    for (const r of plan.routes) {
      const p = r.policies?.find((x) => x.name === 'graphql');
      const m = (p?.data as { metrics?: OperationMetricsData | null } | undefined)?.metrics;
      if (m) routes.push({ route: r.name, data: m });
    }
    this.#routes = routes;
    for (const [k, f] of this.#folded) if (!routes.some((r) => r.route === k && r.data.sab === f.sab)) this.#folded.delete(k);
    if (routes.length > 0 && this.#timer === null) {
      this.#timer = setInterval(() => this.#fold(), POLL_MS);
      this.#timer.unref();
    } else if (routes.length === 0) this.close();
    this.#fold();
  }

  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  render(out: PromWriter): void {
    if (this.#routes.length === 0) return;
    this.#fold();
    out.help('nanogate_graphql_operations_total', 'counter', 'GraphQL operations, by route and operation name (the first N names; the rest "_other", unnamed ones "_anonymous")');
    out.help('nanogate_graphql_operation_errors_total', 'counter', 'of those, refused or failed ones, by route, operation name and code (an error code, "other" for other gateway errors, "upstream_5xx")');
    out.help('nanogate_graphql_operation_cost_total', 'counter', 'summed cost of the operations answered without a gateway error, by route and operation name');
    for (const { route, data } of this.#routes) {
      const f = this.#folded.get(route);
      if (!f) continue;
      const c = new Int32Array(data.sab);
      // slots merged by name (a race can give one name two slots)
      const merged = new Map<string, Float64Array>();
      for (let s = 0; s < FIXED + data.names; s++) {
        const at = HEADER + s * SLOT_CELLS;
        const name = s === SLOT_ANONYMOUS ? '_anonymous' : s === SLOT_OTHER ? '_other' : Atomics.load(c, at + S_STATE) === READY ? nameAt(c, at) : null;
        if (name === null || f.total[at + S_REQUESTS] === 0) continue;
        let m = merged.get(name);
        if (!m) merged.set(name, (m = new Float64Array(SLOT_CELLS)));
        for (let k = S_REQUESTS; k < SLOT_CELLS; k++) m[k] += f.total[at + k];
      }
      for (const [name, m] of merged) {
        out.sample('nanogate_graphql_operations_total', out.labels('route', route, 'operation', name), m[S_REQUESTS]);
        out.sample('nanogate_graphql_operation_cost_total', out.labels('route', route, 'operation', name), m[S_COST]);
        for (let k = 0; k < CODE_LABELS.length; k++) {
          if (m[S_CODES + k] > 0) out.sample('nanogate_graphql_operation_errors_total', out.labels('route', route, 'operation', name, 'code', CODE_LABELS[k]), m[S_CODES + k]);
        }
      }
    }
  }

  #fold(): void {
    for (const { route, data } of this.#routes) {
      const c = new Int32Array(data.sab);
      let f = this.#folded.get(route);
      if (!f || f.sab !== data.sab) this.#folded.set(route, (f = { sab: data.sab, last: new Uint32Array(c.length), total: new Float64Array(c.length) }));
      for (let s = 0; s < FIXED + data.names; s++) {
        const at = HEADER + s * SLOT_CELLS;
        for (let k = S_REQUESTS; k < SLOT_CELLS; k++) {
          const now = Atomics.load(c, at + k) >>> 0;
          const d = (now - f.last[at + k]) >>> 0;
          if (d !== 0) {
            f.total[at + k] += d;
            f.last[at + k] = now;
          }
        }
      }
    }
  }
}

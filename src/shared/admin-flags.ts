import type { Plan } from '../config/plan.js';

/**
 * Operator switches that every worker must see at once, without a new plan: "route disabled" and "node drained".
 * One small SharedArrayBuffer per plan version, created by the control plane before the plan is posted and carried
 * inside it (a SharedArrayBuffer in a structured clone is shared, not copied). The admin API writes it with Atomics;
 * a worker reads one cell per request (the route flag after routing, a node flag per balancer candidate).
 *
 * Cells are indexed by what the plan already numbers: route id, and a node's position in the plan's upstream list
 * (upstream order, then node order: its "global node index"). Because those numbers change from one plan to the
 * next, the control plane keeps the switches by name (route name; upstream name + node URL) and writes a fresh
 * region for every new plan, so a disabled route stays disabled across a reload.
 *
 *   Int32Array, one cell per slot:
 *   +------------+-------------+-------------+------------+------------------------+------------------------------+
 *   | GENERATION | PLAN_VERSION| ROUTE_COUNT | NODE_COUNT | route flags [ROUTE_COUNT] | node flags [NODE_COUNT]   |
 *   +------------+-------------+-------------+------------+------------------------+------------------------------+
 *   0            1             2             3            HEADER_SLOTS             HEADER_SLOTS + ROUTE_COUNT
 *
 * GENERATION counts changes (admin reads, tests); flags are FLAG_OFF or FLAG_ON. Writers are the control plane only.
 */
export const GENERATION = 0;
export const PLAN_VERSION = 1;
export const ROUTE_COUNT = 2;
export const NODE_COUNT = 3;
export const HEADER_SLOTS = 4;

export const FLAG_OFF = 0;
/** a route flag: the route answers 503 NG_ERR_ROUTE_DISABLED; a node flag: the balancer skips the node */
export const FLAG_ON = 1;

/** The cell of a route's "disabled" flag. */
export function routeCell(routeId: number): number {
  return HEADER_SLOTS + routeId;
}

/** First global node index of each upstream, in plan order (nodeBases[u] + i is node i of upstream u). */
export function nodeBases(plan: Pick<Plan, 'upstreams'>): number[] {
  const bases: number[] = [];
  let n = 0;
  for (const u of plan.upstreams) {
    bases.push(n);
    n += u.nodes.length;
  }
  return bases;
}

function sizes(plan: Pick<Plan, 'routes' | 'upstreams'>): { routes: number; nodes: number } {
  let routes = 0;
  for (const r of plan.routes) routes = Math.max(routes, r.id + 1);
  let nodes = 0;
  for (const u of plan.upstreams) nodes += u.nodes.length;
  return { routes, nodes };
}

/**
 * The worker's view of a plan's region. A plan without one (unit tests that compile a plan and build a Runtime
 * directly) gets a private all-off array of the same layout, so the hot path never tests for its absence.
 */
export function flagCells(plan: Plan): Int32Array {
  if (plan.adminFlags) return new Int32Array(plan.adminFlags);
  const { routes, nodes } = sizes(plan);
  const cells = new Int32Array(HEADER_SLOTS + routes + nodes);
  cells[PLAN_VERSION] = plan.version;
  cells[ROUTE_COUNT] = routes;
  cells[NODE_COUNT] = nodes;
  return cells;
}

/** The cell of node 0 of an upstream whose first global node index is `upstreamBase` (node i is at + i). */
export function nodeCellBase(cells: Int32Array, upstreamBase: number): number {
  return HEADER_SLOTS + cells[ROUTE_COUNT] + upstreamBase;
}

/** Switches by name: what survives from one plan to the next. */
export interface AdminSwitches {
  /** route names */
  readonly disabledRoutes: Set<string>;
  /** upstream name -> node URLs */
  readonly drainedNodes: Map<string, Set<string>>;
}

/** Control-plane side of one plan's region. */
export class AdminFlags {
  readonly buffer: SharedArrayBuffer;
  readonly #cells: Int32Array;
  readonly routeCount: number;
  readonly nodeCount: number;

  constructor(plan: Pick<Plan, 'version' | 'routes' | 'upstreams'>) {
    const { routes, nodes } = sizes(plan);
    this.routeCount = routes;
    this.nodeCount = nodes;
    this.buffer = new SharedArrayBuffer((HEADER_SLOTS + routes + nodes) * Int32Array.BYTES_PER_ELEMENT);
    this.#cells = new Int32Array(this.buffer);
    this.#cells[PLAN_VERSION] = plan.version;
    this.#cells[ROUTE_COUNT] = routes;
    this.#cells[NODE_COUNT] = nodes;
  }

  /**
   * A region for `plan` with the switches applied by name. Names the plan no longer has are dropped from
   * `switches`, so a route that comes back later starts enabled.
   */
  static forPlan(plan: Pick<Plan, 'version' | 'routes' | 'upstreams'>, switches: AdminSwitches): AdminFlags {
    const flags = new AdminFlags(plan);
    const routeNames = new Set<string>();
    for (const r of plan.routes) {
      routeNames.add(r.name);
      if (switches.disabledRoutes.has(r.name)) flags.setRoute(r.id, true);
    }
    for (const name of [...switches.disabledRoutes]) if (!routeNames.has(name)) switches.disabledRoutes.delete(name);
    const bases = nodeBases(plan);
    const kept = new Map<string, Set<string>>();
    plan.upstreams.forEach((u, ui) => {
      const drained = switches.drainedNodes.get(u.name);
      if (!drained) return;
      const still = new Set<string>();
      u.nodes.forEach((n, i) => {
        if (drained.has(n.url)) {
          flags.setNode(bases[ui] + i, true);
          still.add(n.url);
        }
      });
      if (still.size) kept.set(u.name, still);
    });
    switches.drainedNodes.clear();
    for (const [k, v] of kept) switches.drainedNodes.set(k, v);
    return flags;
  }

  setRoute(routeId: number, on: boolean): void {
    Atomics.store(this.#cells, HEADER_SLOTS + routeId, on ? FLAG_ON : FLAG_OFF);
    Atomics.add(this.#cells, GENERATION, 1);
  }

  setNode(globalNode: number, on: boolean): void {
    Atomics.store(this.#cells, HEADER_SLOTS + this.routeCount + globalNode, on ? FLAG_ON : FLAG_OFF);
    Atomics.add(this.#cells, GENERATION, 1);
  }

  routeDisabled(routeId: number): boolean {
    return Atomics.load(this.#cells, HEADER_SLOTS + routeId) === FLAG_ON;
  }

  nodeDrained(globalNode: number): boolean {
    return Atomics.load(this.#cells, HEADER_SLOTS + this.routeCount + globalNode) === FLAG_ON;
  }

  get generation(): number {
    return Atomics.load(this.#cells, GENERATION);
  }
}

import type pino from 'pino';
import type { Plan } from '../config/plan.js';
import { createDiscoverySource } from '../discovery/index.js';
import type { DiscoveredNode, DiscoverySource, DiscoveryStatus } from '../discovery/source.js';

/** Quiet time after a discovery change before the node sets are applied (several sources often move at once). */
const SETTLE_MS = 100;

/**
 * Runs the discovery source of every upstream that has one (src/discovery/), on the control plane, and keeps the
 * last node set each one handed on. A change is applied like a config reload (compile with the discovered nodes,
 * then the two-step swap on every worker), so discovered nodes get the same health checks, outlier detection and
 * balancing as static ones, and a node set that stays the same keeps its shared health state. A source that fails,
 * times out or answers garbage hands on nothing: the last good set keeps serving.
 */
export class DiscoveryManager {
  readonly #log: pino.Logger;
  readonly #onChange: () => void;
  readonly #sources = new Map<string, { key: string; source: DiscoverySource }>();
  /** upstream name -> the last set its source handed on */
  readonly discovered = new Map<string, readonly DiscoveredNode[]>();
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  constructor(log: pino.Logger, onChange: () => void) {
    this.#log = log;
    this.#onChange = onChange;
  }

  /** Starts, keeps or stops sources to match a plan (a source whose config did not change keeps running). */
  update(plan: Plan): void {
    if (this.#stopped) return;
    const wanted = new Set<string>();
    for (const u of plan.upstreams) {
      if (u.discovery === null) continue;
      wanted.add(u.name);
      const key = JSON.stringify(u.discovery);
      const have = this.#sources.get(u.name);
      if (have && have.key === key) continue;
      if (have) void have.source.stop();
      this.discovered.delete(u.name);
      const source = createDiscoverySource(u.discovery, this.#log.child({ upstream: u.name }));
      this.#sources.set(u.name, { key, source });
      source.start((nodes) => {
        if (this.#sources.get(u.name)?.source !== source) return;
        this.discovered.set(u.name, nodes);
        this.#schedule();
      });
    }
    for (const [name, s] of this.#sources) {
      if (wanted.has(name)) continue;
      void s.source.stop();
      this.#sources.delete(name);
      this.discovered.delete(name);
    }
  }

  status(): Record<string, DiscoveryStatus> {
    const out: Record<string, DiscoveryStatus> = {};
    for (const [name, s] of this.#sources) out[name] = s.source.status();
    return out;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await Promise.all([...this.#sources.values()].map((s) => s.source.stop()));
    this.#sources.clear();
  }

  #schedule(): void {
    if (this.#timer !== null || this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#onChange();
    }, SETTLE_MS);
    this.#timer.unref();
  }
}

/**
 * Per-worker objects (a verifier with its token cache, an introspector with its answer cache) shared by every route
 * whose method settings are identical, keyed by the digest of those settings.
 *
 * Lifetime follows the plans: `plan` is the plan's `services` object, one per plan and worker (plans arrive by
 * structured clone). An object used by the new plan is carried over from the previous one, so a reload that does not
 * touch a method's settings keeps its cache warm. Objects that neither the current nor the previous plan used are
 * dropped when a new plan shows up, so editing settings again and again does not pile up caches (each may hold up to
 * 16 MiB of tokens). Routes of an old plan still serving keep their own reference; they only stop sharing.
 */
export class SettingsRegistry<T> {
  readonly #entries = new Map<string, { value: T; plan: object }>();
  #current: object | null = null;
  #previous: object | null = null;

  get size(): number {
    return this.#entries.size;
  }

  get(id: string, plan: object, make: () => T): T {
    if (plan !== this.#current) {
      this.#previous = this.#current;
      this.#current = plan;
      for (const [key, e] of this.#entries) if (e.plan !== plan && e.plan !== this.#previous) this.#entries.delete(key);
    }
    let e = this.#entries.get(id);
    if (e === undefined) {
      e = { value: make(), plan };
      this.#entries.set(id, e);
    } else e.plan = plan;
    return e.value;
  }
}

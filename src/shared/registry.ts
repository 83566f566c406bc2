/**
 * SharedArrayBuffers by key, owned by the control plane. A reload that asks for the same key and size gets the same
 * memory back, so counters and buckets keep their state across config versions.
 */
export class SharedRegistry {
  readonly #buffers = new Map<string, SharedArrayBuffer>();
  #used = new Set<string>();

  get(key: string, bytes: number): SharedArrayBuffer {
    this.#used.add(key);
    const have = this.#buffers.get(key);
    if (have && have.byteLength === bytes) return have;
    const sab = new SharedArrayBuffer(bytes);
    this.#buffers.set(key, sab);
    return sab;
  }

  /** Whether a buffer is kept under this key (a get() would return existing memory). */
  has(key: string): boolean {
    return this.#buffers.has(key);
  }

  /** Kept buffers whose key starts with `prefix`, newest last (to carry state into a buffer of a new key). */
  withPrefix(prefix: string): [string, SharedArrayBuffer][] {
    return [...this.#buffers].filter(([k]) => k.startsWith(prefix));
  }

  /** Forget buffers the last compile did not ask for (after a plan was applied). */
  collect(): void {
    for (const key of this.#buffers.keys()) if (!this.#used.has(key)) this.#buffers.delete(key);
    this.#used = new Set();
  }
}

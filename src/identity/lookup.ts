import { CONSUMERS_SERVICE, type ConsumerLookup } from './consumers.js';
import { ConsumerTable, buildConsumerTable } from './table.js';

/**
 * A worker's ConsumerLookup. It holds the plan's `services` object, not a table: the worker replaces
 * services[CONSUMERS_SERVICE] when the control plane swaps in a new table, and the next call here notices the new
 * buffer (one property read and one comparison) and reads from it. Policies keep the object they got in create().
 */
class ConsumerDirectory implements ConsumerLookup {
  readonly #services: Record<string, unknown>;
  #sab: unknown = undefined;
  #table: ConsumerTable | null = null;

  constructor(services: Record<string, unknown>) {
    this.#services = services;
  }

  /** The current table (follows swaps). */
  current(): ConsumerTable {
    const sab = this.#services[CONSUMERS_SERVICE];
    if (sab !== this.#sab || this.#table === null) {
      this.#sab = sab;
      this.#table = sab instanceof SharedArrayBuffer ? new ConsumerTable(sab) : EMPTY_TABLE;
    }
    return this.#table;
  }

  get generation(): number {
    return this.current().generation;
  }
  get table(): object {
    return this.current();
  }
  byKeyDigest(digest: Uint8Array): number {
    return this.current().byKeyDigest(digest);
  }
  byJwt(issuer: string, subject: string): number {
    return this.current().byJwt(issuer, subject);
  }
  byId(id: string): number {
    return this.current().byId(id);
  }
  record(index: number) {
    return this.current().record(index);
  }
  id(index: number): string {
    return this.current().id(index);
  }
  plan(index: number): string | null {
    return this.current().plan(index);
  }
  scopes(index: number): readonly string[] {
    return this.current().scopes(index);
  }
  roles(index: number): readonly string[] {
    return this.current().roles(index);
  }
  subscribed(index: number, api: string, environment?: string): boolean {
    return this.current().subscribed(index, api, environment);
  }
  allowsIp(index: number, ip: string): boolean {
    return this.current().allowsIp(index, ip);
  }
}

/** Served when the plan's entry is not a table (never in a running gateway: compile always puts one there). */
const EMPTY_TABLE = new ConsumerTable(buildConsumerTable([], -1));

const directories = new WeakMap<object, ConsumerDirectory>();

/**
 * The worker's view of the current consumer table, for policies to call in create(); null when the plan carries no
 * consumer service at all. Every policy of one plan gets the same object (and so shares its decoded-string cache).
 */
export function consumerLookup(services: Record<string, unknown>): ConsumerLookup | null {
  if (!(CONSUMERS_SERVICE in services)) return null;
  let d = directories.get(services);
  if (d === undefined) {
    d = new ConsumerDirectory(services);
    directories.set(services, d);
  }
  return d;
}

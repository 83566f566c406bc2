import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { Type } from '@sinclair/typebox';
import { parse as parseYaml } from 'yaml';
import type { Logger } from 'pino';
import type { FileDiscoveryConfig } from './schema.js';
import { NodeSetKeeper, SourceTimer, reasonOf, type DiscoveredNode, type DiscoverySource, type DiscoveryStatus } from './source.js';

/**
 * Nodes from a JSON or YAML file:
 *
 *   nodes:
 *     - { host: 10.0.0.1, port: 8080 }
 *     - { host: 10.0.0.2, port: 8080, weight: 3, zone: b }
 *
 * (or the bare list). The file's directory is watched (fs.watch), so a write-and-rename by an editor or a deploy tool
 * is seen; events are debounced, and the file is also stat'ed every pollSeconds for file systems that drop events
 * (NFS, some container mounts).
 *
 * A half-written file must not shrink the upstream: a read is trusted only when the file's size and mtime are the same
 * before and after it (otherwise it is read again once quiet), and content that does not parse or validate is refused
 * whole. A YAML list cut exactly at a line end still parses, which no check can tell from a real edit: write the file
 * elsewhere and rename it over the old one (atomic), or use JSON, where a cut always fails to parse.
 */

const NodeEntry = Type.Object(
  {
    host: Type.String({ minLength: 1, maxLength: 253 }),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    // Optional, not a schema default: Ajv fills no defaults inside a union (anyOf)
    weight: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    zone: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  },
  { additionalProperties: false },
);
export const NodesDocumentSchema = Type.Union([
  Type.Object({ nodes: Type.Array(NodeEntry, { minItems: 1, maxItems: 10_000 }) }, { additionalProperties: false }),
  Type.Array(NodeEntry, { minItems: 1, maxItems: 10_000 }),
]);

let validateDocument: ValidateFunction | null = null;

/** Parses a nodes document; throws with a reason (and no file content beyond the failing path) when it is invalid. */
export function parseNodesDocument(text: string): DiscoveredNode[] {
  if (text.trim() === '') throw new Error('the file is empty');
  let doc: unknown;
  const first = text.trimStart()[0];
  try {
    doc = first === '{' || first === '[' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new Error(`not valid ${first === '{' || first === '[' ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`);
  }
  validateDocument ??= new Ajv({ allErrors: false, useDefaults: true, strict: false }).compile(NodesDocumentSchema);
  if (!validateDocument(doc)) {
    // The union's second branch (the bare list) explains an object badly: report the first branch's error for objects.
    const errors = validateDocument.errors ?? [];
    const e = errors.find((x) => x.keyword !== 'anyOf' && (Array.isArray(doc) ? x.schemaPath.startsWith('#/anyOf/1') : x.schemaPath.startsWith('#/anyOf/0'))) ?? errors[0];
    const key = e?.keyword === 'additionalProperties' ? ` "${(e.params as { additionalProperty: string }).additionalProperty}"` : '';
    throw new Error(`${e?.instancePath || '/'} ${e?.message ?? 'is invalid'}${key}`);
  }
  const list = (Array.isArray(doc) ? doc : (doc as { nodes: unknown[] }).nodes) as { host: string; port: number; weight?: number; zone?: string }[];
  return list.map((e) => (e.zone === undefined ? { host: e.host, port: e.port, weight: e.weight ?? 1 } : { host: e.host, port: e.port, weight: e.weight ?? 1, zone: e.zone }));
}

export class FileSource implements DiscoverySource {
  readonly #config: FileDiscoveryConfig;
  readonly #keeper: NodeSetKeeper;
  readonly #debounce = new SourceTimer();
  #watcher: FSWatcher | null = null;
  #poll: NodeJS.Timeout | null = null;
  #reading: Promise<void> | null = null;
  #again = false;
  #lastDigest = '';
  #lastSignature = '';
  #started = false;

  constructor(config: FileDiscoveryConfig, logger: Logger) {
    this.#config = config;
    this.#keeper = new NodeSetKeeper(`file:${config.path}`, logger);
  }

  start(onNodes: (nodes: readonly DiscoveredNode[]) => void): void {
    if (this.#started) throw new Error('a discovery source starts once');
    this.#started = true;
    this.#keeper.attach(onNodes);
    try {
      const name = basename(this.#config.path);
      this.#watcher = watch(dirname(this.#config.path), { persistent: false }, (_event, file) => {
        if (file === null || file === name) this.#soon();
      });
      this.#watcher.on('error', () => {
        // The directory went away or the platform gave up: the poll still works.
        this.#watcher?.close();
        this.#watcher = null;
      });
    } catch {
      /* no watch support (or no directory yet): the poll still works */
    }
    this.#poll = setInterval(() => void this.#check(), this.#config.pollSeconds * 1000);
    this.#poll.unref();
    void this.#read();
  }

  async stop(): Promise<void> {
    this.#debounce.stop();
    this.#keeper.detach();
    this.#watcher?.close();
    this.#watcher = null;
    if (this.#poll) clearInterval(this.#poll);
    this.#poll = null;
    await this.#reading;
  }

  status(): DiscoveryStatus {
    return this.#keeper.status();
  }

  #soon(): void {
    this.#debounce.set(this.#config.debounceMs, () => void this.#read());
  }

  /** The poll: reads when the file's identity, size or mtime changed since the last read. */
  async #check(): Promise<void> {
    if ((await signature(this.#config.path)) !== this.#lastSignature) await this.#read();
  }

  /** One read at a time; a change seen during a read triggers one more read after it. */
  #read(): Promise<void> {
    if (this.#reading) {
      this.#again = true;
      return this.#reading;
    }
    this.#reading = (async () => {
      do {
        this.#again = false;
        await this.#readOnce();
      } while (this.#again && !this.#debounce.stopped);
      this.#reading = null;
    })();
    return this.#reading;
  }

  async #readOnce(): Promise<void> {
    if (this.#debounce.stopped) return;
    const path = this.#config.path;
    const before = await signature(path);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      this.#lastSignature = before;
      this.#lastDigest = '';
      if (!this.#debounce.stopped) this.#keeper.reject(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? reasonOf(err)}`);
      return;
    }
    const after = await signature(path);
    if (this.#debounce.stopped) return;
    if (after !== before) {
      // Still being written: look again once it is quiet. The poll's next check sees the new signature anyway.
      this.#soon();
      return;
    }
    this.#lastSignature = after;
    const digest = createHash('sha256').update(text).digest('hex');
    if (digest === this.#lastDigest) return;
    this.#lastDigest = digest;
    let nodes: DiscoveredNode[];
    try {
      nodes = parseNodesDocument(text);
    } catch (err) {
      this.#keeper.reject(`${path}: ${reasonOf(err)}`);
      return;
    }
    this.#keeper.accept(nodes);
  }
}

async function signature(path: string): Promise<string> {
  try {
    const s = await stat(path);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch (err) {
    return `missing:${(err as NodeJS.ErrnoException).code ?? ''}`;
  }
}

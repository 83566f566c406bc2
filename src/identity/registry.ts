import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { Ajv } from 'ajv';
import { redactUrl } from '../config/secrets.js';
import { parse as parseYaml } from 'yaml';
import type { ConfigIssue } from '../config/errors.js';
import { normalizeConsumers } from './normalize.js';
import { RegistryDocumentSchema, type ConsumerConfig } from './schema.js';
import { buildConsumerTable, type ConsumerSpec } from './table.js';

/**
 * Consumer registry sources on the control plane: a watched file, or a URL polled with ETag / If-None-Match. A source
 * only fetches text; the service parses it (parseRegistryDocument) and decides whether to swap tables.
 */

let validateDocument: ReturnType<Ajv['compile']> | null = null;

/** Parses and checks a registry document (JSON, or YAML when it does not look like JSON). Throws with a reason. */
export function parseRegistryDocument(text: string, origin: string): ConsumerSpec[] {
  let doc: unknown;
  const first = text.trimStart()[0];
  try {
    // JSON.parse is an order of magnitude faster than a YAML parser on a 100,000-consumer document.
    doc = first === '{' || first === '[' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new Error(`${origin}: not valid JSON or YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (Array.isArray(doc)) doc = { consumers: doc };
  validateDocument ??= new Ajv({ allErrors: false, useDefaults: true, strict: false }).compile(RegistryDocumentSchema);
  if (!validateDocument(doc)) {
    const e = validateDocument.errors![0];
    throw new Error(`${origin}: ${e.instancePath || '/'} ${e.message ?? 'is invalid'}`);
  }
  const issues: ConfigIssue[] = [];
  const specs = normalizeConsumers((doc as { consumers: ConsumerConfig[] }).consumers, 'consumers', issues, { paths: false });
  if (issues.length) {
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
    throw new Error(`${origin}: ${issues[0].path}: ${issues[0].message}${more}`);
  }
  return specs;
}

/**
 * A registry document as its own table (the compact form the control plane keeps between versions). Duplicate ids,
 * keys and JWT mappings are refused here, by the build.
 */
export function registryTable(text: string, origin: string): { table: SharedArrayBuffer; specs: ConsumerSpec[] } {
  const specs = parseRegistryDocument(text, origin);
  try {
    return { table: buildConsumerTable(specs), specs };
  } catch (err) {
    throw new Error(`${origin}: ${(err as Error).message}`);
  }
}

/**
 * Several registry documents (e.g. the keys under an etcd prefix) as one table: their consumers in the order given.
 * A consumer id, key or JWT mapping used twice, also across documents, is refused by the build.
 */
export function registryTableOf(docs: readonly { text: string; origin: string }[], origin: string): { table: SharedArrayBuffer; specs: ConsumerSpec[] } {
  if (docs.length === 1) return registryTable(docs[0].text, docs[0].origin);
  const specs = docs.flatMap((d) => parseRegistryDocument(d.text, d.origin));
  try {
    return { table: buildConsumerTable(specs), specs };
  } catch (err) {
    throw new Error(`${origin}: ${(err as Error).message}`);
  }
}

export interface RegistrySource {
  /** where the consumers come from, for logs and status */
  readonly location: string;
  /** fetches once now (resolves when done, successful or not), then keeps watching or polling */
  start(): Promise<void>;
  stop(): void;
}

/** What a source reports to its owner. */
export interface RegistrySink {
  /** a new version of the document (text); throwing refuses it */
  update(text: string, origin: string): void;
  /** a new version made of several documents, taken together (throwing refuses it) */
  updateDocuments(docs: readonly { text: string; origin: string }[], origin: string): void;
  /** the source could not be read; the current table keeps serving */
  unavailable(reason: string): void;
}

/**
 * A file, watched (inotify and the like through fs.watch on its directory, so an editor's write-and-rename is seen)
 * and also re-checked every interval in case the platform drops watch events. Unchanged content is not reloaded.
 */
export class FileSource implements RegistrySource {
  readonly location: string;
  readonly #sink: RegistrySink;
  readonly #intervalMs: number;
  #watcher: FSWatcher | null = null;
  #timer: NodeJS.Timeout | null = null;
  #debounce: NodeJS.Timeout | null = null;
  #lastDigest = '';
  #lastMtime = -1;
  #reading: Promise<void> | null = null;
  #again = false;
  #stopped = false;

  constructor(file: string, intervalSeconds: number, sink: RegistrySink) {
    this.location = file;
    this.#sink = sink;
    this.#intervalMs = Math.max(50, intervalSeconds * 1000);
  }

  async start(): Promise<void> {
    await this.#read();
    if (this.#stopped) return;
    try {
      const name = basename(this.location);
      this.#watcher = watch(dirname(this.location), (_event, file) => {
        if (file === null || file === name) this.#soon();
      });
      this.#watcher.on('error', () => {});
      this.#watcher.unref();
    } catch {
      /* no watch support: the periodic check still works */
    }
    this.#timer = setInterval(() => void this.#check(), this.#intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    this.#watcher?.close();
    if (this.#timer) clearInterval(this.#timer);
    if (this.#debounce) clearTimeout(this.#debounce);
  }

  #soon(): void {
    // Editors and `cp` produce several events per save; read once they settle.
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => void this.#read(), 50);
    this.#debounce.unref();
  }

  async #check(): Promise<void> {
    try {
      const s = await stat(this.location);
      if (s.mtimeMs !== this.#lastMtime) await this.#read();
    } catch {
      await this.#read();
    }
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
      } while (this.#again && !this.#stopped);
      this.#reading = null;
    })();
    return this.#reading;
  }

  async #readOnce(): Promise<void> {
    if (this.#stopped) return;
    let text: string;
    try {
      const s = await stat(this.location);
      this.#lastMtime = s.mtimeMs;
      text = await readFile(this.location, 'utf8');
    } catch (err) {
      this.#sink.unavailable(`cannot read ${this.location}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      return;
    }
    const digest = createHash('sha256').update(text).digest('hex');
    if (digest === this.#lastDigest || this.#stopped) return;
    try {
      this.#sink.update(text, this.location);
      this.#lastDigest = digest;
    } catch {
      // Refused (the sink logged why). Keep its digest so that the same bad text is not parsed and logged again on
      // every re-check; the next change to the file is read.
      this.#lastDigest = digest;
    }
  }
}

/** A URL polled every interval with If-None-Match; a 304 costs the registry nothing and changes nothing here. */
export class UrlSource implements RegistrySource {
  /** the URL as logs and the admin API show it: without the password of its userinfo */
  readonly location: string;
  readonly #url: string;
  readonly #sink: RegistrySink;
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #headers: Record<string, string>;
  #etag: string | null = null;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;
  #controller: AbortController | null = null;

  constructor(url: string, intervalSeconds: number, timeoutMs: number, headers: Record<string, string> | undefined, sink: RegistrySink) {
    this.#url = url;
    this.location = redactUrl(url);
    this.#sink = sink;
    this.#intervalMs = Math.max(50, intervalSeconds * 1000);
    this.#timeoutMs = timeoutMs;
    this.#headers = { accept: 'application/json, application/yaml;q=0.9', ...(headers ?? {}) };
  }

  get etag(): string | null {
    return this.#etag;
  }

  async start(): Promise<void> {
    await this.#poll();
  }

  stop(): void {
    this.#stopped = true;
    this.#controller?.abort();
    if (this.#timer) clearTimeout(this.#timer);
  }

  async #poll(): Promise<void> {
    if (this.#stopped) return;
    try {
      await this.#fetchOnce();
    } finally {
      if (!this.#stopped) {
        this.#timer = setTimeout(() => void this.#poll(), this.#intervalMs);
        this.#timer.unref();
      }
    }
  }

  async #fetchOnce(): Promise<void> {
    const headers = this.#etag === null ? this.#headers : { ...this.#headers, 'if-none-match': this.#etag };
    const controller = (this.#controller = new AbortController());
    const timer = setTimeout(() => controller.abort(), this.#timeoutMs);
    let text: string;
    let etag: string | null;
    try {
      const res = await fetch(this.#url, { headers, signal: controller.signal, redirect: 'follow' });
      if (res.status === 304) {
        await res.body?.cancel();
        return;
      }
      if (res.status !== 200) {
        await res.body?.cancel();
        this.#sink.unavailable(`${this.location} answered ${res.status}`);
        return;
      }
      text = await res.text();
      etag = res.headers.get('etag');
    } catch (err) {
      if (!this.#stopped) this.#sink.unavailable(`cannot fetch ${this.location}: ${(err as Error).name === 'AbortError' ? `no answer within ${this.#timeoutMs} ms` : redactUrl((err as Error).message)}`);
      return;
    } finally {
      clearTimeout(timer);
      this.#controller = null;
    }
    if (this.#stopped) return;
    try {
      this.#sink.update(text, this.location);
      this.#etag = etag;
    } catch {
      // Refused: keep the old ETag, so the next poll fetches the body again (the registry may have fixed it).
    }
  }
}

import { request, Agent, type IncomingMessage } from 'node:http';

/**
 * A small etcd v3 client over etcd's own JSON gateway (grpc-gateway, served on the client port since 3.3 at /v3/):
 * range, txn and a streaming watch, each a POST with JSON bodies where keys and values are base64 and int64 numbers
 * are strings. Chosen over the `etcd3` package (gRPC through @grpc/grpc-js and protobuf loading): the gateway needs
 * four endpoints, node:http does them with no dependency, and a watch is one long HTTP/1.1 response that is easy to
 * time out, abort and restart from a known revision.
 *
 * Endpoints are tried in order; the first that answers is kept until it fails. Plain http only (a TLS etcd is a
 * later addition: node:https with the same code).
 */

export interface EtcdKv {
  key: string;
  value: string;
  modRevision: number;
}

export interface EtcdEvent {
  type: 'PUT' | 'DELETE';
  kv: EtcdKv;
}

/** One message of a watch stream. */
export interface WatchMessage {
  /** the store revision when etcd sent it */
  revision: number;
  created: boolean;
  canceled: boolean;
  /** set when the watch asked for a revision that was compacted: re-list, then watch from the list's revision */
  compactRevision: number;
  events: EtcdEvent[];
}

export class EtcdError extends Error {
  override readonly name = 'EtcdError';
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString('utf8') : '');

/** The range_end that makes a range cover every key starting with `prefix` (etcd's prefix rule: last byte + 1). */
export function prefixEnd(prefix: string): string {
  const buf = Buffer.from(prefix, 'utf8');
  for (let i = buf.length - 1; i >= 0; i--) {
    if (buf[i] < 0xff) {
      const end = Buffer.from(buf.subarray(0, i + 1));
      end[i]++;
      return end.toString('base64');
    }
  }
  return Buffer.from([0]).toString('base64');
}

interface RawKv { key?: string; value?: string; mod_revision?: string }

function kvOf(raw: RawKv): EtcdKv {
  return { key: unb64(raw.key), value: unb64(raw.value), modRevision: Number(raw.mod_revision ?? 0) };
}

export class EtcdClient {
  readonly endpoints: readonly URL[];
  #current = 0;
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 4 });

  constructor(endpoints: readonly string[]) {
    if (endpoints.length === 0) throw new EtcdError('no etcd endpoint');
    this.endpoints = endpoints.map((e) => new URL(e));
  }

  /** Every key under `prefix` with its value, and the store revision they were read at. */
  async rangePrefix(prefix: string, timeoutMs: number, keysOnly = false): Promise<{ revision: number; kvs: EtcdKv[] }> {
    const body = await this.#call('/v3/kv/range', { key: b64(prefix), range_end: prefixEnd(prefix), ...(keysOnly ? { keys_only: true } : {}) }, timeoutMs);
    const kvs = ((body.kvs as RawKv[] | undefined) ?? []).map(kvOf);
    return { revision: Number((body.header as { revision?: string } | undefined)?.revision ?? 0), kvs };
  }

  /** Puts `puts` and deletes `deletes` in one transaction; the revision it made. */
  async txn(puts: readonly { key: string; value: string }[], deletes: readonly string[], timeoutMs: number): Promise<number> {
    const success = [
      ...puts.map((p) => ({ request_put: { key: b64(p.key), value: b64(p.value) } })),
      ...deletes.map((k) => ({ request_delete_range: { key: b64(k) } })),
    ];
    const body = await this.#call('/v3/kv/txn', { compare: [], success }, timeoutMs);
    return Number((body.header as { revision?: string } | undefined)?.revision ?? 0);
  }

  /** Compacts the store history up to `revision` (tests and the chaos script: a watch from before it is refused). */
  async compact(revision: number, timeoutMs: number): Promise<void> {
    await this.#call('/v3/kv/compaction', { revision: String(revision), physical: true }, timeoutMs);
  }

  /**
   * Watches every key under `prefix` from `startRevision` (inclusive), with progress notifications. `onMessage` is
   * called per message; the promise settles when the stream ends (resolve) or fails (reject). abort() ends it.
   */
  watch(prefix: string, startRevision: number, onMessage: (m: WatchMessage) => void, signal: AbortSignal): Promise<void> {
    const create = { create_request: { key: b64(prefix), range_end: prefixEnd(prefix), start_revision: String(startRevision), progress_notify: true } };
    return new Promise((resolve, reject) => {
      const url = this.#url('/v3/watch');
      const req = request(url, { method: 'POST', agent: false, signal, headers: { 'content-type': 'application/json' } }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return reject(new EtcdError(`watch answered ${res.statusCode}`));
        }
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          // grpc-gateway writes one JSON object per message, each followed by a newline
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (!line) continue;
            let parsed: { result?: Record<string, unknown>; error?: { message?: string } };
            try {
              parsed = JSON.parse(line);
            } catch {
              req.destroy(new EtcdError('watch stream sent something that is not JSON'));
              return;
            }
            if (parsed.error) {
              req.destroy(new EtcdError(`watch failed: ${parsed.error.message ?? 'unknown error'}`));
              return;
            }
            const r = parsed.result ?? {};
            onMessage({
              revision: Number((r.header as { revision?: string } | undefined)?.revision ?? 0),
              created: r.created === true,
              canceled: r.canceled === true,
              compactRevision: Number(r.compact_revision ?? 0),
              events: ((r.events as { type?: string; kv?: RawKv }[] | undefined) ?? []).map((e) => ({ type: e.type === 'DELETE' ? 'DELETE' : 'PUT', kv: kvOf(e.kv ?? {}) })),
            });
          }
        });
        res.on('end', () => resolve());
        res.on('error', reject);
        res.on('aborted', () => reject(new EtcdError('watch stream aborted')));
      });
      req.on('error', (err) => {
        this.#failed(url);
        reject(err);
      });
      req.end(JSON.stringify(create));
    });
  }

  close(): void {
    this.#agent.destroy();
  }

  #url(path: string): URL {
    return new URL(path, this.endpoints[this.#current]);
  }

  /** The endpoint at `url` failed: the next call tries the next one. */
  #failed(url: URL): void {
    if (this.endpoints.length > 1 && this.endpoints[this.#current].host === url.host) this.#current = (this.#current + 1) % this.endpoints.length;
  }

  #call(path: string, payload: unknown, timeoutMs: number): Promise<Record<string, unknown>> {
    const url = this.#url(path);
    return new Promise((resolve, reject) => {
      const req = request(url, { method: 'POST', agent: this.#agent, timeout: timeoutMs, headers: { 'content-type': 'application/json' } }, (res: IncomingMessage) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let body: Record<string, unknown>;
          try {
            body = JSON.parse(text || '{}');
          } catch {
            return reject(new EtcdError(`${path} answered ${res.statusCode} with a body that is not JSON`));
          }
          if (res.statusCode !== 200) return reject(new EtcdError(`${path} answered ${res.statusCode}: ${String(body.message ?? body.error ?? '')}`));
          resolve(body);
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new EtcdError(`${path}: no answer within ${timeoutMs} ms`)));
      req.on('error', (err) => {
        this.#failed(url);
        reject(err instanceof EtcdError ? err : new EtcdError(`${url.host}: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
      });
      req.end(JSON.stringify(payload));
    });
  }
}

import type { BodySink, PolicyContext, ResponseBodyFilter } from '../../pipeline/policy.js';
import type { Removal } from './remove.js';

/**
 * Adds the errors of removed fields (fieldAuth.mode: remove) to the upstream's GraphQL response: the body (JSON, at
 * most maxBytes, not encoded) is held whole, its `errors` array extended (or made), and written with a
 * Content-Length. A body this filter cannot read (not JSON, encoded, too large) passes unchanged: the data is still
 * right, only the errors are missing, and the response header `graphql-fields-removed` (set for every such response)
 * still tells the client how many fields were taken out. Opened only for a request whose operation lost fields.
 */
export class RemovedFieldsFilter implements ResponseBodyFilter {
  readonly changesLength = true;
  readonly holdsHead = true;
  readonly #removal: Removal;
  readonly #maxBytes: number;
  #parts: Buffer[] | null = [];
  #bytes = 0;

  constructor(removal: Removal, maxBytes: number) {
    this.#removal = removal;
    this.#maxBytes = maxBytes;
  }

  onChunk(chunk: Buffer, sink: BodySink): boolean {
    const parts = this.#parts;
    if (parts === null) {
      sink.push(chunk);
      return true;
    }
    this.#bytes += chunk.length;
    if (this.#bytes > this.#maxBytes) {
      // too large to rewrite: what was held goes on, then the rest as it comes
      this.#parts = null;
      for (const p of parts) sink.push(p);
      sink.push(chunk);
      return true;
    }
    // the chunk is the read buffer's memory, valid during this call only
    parts.push(Buffer.from(chunk));
    return true;
  }

  onEnd(sink: BodySink): void {
    const parts = this.#parts;
    if (parts === null) {
      sink.end();
      return;
    }
    this.#parts = null;
    const body = parts.length === 1 ? parts[0] : Buffer.concat(parts, this.#bytes);
    sink.last(withErrors(body, this.#removal.errors));
  }

  onClose(): void {
    this.#parts = null;
  }
}

/** The response with the errors added; the body unchanged when it is not a JSON object. */
export function withErrors(body: Buffer, errors: string): Buffer {
  let o: unknown;
  try {
    o = JSON.parse(body.toString('utf8'));
  } catch {
    return body;
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return body;
  const r = o as Record<string, unknown>;
  const ours = JSON.parse(`[${errors}]`) as unknown[];
  r.errors = Array.isArray(r.errors) ? [...r.errors, ...ours] : ours;
  return Buffer.from(JSON.stringify(r));
}

/** Opens the filter for a response of a request that lost fields (JSON, not encoded); null otherwise. */
export function openRemovedFields(ctx: PolicyContext, removal: Removal, maxBytes: number): RemovedFieldsFilter | null {
  ctx.addResponseHeader('graphql-fields-removed', String(removal.count));
  const type = ctx.responseHeader('content-type');
  if (type === undefined || !/^application\/(graphql-response\+)?json/i.test(type.trim())) return null;
  const coding = ctx.responseHeader('content-encoding');
  if (coding !== undefined && coding.trim().toLowerCase() !== 'identity') return null;
  if (ctx.responseLength > maxBytes) return null;
  return new RemovedFieldsFilter(removal, maxBytes);
}

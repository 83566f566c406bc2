import { BodyProgram, type ProgramConfig } from './program.js';

/**
 * One body through a program: parse, apply, serialise. The same function runs on the worker's event loop and in the
 * pool (pool-worker.ts). It never throws on any input: a body that does not parse comes back as BAD_JSON and nothing
 * of a partial transform escapes (the result is serialised only after the whole program ran).
 */
export const BAD_JSON = 1;
export type BodyKind = 'json' | 'text';

export function transformBody(program: BodyProgram, kind: BodyKind, body: Uint8Array, scopes: readonly string[] | null, version: string | null): Buffer | typeof BAD_JSON {
  const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  if (kind === 'text') return Buffer.from(program.maskText(text), 'utf8');
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch {
    return BAD_JSON;
  }
  return Buffer.from(JSON.stringify(program.apply(root, scopes, version)), 'utf8');
}

/** What the pool is sent: the program's config (cached there by key), the body and the request's facts. */
export interface PoolTask {
  key: string;
  program: ProgramConfig;
  side: 'request' | 'response';
  kind: BodyKind;
  body: Uint8Array;
  scopes: readonly string[] | null;
  version: string | null;
}

/** The pool's answer: the transformed body, or BAD_JSON. */
export type PoolResult = Uint8Array | typeof BAD_JSON;

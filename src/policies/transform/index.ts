import { gunzip } from 'node:zlib';
import { createHash } from 'node:crypto';
import { CONTINUE, PRIORITY, PolicyConfigError, type BodySink, type PolicyContext, type PolicyHooks, type PolicyModule, type RequestBodyTransform, type ResponseBodyFilter } from '../../pipeline/policy.js';
import type { ErrorCode } from '../../errors/codes.js';
import { compileTemplate, render, TemplateError, type Template } from '../../pipeline/template.js';
import { compilePattern, type MaskKind, type MaskStyle } from '../../shared/pii.js';
import { BodyProgram, ProgramError, type MaskConfig, type ProgramConfig } from './program.js';
import { BAD_JSON, transformBody, type BodyKind, type PoolResult } from './run.js';
import { runInPool } from './pool.js';
import { TransformSchema, type MaskInput, type TransformConfig } from './schema.js';

/**
 * The transform policy: query parameters on the way upstream, JSON bodies both ways (operations by path, keep-only
 * lists, fields visible only with a scope, version mappings) and PII masking of bodies. Headers are the headers
 * policy's (with the same templates). Everything is compiled when the config loads; a route without a body section
 * buffers nothing, and a body over its limit is refused, never passed on half-transformed.
 */

interface SideData {
  program: ProgramConfig;
  /** identifies the program in the pool's cache */
  key: string;
  maxBytes: number;
}

interface Data {
  query: { remove: string[]; rename: [string, string][]; add: [string, string][] } | null;
  request: (SideData & { gzip: boolean; maxDecompressedBytes: number }) | null;
  response: SideData | null;
  versionHeader: string | null;
  versionQuery: string | null;
  poolBytes: number;
}

function maskConfig(m: MaskInput | undefined, where: string): MaskConfig | null {
  if (m === undefined) return null;
  m.patterns.forEach((p, i) => {
    try {
      compilePattern(p.regex);
    } catch (err) {
      throw new PolicyConfigError(`${where}.patterns[${i}].regex`, `invalid pattern "${p.name}": ${(err as Error).message}`);
    }
  });
  return {
    detect: m.detect.map((d) => (typeof d === 'string' ? { type: d as MaskKind } : d)),
    patterns: m.patterns,
    fields: m.fields.map((f) => (typeof f === 'string' ? { path: f } : f)),
    keys: m.keys.map((k) => (typeof k === 'string' ? { name: k } : k)),
    style: m.style as MaskStyle,
    hashKey: m.hashKey,
  };
}

/** A side that has version mappings but no body section of its own gets one with the schema's defaults. */
const DEFAULT_BODY = { maxBytes: 1048576, gzip: false, maxDecompressedBytes: 4194304, operations: [], scopes: [], mask: undefined };

function side(config: TransformConfig, which: 'request' | 'response', where: string): SideData | null {
  const versions: Record<string, ProgramConfig['operations']> = {};
  for (const [v, m] of Object.entries(config.versions?.mappings ?? {})) if (m[which].length > 0) versions[v] = m[which];
  const body = (which === 'request' ? config.request?.body : config.response?.body) ?? (Object.keys(versions).length > 0 ? DEFAULT_BODY : undefined);
  if (body === undefined) return null;
  const program: ProgramConfig = {
    operations: body.operations as ProgramConfig['operations'],
    scopes: 'scopes' in body ? body.scopes : [],
    mask: maskConfig(body.mask, `${where}.mask`),
    versions,
  };
  try {
    new BodyProgram(program, which);
  } catch (err) {
    if (err instanceof ProgramError) {
      const path = err.where.startsWith('versions.') ? `versions.mappings.${err.where.slice(9).replace(/\[/, `.${which}[`)}` : `${where}.${err.where}`;
      throw new PolicyConfigError(path, err.message);
    }
    throw err;
  }
  const key = createHash('sha256').update(which + JSON.stringify(program)).digest('base64url');
  return { program, key, maxBytes: body.maxBytes };
}

function templates(record: Record<string, string> | undefined, where: string): [string, string][] {
  return Object.entries(record ?? {}).map(([n, v]) => {
    try {
      compileTemplate(v);
    } catch (err) {
      if (err instanceof TemplateError) throw new PolicyConfigError(`${where}.${n}`, err.message);
      throw err;
    }
    return [n, v];
  });
}

/** The body kind a transform reads from a Content-Type: JSON (application/json, *+json), text/*, or none. */
export function bodyKind(contentType: string | undefined, masks: boolean): BodyKind | null {
  if (contentType === undefined) return null;
  const semi = contentType.indexOf(';');
  const t = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  if (t === 'application/json' || t.endsWith('+json')) return 'json';
  if (masks && t.startsWith('text/')) return 'text';
  return null;
}

export const transformPolicy: PolicyModule<TransformConfig, Data> = {
  name: 'transform',
  priority: PRIORITY.transform,
  schema: TransformSchema,
  description: 'query parameters, JSON bodies (operations, scope filtering, versions) and PII masking',
  compile(config) {
    const q = config.request?.query;
    const request = side(config, 'request', 'request.body');
    const v = config.versions;
    if (v !== undefined && v.header === undefined && v.query === undefined) throw new PolicyConfigError('versions', 'name the header or the query parameter that carries the version');
    return {
      query:
        q === undefined
          ? null
          : { remove: q.remove ?? [], rename: Object.entries(q.rename ?? {}), add: templates(q.add, 'request.query.add') },
      request: request === null ? null : { ...request, gzip: config.request?.body?.gzip ?? false, maxDecompressedBytes: config.request?.body?.maxDecompressedBytes ?? DEFAULT_BODY.maxDecompressedBytes },
      response: side(config, 'response', 'response.body'),
      versionHeader: v?.header?.toLowerCase() ?? null,
      versionQuery: v?.query ?? null,
      poolBytes: config.pool.thresholdBytes,
    };
  },
  create(data) {
    let rewrite: PolicyHooks['rewrite'];
    const versionOf = (ctx: PolicyContext): string | null => {
      if (data.versionHeader !== null) {
        const h = ctx.header(data.versionHeader);
        if (h !== undefined) return h;
      }
      return data.versionQuery !== null ? ctx.queryParam(data.versionQuery) : null;
    };
    const q = data.query;
    const stripEncoding = data.response !== null;
    if (q !== null || stripEncoding) {
      const adds = (q?.add ?? []).map(([n, v]) => [n, compileTemplate(v)] as [string, Template]);
      const remove = q?.remove ?? [];
      const rename = q?.rename ?? [];
      rewrite = (ctx) => {
        // a response body it transforms must come unencoded (a gzip body cannot be masked without decoding it)
        if (stripEncoding) ctx.removeUpstreamHeader('accept-encoding');
        for (let i = 0; i < remove.length; i++) ctx.removeUpstreamQueryParam(remove[i]);
        if (rename.length > 0 && ctx.query !== '') {
          const params = new URLSearchParams(ctx.query);
          for (let i = 0; i < rename.length; i++) {
            const values = params.getAll(rename[i][0]);
            if (values.length === 0) continue;
            ctx.removeUpstreamQueryParam(rename[i][0]);
            for (const value of values) ctx.addUpstreamQueryParam(rename[i][1], value);
          }
        }
        for (let i = 0; i < adds.length; i++) ctx.addUpstreamQueryParam(adds[i][0], render(adds[i][1], ctx));
        return CONTINUE;
      };
    }
    return {
      rewrite,
      requestBody: data.request === null ? undefined : requestBody(data.request, data.poolBytes, versionOf),
      responseBody: data.response === null ? undefined : responseBody(data.response, data.poolBytes, versionOf),
    };
  },
};

function requestBody(d: NonNullable<Data['request']>, poolBytes: number, versionOf: (ctx: PolicyContext) => string | null): RequestBodyTransform {
  const program = new BodyProgram(d.program, 'request');
  const masks = program.masks;
  const run = (ctx: PolicyContext, kind: BodyKind, body: Buffer): Buffer | null | Promise<Buffer | null> => {
    const version = program.versioned ? versionOf(ctx) : null;
    const done = (out: PoolResult): Buffer | null => {
      if (out === BAD_JSON) {
        ctx.respondProblem('NG_ERR_TRANSFORM_BAD_JSON', 'the request body is not valid JSON');
        return null;
      }
      return Buffer.isBuffer(out) ? out : Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    };
    if (poolBytes > 0 && body.length >= poolBytes) {
      return runInPool({ key: d.key, program: d.program, side: 'request', kind, body, scopes: ctx.scopes, version }).then(done);
    }
    return done(transformBody(program, kind, body, ctx.scopes, version));
  };
  return {
    maxBytes: d.maxBytes,
    wants(ctx) {
      // a body whose coding the route cannot read is held too, to be refused: forwarding it would skip the transform
      return bodyKind(ctx.header('content-type'), masks) !== null;
    },
    transform(ctx, body) {
      const kind = bodyKind(ctx.header('content-type'), masks)!;
      const coding = ctx.header('content-encoding');
      if (coding === undefined || coding.trim().toLowerCase() === 'identity') return run(ctx, kind, body);
      if (!d.gzip || coding.trim().toLowerCase() !== 'gzip') {
        ctx.respondProblem('NG_ERR_TRANSFORM_BAD_ENCODING', `this route does not decode Content-Encoding "${coding}"`);
        return null;
      }
      // zlib's maxOutputLength stops inflating at the bound: a zip bomb costs at most that much memory
      return new Promise<Buffer | null>((resolve) => {
        gunzip(body, { maxOutputLength: d.maxDecompressedBytes }, (err, plain) => {
          if (err !== null) {
            if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') ctx.respondProblem('NG_ERR_TRANSFORM_BODY_TOO_LARGE', `the decoded body exceeds ${d.maxDecompressedBytes} bytes`);
            else ctx.respondProblem('NG_ERR_TRANSFORM_BAD_ENCODING', 'the gzip body is corrupt');
            return resolve(null);
          }
          ctx.removeUpstreamHeader('content-encoding');
          const out = run(ctx, kind, plain);
          if (out instanceof Promise) out.then(resolve, () => resolve(fail(ctx)));
          else resolve(out);
        });
      });
    },
  };
}

function fail(ctx: PolicyContext): null {
  ctx.respondProblem('NG_ERR_TRANSFORM_FAILED', 'the body could not be transformed');
  return null;
}

/**
 * The response side: a filter per response with a JSON (or, when masking, text) body. It holds the head and the
 * whole body up to maxBytes, then writes the transformed body at once (with its Content-Length); a body over the
 * limit, one that does not parse, or one with a Content-Encoding is refused with a 502 before anything is sent.
 */
function responseBody(d: SideData, poolBytes: number, versionOf: (ctx: PolicyContext) => string | null): (ctx: PolicyContext) => ResponseBodyFilter | null {
  const program = new BodyProgram(d.program, 'response');
  const masks = program.masks;
  return (ctx) => {
    const kind = bodyKind(ctx.responseHeader('content-type'), masks);
    if (kind === null) return null;
    const coding = ctx.responseHeader('content-encoding');
    const encoded = coding !== undefined && coding.trim().toLowerCase() !== 'identity';
    const refusal: ErrorCode | null = encoded ? 'NG_ERR_TRANSFORM_UPSTREAM_ENCODING' : ctx.responseLength > d.maxBytes ? 'NG_ERR_TRANSFORM_UPSTREAM_TOO_LARGE' : null;
    return new ResponseTransform(program, d, kind, ctx, poolBytes, program.versioned ? versionOf(ctx) : null, refusal);
  };
}

const UPSTREAM_DETAIL: Partial<Record<ErrorCode, string>> = {
  NG_ERR_TRANSFORM_UPSTREAM_ENCODING: 'the upstream service sent an encoded body this route cannot transform',
  NG_ERR_TRANSFORM_UPSTREAM_TOO_LARGE: 'the upstream service sent a body larger than this route transforms',
  NG_ERR_TRANSFORM_UPSTREAM_BAD_JSON: 'the upstream service sent a body that is not valid JSON',
};

class ResponseTransform implements ResponseBodyFilter {
  readonly changesLength = true;
  readonly holdsHead = true;
  readonly #program: BodyProgram;
  readonly #side: SideData;
  readonly #kind: BodyKind;
  readonly #ctx: PolicyContext;
  readonly #poolBytes: number;
  readonly #version: string | null;
  #refusal: ErrorCode | null;
  #parts: Buffer[] = [];
  #bytes = 0;
  #closed = false;

  constructor(program: BodyProgram, side: SideData, kind: BodyKind, ctx: PolicyContext, poolBytes: number, version: string | null, refusal: ErrorCode | null) {
    this.#program = program;
    this.#side = side;
    this.#kind = kind;
    this.#ctx = ctx;
    this.#poolBytes = poolBytes;
    this.#version = version;
    this.#refusal = refusal;
  }

  onChunk(chunk: Buffer, sink: BodySink): boolean {
    if (this.#refusal !== null) return this.#refuse(sink);
    this.#bytes += chunk.length;
    if (this.#bytes > this.#side.maxBytes) {
      this.#refusal = 'NG_ERR_TRANSFORM_UPSTREAM_TOO_LARGE';
      return this.#refuse(sink);
    }
    // the chunk is the read buffer's memory, valid during this call only
    this.#parts.push(Buffer.from(chunk));
    return true;
  }

  onEnd(sink: BodySink): void {
    if (this.#refusal !== null) {
      this.#refuse(sink);
      return;
    }
    const parts = this.#parts;
    const body = parts.length === 1 ? parts[0] : Buffer.concat(parts, this.#bytes);
    this.#parts = [];
    const ctx = this.#ctx;
    if (this.#poolBytes > 0 && body.length >= this.#poolBytes) {
      const d = this.#side;
      runInPool({ key: d.key, program: d.program, side: 'response', kind: this.#kind, body, scopes: ctx.scopes, version: this.#version }).then(
        (out) => this.#done(out, sink),
        (err: Error) => {
          if (!this.#closed) sink.refuse('NG_ERR_TRANSFORM_FAILED', `the response body could not be transformed (${err.message})`);
        },
      );
      return;
    }
    this.#done(transformBody(this.#program, this.#kind, body, ctx.scopes, this.#version), sink);
  }

  onClose(): void {
    this.#closed = true;
    this.#parts = [];
  }

  #done(out: PoolResult, sink: BodySink): void {
    if (this.#closed) return;
    if (out === BAD_JSON) {
      this.#refusal = 'NG_ERR_TRANSFORM_UPSTREAM_BAD_JSON';
      this.#refuse(sink);
      return;
    }
    sink.last(Buffer.isBuffer(out) ? out : Buffer.from(out.buffer, out.byteOffset, out.byteLength));
  }

  #refuse(sink: BodySink): boolean {
    const code = this.#refusal!;
    sink.refuse(code, UPSTREAM_DETAIL[code] ?? 'the response body could not be transformed');
    return true;
  }
}

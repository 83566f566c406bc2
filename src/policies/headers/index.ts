import { Type, type Static } from '@sinclair/typebox';
import { CONTINUE, PRIORITY, PolicyConfigError, type PolicyContext, type PolicyModule } from '../../pipeline/policy.js';
import { compileTemplate, render, TemplateError, type Template } from '../../pipeline/template.js';

/**
 * Header transforms: set, add, remove or rename request headers before they go upstream, and response headers
 * before they go to the client. Values may be templates (`${consumer.id}`, `${request.id}`, `${client.ip}`,
 * `${route}`, `${header.NAME}`, `${query.NAME}`: src/pipeline/template.ts), compiled when the config loads; a value
 * without `${` costs what a fixed value always did. Names are compared case-insensitively; hop-by-hop and framing
 * headers cannot be touched. The order is fixed: remove, rename, set, add.
 *
 * This is the one place headers are changed: the transform policy (query strings and bodies) has no headers of its own.
 */
const HeaderName = Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", maxLength: 256 });
const HeaderValue = Type.String({ pattern: '^[^\\r\\n\\x00]*$', maxLength: 8192 });
// Request headers set here are often an upstream's credential (Authorization, X-Api-Key): their values are secret.
const Side = (secretValues: boolean) =>
  Type.Object(
    {
      set: Type.Optional(Type.Record(HeaderName, HeaderValue, { secret: secretValues, description: 'replace (or add) these headers; values may be templates such as "${consumer.id}"' })),
      add: Type.Optional(Type.Record(HeaderName, HeaderValue, { secret: secretValues, description: 'append these header lines, keeping any already there; values may be templates' })),
      remove: Type.Optional(Type.Array(HeaderName, { description: 'drop these headers' })),
      rename: Type.Optional(Type.Record(HeaderName, HeaderName, { secret: false, description: 'move each header (every line of it) to a new name: { old-name: new-name }' })),
    },
    { additionalProperties: false, description: secretValues ? 'changes to the request sent upstream' : 'changes to the response sent to the client' },
  );
const Schema = Type.Object(
  { request: Type.Optional(Side(true)), response: Type.Optional(Side(false)) },
  { additionalProperties: false, secret: false, description: 'set, add, remove and rename request and response headers, with templated values' },
);
type Config = Static<typeof Schema>;

interface SideData {
  set: [string, string][];
  add: [string, string][];
  remove: string[];
  rename: [string, string][];
}

interface Data {
  request: SideData;
  response: SideData;
}

const PROTECTED = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'te', 'trailer', 'upgrade']);

function side(config: Config['request'], path: string): SideData {
  const name = (n: string, where: string) => {
    const l = n.toLowerCase();
    if (PROTECTED.has(l)) throw new PolicyConfigError(where, `"${n}" is managed by the gateway and cannot be changed`);
    return l;
  };
  const pairs = (set: Record<string, string> | undefined, key: string): [string, string][] =>
    Object.entries(set ?? {}).map(([n, v]) => {
      try {
        compileTemplate(v);
      } catch (err) {
        if (err instanceof TemplateError) throw new PolicyConfigError(`${path}.${key}.${n}`, err.message);
        throw err;
      }
      return [name(n, `${path}.${key}.${n}`), v];
    });
  return {
    set: pairs(config?.set, 'set'),
    add: pairs(config?.add, 'add'),
    remove: (config?.remove ?? []).map((n, i) => name(n, `${path}.remove[${i}]`)),
    rename: Object.entries(config?.rename ?? {}).map(([from, to]) => [name(from, `${path}.rename.${from}`), name(to, `${path}.rename.${from}`)]),
  };
}

const empty = (s: SideData) => s.set.length === 0 && s.add.length === 0 && s.remove.length === 0 && s.rename.length === 0;

export const headersPolicy: PolicyModule<Config, Data> = {
  name: 'headers',
  priority: PRIORITY.transform,
  schema: Schema,
  description: 'set, add, remove and rename request and response headers, with templated values',
  compile(config) {
    return { request: side(config.request, 'request'), response: side(config.response, 'response') };
  },
  create(data) {
    const rq = data.request;
    const rs = data.response;
    const rqSet = rq.set.map(([n, v]) => [n, compileTemplate(v)] as [string, Template]);
    const rqAdd = rq.add.map(([n, v]) => [n, compileTemplate(v)] as [string, Template]);
    const rsSet = rs.set.map(([n, v]) => [n, compileTemplate(v)] as [string, Template]);
    const rsAdd = rs.add.map(([n, v]) => [n, compileTemplate(v)] as [string, Template]);
    const { remove: rqRemove, rename: rqRename } = rq;
    const { remove: rsRemove, rename: rsRename } = rs;
    return {
      rewrite: empty(rq)
        ? undefined
        : (ctx) => {
            for (let i = 0; i < rqRemove.length; i++) ctx.removeUpstreamHeader(rqRemove[i]);
            for (let i = 0; i < rqRename.length; i++) renameRequest(ctx, rqRename[i][0], rqRename[i][1]);
            for (let i = 0; i < rqSet.length; i++) {
              ctx.removeUpstreamHeader(rqSet[i][0]);
              ctx.setUpstreamHeader(rqSet[i][0], render(rqSet[i][1], ctx));
            }
            for (let i = 0; i < rqAdd.length; i++) ctx.setUpstreamHeader(rqAdd[i][0], render(rqAdd[i][1], ctx));
            return CONTINUE;
          },
      response: empty(rs)
        ? undefined
        : (ctx) => {
            for (let i = 0; i < rsRemove.length; i++) ctx.removeResponseHeader(rsRemove[i]);
            for (let i = 0; i < rsRename.length; i++) renameResponse(ctx, rsRename[i][0], rsRename[i][1]);
            for (let i = 0; i < rsSet.length; i++) {
              ctx.removeResponseHeader(rsSet[i][0]);
              ctx.addResponseHeader(rsSet[i][0], render(rsSet[i][1], ctx));
            }
            for (let i = 0; i < rsAdd.length; i++) ctx.addResponseHeader(rsAdd[i][0], render(rsAdd[i][1], ctx));
          },
    };
  },
};

/** Every line of a client header moves to a new name (the client sent it; it is never a gateway-made one). */
function renameRequest(ctx: PolicyContext, from: string, to: string): void {
  const values = ctx.headerValues(from);
  if (values.length === 0) return;
  ctx.removeUpstreamHeader(from);
  ctx.removeUpstreamHeader(to);
  for (let i = 0; i < values.length; i++) ctx.setUpstreamHeader(to, values[i]);
}

/** Every line of an upstream (or prepared) response header moves to a new name. */
function renameResponse(ctx: PolicyContext, from: string, to: string): void {
  const values = ctx.responseHeaderValues(from);
  if (values.length === 0) return;
  ctx.removeResponseHeader(from);
  ctx.removeResponseHeader(to);
  for (let i = 0; i < values.length; i++) ctx.addResponseHeader(to, values[i]);
}

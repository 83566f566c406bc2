import { Type, type Static } from '@sinclair/typebox';
import { CONTINUE, PRIORITY, PolicyConfigError, type PolicyModule } from '../../pipeline/policy.js';

/**
 * Header transforms: set or remove request headers before they go upstream, and response headers before they go
 * to the client. Names are compared case-insensitively; hop-by-hop and framing headers cannot be touched.
 */
const HeaderName = Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", maxLength: 256 });
const HeaderValue = Type.String({ pattern: '^[^\\r\\n\\x00]*$', maxLength: 8192 });
// Request headers set here are often an upstream's credential (Authorization, X-Api-Key): their values are secret.
const Side = (secretValues: boolean) =>
  Type.Object(
    {
      set: Type.Optional(Type.Record(HeaderName, HeaderValue, { secret: secretValues, description: 'replace (or add) these headers' })),
      remove: Type.Optional(Type.Array(HeaderName, { description: 'drop these headers' })),
    },
    { additionalProperties: false, description: secretValues ? 'changes to the request sent upstream' : 'changes to the response sent to the client' },
  );
const Schema = Type.Object(
  { request: Type.Optional(Side(true)), response: Type.Optional(Side(false)) },
  { additionalProperties: false, secret: false, description: 'set and remove request and response headers' },
);
type Config = Static<typeof Schema>;

interface Data {
  requestSet: [string, string][];
  requestRemove: string[];
  responseSet: [string, string][];
  responseRemove: string[];
}

const PROTECTED = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'te', 'trailer', 'upgrade']);

export const headersPolicy: PolicyModule<Config, Data> = {
  name: 'headers',
  priority: PRIORITY.transform,
  schema: Schema,
  description: 'set and remove request and response headers',
  compile(config) {
    const lower = (names: string[] | undefined, path: string) =>
      (names ?? []).map((n, i) => {
        const l = n.toLowerCase();
        if (PROTECTED.has(l)) throw new PolicyConfigError(`${path}[${i}]`, `"${n}" is managed by the gateway and cannot be changed`);
        return l;
      });
    const pairs = (set: Record<string, string> | undefined, path: string): [string, string][] =>
      Object.entries(set ?? {}).map(([n, v]) => {
        const l = n.toLowerCase();
        if (PROTECTED.has(l)) throw new PolicyConfigError(`${path}.${n}`, `"${n}" is managed by the gateway and cannot be changed`);
        return [l, v];
      });
    return {
      requestSet: pairs(config.request?.set, 'request.set'),
      requestRemove: lower(config.request?.remove, 'request.remove'),
      responseSet: pairs(config.response?.set, 'response.set'),
      responseRemove: lower(config.response?.remove, 'response.remove'),
    };
  },
  create(data) {
    const { requestSet, requestRemove, responseSet, responseRemove } = data;
    const hasRequest = requestSet.length > 0 || requestRemove.length > 0;
    const hasResponse = responseSet.length > 0 || responseRemove.length > 0;
    return {
      rewrite: hasRequest
        ? (ctx) => {
            for (const name of requestRemove) ctx.removeUpstreamHeader(name);
            for (const [name, value] of requestSet) {
              ctx.removeUpstreamHeader(name);
              ctx.setUpstreamHeader(name, value);
            }
            return CONTINUE;
          }
        : undefined,
      response: hasResponse
        ? (ctx) => {
            for (const name of responseRemove) ctx.removeResponseHeader(name);
            for (const [name, value] of responseSet) {
              ctx.removeResponseHeader(name);
              ctx.addResponseHeader(name, value);
            }
          }
        : undefined,
    };
  },
};

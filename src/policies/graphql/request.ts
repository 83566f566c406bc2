import type { PolicyContext } from '../../pipeline/policy.js';
import type { ErrorCode } from '../../errors/codes.js';

/** One GraphQL request as the client sent it (GET query string or POST body), before any lookup. */
export interface GraphqlRequest {
  /** the document text; null when only a persisted hash came */
  query: string | null;
  operationName: string | null;
  variables: Record<string, unknown>;
  /** extensions.persistedQuery.sha256Hash, lower-case; null when absent */
  hash: string | null;
  /** the POST body was JSON (it is re-serialized when the gateway fills in a persisted query) */
  json: Record<string, unknown> | null;
}

/** Why a request is refused (a class, so that no client JSON can pass for one). */
export class Refused {
  constructor(
    readonly code: ErrorCode,
    readonly detail: string,
  ) {}
}

const NO_VARIABLES: Record<string, unknown> = Object.freeze(Object.create(null));

function bad(detail: string): Refused {
  return new Refused('NG_ERR_GRAPHQL_BAD_REQUEST', detail);
}

function parseJson(text: string, what: string): unknown | Refused {
  try {
    return JSON.parse(text);
  } catch {
    return bad(`${what} is not valid JSON`);
  }
}

function isRefused(x: unknown): x is Refused {
  return x instanceof Refused;
}

function fields(o: Record<string, unknown>, json: Record<string, unknown> | null): GraphqlRequest | Refused {
  const { query, operationName, variables, extensions } = o;
  if (query !== undefined && query !== null && typeof query !== 'string') return bad('"query" must be a string');
  if (operationName !== undefined && operationName !== null && typeof operationName !== 'string') return bad('"operationName" must be a string');
  if (variables !== undefined && variables !== null && (typeof variables !== 'object' || Array.isArray(variables))) return bad('"variables" must be an object');
  let hash: string | null = null;
  if (extensions !== undefined && extensions !== null) {
    if (typeof extensions !== 'object' || Array.isArray(extensions)) return bad('"extensions" must be an object');
    const pq = (extensions as { persistedQuery?: unknown }).persistedQuery;
    if (pq !== undefined && pq !== null) {
      const h = typeof pq === 'object' ? (pq as { sha256Hash?: unknown }).sha256Hash : undefined;
      if (typeof h !== 'string') return bad('"extensions.persistedQuery.sha256Hash" must be a string');
      hash = h.toLowerCase();
    }
  }
  const q = typeof query === 'string' ? query : null;
  if (q === null && hash === null) return bad('the request has no "query"');
  return { query: q, operationName: typeof operationName === 'string' && operationName !== '' ? operationName : null, variables: (variables as Record<string, unknown>) ?? NO_VARIABLES, hash, json };
}

/** A GET request: query, operationName, variables and extensions from the query string (the last two as JSON). */
export function fromQueryString(ctx: PolicyContext): GraphqlRequest | Refused {
  const o: Record<string, unknown> = { query: ctx.queryParam('query'), operationName: ctx.queryParam('operationName') };
  const v = ctx.queryParam('variables');
  if (v !== null && v !== '') {
    const parsed = parseJson(v, 'the "variables" parameter');
    if (isRefused(parsed)) return parsed;
    o.variables = parsed;
  }
  const e = ctx.queryParam('extensions');
  if (e !== null && e !== '') {
    const parsed = parseJson(e, 'the "extensions" parameter');
    if (isRefused(parsed)) return parsed;
    o.extensions = parsed;
  }
  return fields(o, null);
}

/** A POST body: application/json (one operation; a batch array is refused) or application/graphql (the document). */
export function fromBody(ctx: PolicyContext, body: Buffer): GraphqlRequest | Refused {
  const type = (ctx.header('content-type') ?? '').toLowerCase();
  if (type.startsWith('application/graphql')) return fields({ query: body.toString('utf8') }, null);
  if (!type.startsWith('application/json')) return bad('the Content-Type must be application/json or application/graphql');
  const parsed = parseJson(body.toString('utf8'), 'the body');
  if (isRefused(parsed)) return parsed;
  if (Array.isArray(parsed)) return new Refused('NG_ERR_GRAPHQL_BATCH', `the body is a batch of ${parsed.length} operations; send one operation per request`);
  if (parsed === null || typeof parsed !== 'object') return bad('the body must be a JSON object');
  return fields(parsed as Record<string, unknown>, parsed as Record<string, unknown>);
}

export { isRefused };

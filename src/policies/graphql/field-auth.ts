import { isInterfaceType, isObjectType, type GraphQLSchema } from 'graphql';
import { PolicyConfigError } from '../../pipeline/policy.js';

const ROOTS = new Set(['Query', 'Mutation', 'Subscription']);

/**
 * Checks the field rules against what can be known at config load. With a schema, a `Type.field` rule must name a
 * field of an object or interface type. Without one the gateway cannot tell a nested field's parent type, so only
 * root fields (`Query.f`, `Mutation.f`, `Subscription.f`) and `*.f` (a field of that name at any level) are allowed.
 */
export function checkRules(rules: Record<string, string>, schema: GraphQLSchema | null): Map<string, string> {
  const out = new Map<string, string>();
  for (const [coord, scope] of Object.entries(rules)) {
    const [type, field] = coord.split('.');
    const where = `fieldAuth.rules["${coord}"]`;
    if (type !== '*') {
      if (schema === null) {
        if (!ROOTS.has(type)) throw new PolicyConfigError(where, `"${coord}" names a field of ${type}, which the gateway cannot tell without a schema`, 'add schema: <file.graphql>, or write *.' + field);
      } else {
        const t = schema.getType(type);
        if (t === undefined || !(isObjectType(t) || isInterfaceType(t))) throw new PolicyConfigError(where, `the schema has no object or interface type ${type}`);
        if (!(field in t.getFields())) throw new PolicyConfigError(where, `the schema's ${type} has no field ${field}`);
      }
    }
    out.set(coord, scope);
  }
  return out;
}

/** Field coordinate -> scope, for the fields of one operation that have a rule (computed once per cached operation). */
export function requirements(coordinates: readonly string[], rules: ReadonlyMap<string, string>): { coord: string; scope: string }[] {
  const out: { coord: string; scope: string }[] = [];
  if (rules.size === 0) return out;
  for (const c of coordinates) {
    const field = c.slice(c.indexOf('.') + 1);
    const scope = rules.get(c) ?? rules.get(`*.${field}`);
    if (scope !== undefined) out.push({ coord: c, scope });
  }
  return out;
}

/** The fields the caller's scopes do not cover (empty: allowed). */
export function missing(reqs: readonly { coord: string; scope: string }[], scopes: readonly string[] | null): string[] {
  let out: string[] | null = null;
  for (const r of reqs) if (scopes === null || !scopes.includes(r.scope)) (out ??= []).push(r.coord);
  return out ?? NONE;
}
const NONE: string[] = [];

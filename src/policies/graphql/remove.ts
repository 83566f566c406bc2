import {
  Kind,
  getNamedType,
  isInterfaceType,
  isObjectType,
  print,
  visit,
  type DefinitionNode,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLNamedType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionNode,
  type SelectionSetNode,
} from 'graphql';

/**
 * Field removal (`fieldAuth.mode: remove`): the operation without the fields the caller may not read, as the text
 * to forward, and one GraphQL error per removed field for the response.
 *
 * - A field whose selection loses every field is removed too (an empty selection set is not GraphQL); so is an inline
 *   fragment or a fragment definition left empty, with its spreads. When the root selection is left empty there is
 *   nothing to run: the caller gets the refusal instead (null).
 * - Only the chosen operation and the fragments it still uses are forwarded, and variable definitions no longer used
 *   are dropped (graphql-js refuses unused variables and fragments: NoUnusedVariablesRule, NoUnusedFragmentsRule).
 * - The text is graphql-js `print` of the pruned AST: the documents are parsed without locations (cheaper, and cached),
 *   so the original bytes are not at hand; the upstream sees the same operation, normalised.
 * - Error paths are response keys (alias or name) from the root, without list indices: the gateway never sees the
 *   data, so `["users","email"]` stands for every element of `users`. At most MAX_ERRORS errors are listed (a
 *   fragment spread at many places would otherwise multiply them).
 *
 * Computed once per cached operation and set of denied fields (see Operation.removals in index.ts).
 */
export interface Removal {
  /** the document to forward */
  readonly text: string;
  /** the JSON of the errors, comma-separated objects (spliced into the response's errors array) */
  readonly errors: string;
  readonly count: number;
}

const MAX_ERRORS = 64;
const ROOT_NAME = { query: 'Query', mutation: 'Mutation', subscription: 'Subscription' } as const;

interface FragmentCut {
  /** the pruned selection, or null when nothing is left */
  readonly set: SelectionSetNode | null;
  /** removed fields relative to the spread: path and coordinate */
  readonly removed: { path: string[]; coord: string }[];
}

class Pruner {
  readonly fragments = new Map<string, FragmentDefinitionNode>();
  readonly memo = new Map<string, FragmentCut>();
  constructor(
    readonly doc: DocumentNode,
    readonly schema: GraphQLSchema | null,
    readonly denied: ReadonlySet<string>,
  ) {
    for (const d of doc.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) this.fragments.set(d.name.value, d);
  }

  /** The selection without the denied fields (null when empty); removed fields go to `out` with their path under `at`. */
  set(set: SelectionSetNode, parent: GraphQLNamedType | null, parentName: string, at: string[], out: { path: string[]; coord: string }[]): SelectionSetNode | null {
    let kept: SelectionNode[] | null = null;
    let changed = false;
    for (const sel of set.selections) {
      let next: SelectionNode | null = sel;
      if (sel.kind === Kind.FIELD) {
        const name = sel.name.value;
        const coord = `${parentName}.${name}`;
        const key = sel.alias?.value ?? name;
        if (this.denied.has(coord) || this.denied.has(`*.${name}`)) {
          if (out.length < MAX_ERRORS) out.push({ path: [...at, key], coord });
          next = null;
        } else if (sel.selectionSet) {
          const child = this.childType(parent, name);
          const s = this.set(sel.selectionSet, child, this.schema !== null && child !== null ? child.name : '*', [...at, key], out);
          next = s === null ? null : s === sel.selectionSet ? sel : { ...sel, selectionSet: s };
        }
      } else if (sel.kind === Kind.INLINE_FRAGMENT) {
        const t = sel.typeCondition ? this.type(sel.typeCondition.name.value) : parent;
        const name = sel.typeCondition && this.schema !== null ? sel.typeCondition.name.value : parentName;
        const s = this.set(sel.selectionSet, t, name, at, out);
        next = s === null ? null : s === sel.selectionSet ? sel : { ...sel, selectionSet: s };
      } else {
        const cut = this.fragment(sel.name.value, parentName);
        for (const r of cut.removed) if (out.length < MAX_ERRORS) out.push({ path: [...at, ...r.path], coord: r.coord });
        if (cut.set === null) next = null;
      }
      if (next !== sel) changed = true;
      if (next !== null) (kept ??= []).push(next);
    }
    if (kept === null) return null;
    return changed ? { ...set, selections: kept } : set;
  }

  /** A fragment pruned once, whatever the number of its spreads (its removed fields are relative to the spread). */
  fragment(name: string, parentName: string): FragmentCut {
    let m = this.memo.get(name);
    if (m !== undefined) return m;
    const f = this.fragments.get(name);
    if (f === undefined) return { set: null, removed: [] };
    const removed: { path: string[]; coord: string }[] = [];
    const typeName = f.typeCondition.name.value;
    const set = this.set(f.selectionSet, this.type(typeName), this.schema !== null ? typeName : parentName, [], removed);
    m = { set, removed };
    this.memo.set(name, m);
    return m;
  }

  childType(parent: GraphQLNamedType | null, field: string): GraphQLNamedType | null {
    if (this.schema === null || parent === null || !(isObjectType(parent) || isInterfaceType(parent))) return null;
    const def = parent.getFields()[field];
    return def === undefined ? null : getNamedType(def.type);
  }

  type(name: string): GraphQLNamedType | null {
    return this.schema === null ? null : (this.schema.getType(name) ?? null);
  }
}

/** The operation without `denied` (field coordinates), or null when none of its root fields is left. */
export function removeFields(doc: DocumentNode, op: OperationDefinitionNode, denied: readonly string[], schema: GraphQLSchema | null): Removal | null {
  const p = new Pruner(doc, schema, new Set(denied));
  const rootType = schema === null ? null : (schema.getRootType(op.operation) ?? null);
  const removed: { path: string[]; coord: string }[] = [];
  const root = p.set(op.selectionSet, rootType, rootType?.name ?? ROOT_NAME[op.operation], [], removed);
  if (root === null) return null;
  const defs: DefinitionNode[] = [{ ...op, selectionSet: root }];
  for (const [name, cut] of p.memo) if (cut.set !== null) defs.push({ ...p.fragments.get(name)!, selectionSet: cut.set });
  // variables still used anywhere in what is forwarded
  const used = new Set<string>();
  const pruned: DocumentNode = { kind: Kind.DOCUMENT, definitions: defs };
  visit(pruned, {
    VariableDefinition: () => false,
    Variable: (v) => {
      used.add(v.name.value);
    },
  });
  const first = defs[0] as OperationDefinitionNode;
  const vars = first.variableDefinitions?.filter((v) => used.has(v.variable.name.value));
  if (vars !== undefined && vars.length !== first.variableDefinitions!.length) defs[0] = { ...first, variableDefinitions: vars };
  // the spreads of fragments left empty were dropped with them (Pruner.set), so every remaining spread resolves
  const errors = removed.map((r) => JSON.stringify({ message: `the caller may not read ${r.coord}`, path: r.path, extensions: { code: 'NG_ERR_GRAPHQL_FIELD_FORBIDDEN', field: r.coord } })).join(',');
  return { text: print({ kind: Kind.DOCUMENT, definitions: defs }), errors, count: removed.length };
}

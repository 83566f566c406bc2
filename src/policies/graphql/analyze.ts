import {
  Kind,
  getNamedType,
  isListType,
  isNonNullType,
  isObjectType,
  isInterfaceType,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLNamedType,
  type GraphQLSchema,
  type GraphQLType,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValueNode,
} from 'graphql';

/** How an operation is priced (compiled from the `cost` section). */
export interface CostModel {
  readonly object: number;
  readonly scalar: number;
  /** "Type.field" and "*.field" -> cost */
  readonly fields: ReadonlyMap<string, number>;
  readonly listArguments: ReadonlySet<string>;
  readonly defaultListSize: number;
}

/** What one operation of a document does: computed once per document and operation name, then cached with it. */
export interface OperationFacts {
  readonly type: 'query' | 'mutation' | 'subscription';
  readonly name: string | null;
  readonly depth: number;
  readonly aliases: number;
  readonly rootFields: number;
  /** the cost with the operation's variable defaults; per request only when costVaries */
  readonly cost: number;
  /** a list argument is a variable: the cost is recomputed with each request's variables */
  readonly costVaries: boolean;
  readonly introspection: boolean;
  /** every field touched, as Type.field (the parent type from the schema; without one: the root type, or "*") */
  readonly coordinates: readonly string[];
}

interface Part {
  depth: number;
  aliases: number;
  cost: number;
}

const ROOT_NAME = { query: 'Query', mutation: 'Mutation', subscription: 'Subscription' } as const;
const NO_VARS: Record<string, unknown> = Object.create(null);

/**
 * One walk of an operation with its fragments expanded. Each fragment is walked once per walk and its result reused
 * (a fragment spread ten times in ten fragments is not walked 10^n times); fragment cycles never get here, the
 * validation rules refuse them first.
 */
class Walk {
  readonly fragments: Map<string, FragmentDefinitionNode>;
  readonly memo = new Map<string, Part>();
  readonly coords = new Set<string>();
  introspection = false;
  costVaries = false;
  constructor(
    readonly model: CostModel,
    readonly schema: GraphQLSchema | null,
    readonly vars: Record<string, unknown>,
    readonly defaults: Record<string, unknown>,
    fragments: Map<string, FragmentDefinitionNode>,
  ) {
    this.fragments = fragments;
  }

  selection(set: SelectionSetNode, parent: GraphQLNamedType | null, parentName: string): Part {
    const out: Part = { depth: 0, aliases: 0, cost: 0 };
    for (const sel of set.selections) {
      let p: Part;
      if (sel.kind === Kind.FIELD) {
        p = this.field(sel, parent, parentName);
      } else if (sel.kind === Kind.INLINE_FRAGMENT) {
        const t = sel.typeCondition ? this.type(sel.typeCondition.name.value) : parent;
        p = this.selection(sel.selectionSet, t, sel.typeCondition && this.schema !== null ? sel.typeCondition.name.value : parentName);
      } else {
        const name = sel.name.value;
        let m = this.memo.get(name);
        if (m === undefined) {
          const frag = this.fragments.get(name);
          m = frag === undefined ? { depth: 0, aliases: 0, cost: 0 } : this.selection(frag.selectionSet, this.type(frag.typeCondition.name.value), this.schema !== null ? frag.typeCondition.name.value : parentName);
          this.memo.set(name, m);
        }
        p = m;
      }
      if (p.depth > out.depth) out.depth = p.depth;
      out.aliases += p.aliases;
      out.cost += p.cost;
    }
    return out;
  }

  field(node: import('graphql').FieldNode, parent: GraphQLNamedType | null, parentName: string): Part {
    const name = node.name.value;
    if (name === '__schema' || name === '__type') this.introspection = true;
    this.coords.add(`${parentName}.${name}`);
    let childType: GraphQLNamedType | null = null;
    let isList = false;
    if (this.schema !== null && parent !== null && (isObjectType(parent) || isInterfaceType(parent))) {
      const def = parent.getFields()[name];
      if (def !== undefined) {
        childType = getNamedType(def.type);
        isList = listOf(def.type);
      }
    }
    const model = this.model;
    const own = model.fields.get(`${parentName}.${name}`) ?? model.fields.get(`*.${name}`) ?? (node.selectionSet ? model.object : model.scalar);
    let multiplier = 1;
    let fromArgument = false;
    if (node.arguments) {
      for (const arg of node.arguments) {
        if (!model.listArguments.has(arg.name.value)) continue;
        const n = this.intValue(arg.value);
        multiplier = n < 0 ? model.defaultListSize : n;
        fromArgument = true;
        break;
      }
    }
    if (!fromArgument && isList) multiplier = model.defaultListSize;
    const child = node.selectionSet ? this.selection(node.selectionSet, childType, this.schema !== null && childType !== null ? childType.name : '*') : null;
    return {
      depth: (child === null ? 0 : child.depth) + 1,
      aliases: (node.alias ? 1 : 0) + (child === null ? 0 : child.aliases),
      cost: multiplier * (own + (child === null ? 0 : child.cost)),
    };
  }

  /** An integer argument (literal or variable); -1 when it is not one. */
  intValue(v: ValueNode): number {
    if (v.kind === Kind.INT) return clampInt(Number(v.value));
    if (v.kind === Kind.VARIABLE) {
      this.costVaries = true;
      const name = v.name.value;
      const x = name in this.vars ? this.vars[name] : this.defaults[name];
      return typeof x === 'number' && Number.isInteger(x) ? clampInt(x) : -1;
    }
    return -1;
  }

  type(name: string): GraphQLNamedType | null {
    return this.schema === null ? null : (this.schema.getType(name) ?? null);
  }
}

function clampInt(n: number): number {
  return n < 0 ? 0 : n > 1_000_000 ? 1_000_000 : n;
}

function listOf(t: GraphQLType): boolean {
  return isListType(isNonNullType(t) ? t.ofType : t);
}

function fragmentsOf(doc: DocumentNode): Map<string, FragmentDefinitionNode> {
  const m = new Map<string, FragmentDefinitionNode>();
  for (const d of doc.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) m.set(d.name.value, d);
  return m;
}

/** The operation a request runs: the named one, or the only one; null when there is no such operation. */
export function pickOperation(doc: DocumentNode, name: string | null): OperationDefinitionNode | null {
  let found: OperationDefinitionNode | null = null;
  for (const d of doc.definitions) {
    if (d.kind !== Kind.OPERATION_DEFINITION) continue;
    if (name === null) {
      if (found !== null) return null;
      found = d;
    } else if (d.name?.value === name) return d;
  }
  return found;
}

function variableDefaults(op: OperationDefinitionNode): Record<string, unknown> {
  const out: Record<string, unknown> = Object.create(null);
  for (const v of op.variableDefinitions ?? []) if (v.defaultValue?.kind === Kind.INT) out[v.variable.name.value] = Number(v.defaultValue.value);
  return out;
}

function rootCount(set: SelectionSetNode, fragments: Map<string, FragmentDefinitionNode>, seen: Set<string>): number {
  let n = 0;
  for (const sel of set.selections) {
    if (sel.kind === Kind.FIELD) n++;
    else if (sel.kind === Kind.INLINE_FRAGMENT) n += rootCount(sel.selectionSet, fragments, seen);
    else if (!seen.has(sel.name.value)) {
      seen.add(sel.name.value);
      const f = fragments.get(sel.name.value);
      if (f) n += rootCount(f.selectionSet, fragments, seen);
    }
  }
  return n;
}

/** The facts of one operation (variables: the defaults of its definitions). */
export function analyzeOperation(doc: DocumentNode, op: OperationDefinitionNode, model: CostModel, schema: GraphQLSchema | null): OperationFacts {
  const fragments = fragmentsOf(doc);
  const defaults = variableDefaults(op);
  const w = new Walk(model, schema, NO_VARS, defaults, fragments);
  const rootType = schema === null ? null : (schema.getRootType(op.operation) ?? null);
  const part = w.selection(op.selectionSet, rootType, rootType?.name ?? ROOT_NAME[op.operation]);
  return {
    type: op.operation,
    name: op.name?.value ?? null,
    depth: part.depth,
    aliases: part.aliases,
    rootFields: rootCount(op.selectionSet, fragments, new Set()),
    cost: part.cost,
    costVaries: w.costVaries,
    introspection: w.introspection,
    coordinates: [...w.coords],
  };
}

/** The cost of an operation whose list sizes come from variables, with this request's variables. */
export function costWith(doc: DocumentNode, op: OperationDefinitionNode, model: CostModel, schema: GraphQLSchema | null, vars: Record<string, unknown>): number {
  const w = new Walk(model, schema, vars, variableDefaults(op), fragmentsOf(doc));
  const rootType = schema === null ? null : (schema.getRootType(op.operation) ?? null);
  return w.selection(op.selectionSet, rootType, rootType?.name ?? ROOT_NAME[op.operation]).cost;
}

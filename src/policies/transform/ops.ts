import { ANY_INDEX, ANY_KEY, PathError, hasWildcard, parsePath, visitParents, type Step } from './path.js';

/**
 * The JSON operations of a transform, in the order they are listed; each is compiled once per config into an
 * object whose apply() walks only the paths it names. apply() never throws on any parsed JSON value: a path that
 * meets a value of another shape (a string where an object was expected) reaches nothing there.
 *
 *   - set:    { path: user.tier, value: gold }       create or replace (missing objects on the way are made)
 *   - add:    { path: user.tier, value: gold }       only when absent
 *   - remove: [user.password, items[*].cost]          drop fields (array elements by index or [*])
 *   - rename: { from: items[*].name, to: items[*].title }   move a value; both paths share their wildcards
 *   - keep:   [id, name, items[*].id]                keep only these fields, drop everything else
 */
export type OperationConfig =
  | { set: { path: string; value: unknown } }
  | { add: { path: string; value: unknown } }
  | { remove: string[] }
  | { rename: { from: string; to: string } }
  | { keep: string[] };

export interface JsonOp {
  /** the new root (the same object unless the operation replaced it) */
  apply(root: unknown): unknown;
}

/** An invalid operation, with where it is relative to the operation (e.g. "rename.to"). */
export class OperationError extends Error {
  constructor(
    readonly where: string,
    message: string,
  ) {
    super(message);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parse(path: string, where: string): Step[] {
  try {
    return parsePath(path);
  } catch (err) {
    if (err instanceof PathError) throw new OperationError(where, `cannot parse the path "${path}": ${err.message}`);
    throw err;
  }
}

/** A JSON value from the config, copied for each use: a result must not share objects with the config or another result. */
function copier(value: unknown): () => unknown {
  if (typeof value !== 'object' || value === null) return () => value;
  const text = JSON.stringify(value);
  return () => JSON.parse(text);
}

class SetOp implements JsonOp {
  readonly #steps: Step[];
  readonly #value: () => unknown;
  readonly #onlyAbsent: boolean;
  constructor(steps: Step[], value: unknown, onlyAbsent: boolean) {
    this.#steps = steps;
    this.#value = copier(value);
    this.#onlyAbsent = onlyAbsent;
  }
  apply(root: unknown): unknown {
    const value = this.#value;
    const onlyAbsent = this.#onlyAbsent;
    visitParents(root, this.#steps, true, (parent, last) => {
      if (last === ANY_KEY) {
        if (isObject(parent) && !onlyAbsent) for (const k in parent) parent[k] = value();
      } else if (last === ANY_INDEX) {
        if (Array.isArray(parent) && !onlyAbsent) for (let i = 0; i < parent.length; i++) parent[i] = value();
      } else if (typeof last === 'number') {
        // an index sets an existing element, or appends right after the last one
        if (Array.isArray(parent) && last <= parent.length && !(onlyAbsent && last < parent.length)) parent[last] = value();
      } else if (isObject(parent) && !(onlyAbsent && Object.hasOwn(parent, last))) parent[last] = value();
    });
    return root;
  }
}

class RemoveOp implements JsonOp {
  readonly #steps: Step[];
  constructor(steps: Step[]) {
    this.#steps = steps;
  }
  apply(root: unknown): unknown {
    visitParents(root, this.#steps, false, (parent, last) => {
      if (last === ANY_KEY) {
        if (isObject(parent)) for (const k in parent) delete parent[k];
      } else if (last === ANY_INDEX) {
        if (Array.isArray(parent)) parent.length = 0;
      } else if (typeof last === 'number') {
        if (Array.isArray(parent) && last < parent.length) parent.splice(last, 1);
      } else if (isObject(parent)) delete parent[last];
    });
    return root;
  }
}

/** rename: walk the shared prefix (up to the last wildcard) once, then move within each container reached. */
class RenameOp implements JsonOp {
  readonly #prefix: Step[];
  readonly #from: Step[];
  readonly #to: Step[];
  constructor(prefix: Step[], from: Step[], to: Step[]) {
    this.#prefix = prefix;
    this.#from = from;
    this.#to = to;
  }
  apply(root: unknown): unknown {
    if (this.#prefix.length === 0) {
      this.#move(root);
      return root;
    }
    // the prefix ends with a wildcard: visit the values it reaches
    visitParents(root, this.#prefix, false, (parent, last) => {
      if (last === ANY_INDEX) {
        if (Array.isArray(parent)) for (let i = 0; i < parent.length; i++) this.#move(parent[i]);
      } else if (isObject(parent)) for (const k in parent) this.#move(parent[k]);
    });
    return root;
  }
  #move(base: unknown): void {
    let found = false;
    let value: unknown;
    visitParents(base, this.#from, false, (parent, last) => {
      if (typeof last === 'number') {
        if (Array.isArray(parent) && last < parent.length) {
          value = parent.splice(last, 1)[0];
          found = true;
        }
      } else if (isObject(parent) && Object.hasOwn(parent, last as string)) {
        value = parent[last as string];
        delete parent[last as string];
        found = true;
      }
    });
    if (!found) return;
    visitParents(base, this.#to, true, (parent, last) => {
      if (typeof last === 'number') {
        if (Array.isArray(parent) && last <= parent.length) parent.splice(last, 0, value);
      } else if (isObject(parent)) parent[last] = value;
    });
  }
}

interface KeepNode {
  /** keep the whole value here */
  leaf: boolean;
  keys: Map<string, KeepNode>;
  anyKey: KeepNode | null;
  indexes: Map<number, KeepNode>;
  anyIndex: KeepNode | null;
}

const keepNode = (): KeepNode => ({ leaf: false, keys: new Map(), anyKey: null, indexes: new Map(), anyIndex: null });

/**
 * keep: an allow-list, so it fails closed: a value where the list expects an object or an array (a string in place
 * of `user` for `user.name`) is dropped rather than kept whole.
 */
class KeepOp implements JsonOp {
  readonly #tree: KeepNode;
  constructor(paths: Step[][]) {
    this.#tree = keepNode();
    for (const steps of paths) {
      let node = this.#tree;
      for (const s of steps) {
        if (node.leaf) break;
        if (s === ANY_KEY) node = node.anyKey ??= keepNode();
        else if (s === ANY_INDEX) node = node.anyIndex ??= keepNode();
        else if (typeof s === 'number') {
          let next = node.indexes.get(s);
          if (next === undefined) node.indexes.set(s, (next = keepNode()));
          node = next;
        } else {
          let next = node.keys.get(s);
          if (next === undefined) node.keys.set(s, (next = keepNode()));
          node = next;
        }
      }
      node.leaf = true;
    }
  }
  apply(root: unknown): unknown {
    const kept = keep(root, this.#tree);
    // the root itself is never dropped: a root of the wrong shape becomes an empty one
    return kept === DROP ? (Array.isArray(root) ? [] : {}) : kept;
  }
}

const DROP = Symbol('drop');

function keep(value: unknown, node: KeepNode): unknown {
  if (node.leaf) return value;
  if (Array.isArray(value)) {
    if (node.anyIndex === null && node.indexes.size === 0) return DROP;
    const out: unknown[] = [];
    for (let i = 0; i < value.length; i++) {
      const child = node.indexes.get(i) ?? node.anyIndex;
      if (child === null || child === undefined) continue;
      const v = keep(value[i], child);
      if (v !== DROP) out.push(v);
    }
    return out;
  }
  if (isObject(value)) {
    if (node.anyKey === null && node.keys.size === 0) return DROP;
    for (const k in value) {
      const child = node.keys.get(k) ?? node.anyKey;
      if (child === null || child === undefined) {
        delete value[k];
        continue;
      }
      const v = keep(value[k], child);
      if (v === DROP) delete value[k];
      else value[k] = v;
    }
    return value;
  }
  return DROP;
}

/** Compiles one operation; throws OperationError naming the part of it that is wrong. */
export function compileOperation(op: OperationConfig): JsonOp {
  if ('set' in op) return new SetOp(parse(op.set.path, 'set.path'), op.set.value, false);
  if ('add' in op) return new SetOp(parse(op.add.path, 'add.path'), op.add.value, true);
  if ('remove' in op) {
    const list = op.remove.map((p, i) => new RemoveOp(parse(p, `remove[${i}]`)));
    return list.length === 1 ? list[0] : { apply: (root) => (list.forEach((o) => o.apply(root)), root) };
  }
  if ('rename' in op) {
    const from = parse(op.rename.from, 'rename.from');
    const to = parse(op.rename.to, 'rename.to');
    // the prefix both paths share, up to and including from's last wildcard
    let lastWild = -1;
    for (let i = 0; i < from.length; i++) if (from[i] === ANY_KEY || from[i] === ANY_INDEX) lastWild = i;
    const prefix = from.slice(0, lastWild + 1);
    for (let i = 0; i < prefix.length; i++) {
      if (to[i] !== prefix[i]) throw new OperationError('rename.to', `"${op.rename.to}" must start like "${op.rename.from}" up to its last wildcard, so that each value moves within its own element`);
    }
    const restFrom = from.slice(prefix.length);
    const restTo = to.slice(prefix.length);
    if (restFrom.length === 0) throw new OperationError('rename.from', `"${op.rename.from}" ends with a wildcard: name one field to move`);
    if (restTo.length === 0 || hasWildcard(restTo)) throw new OperationError('rename.to', `"${op.rename.to}" has wildcards of its own beyond those of "from"`);
    return new RenameOp(prefix, restFrom, restTo);
  }
  if ('keep' in op) return new KeepOp(op.keep.map((p, i) => parse(p, `keep[${i}]`)));
  throw new OperationError('', 'an operation needs one of set, add, remove, rename, keep');
}

/** Applies a list of compiled operations in order. */
export function applyAll(ops: readonly JsonOp[], root: unknown): unknown {
  for (let i = 0; i < ops.length; i++) root = ops[i].apply(root);
  return root;
}

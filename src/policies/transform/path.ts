/**
 * JSON field paths of the transform policy, parsed once when a config loads:
 *
 *   user.name            a key, then a key
 *   items[*].price       every element of an array, then a key
 *   items[0]             one element
 *   meta.*               every key of an object
 *   ["a.b"].c            a key with dots or brackets in it, quoted
 *
 * A parsed path is an array of steps: a string is a key, a number an index, ANY_KEY / ANY_INDEX the wildcards.
 */
export const ANY_KEY = -1;
export const ANY_INDEX = -2;
export type Step = string | number;

export class PathError extends Error {}

const NAME_END = /[.[\]]/;
// Assigning to these on a plain object changes its prototype, not a field.
const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);

export function parsePath(path: string): Step[] {
  const steps: Step[] = [];
  let i = 0;
  const n = path.length;
  if (n === 0) throw new PathError('the path is empty');
  if (path.length > 1024) throw new PathError('the path is longer than 1024 characters');
  let expectName = true;
  while (i < n) {
    const c = path[i];
    if (c === '[') {
      const close = path.indexOf(']', i);
      if (close < 0) throw new PathError(`"[" at ${i} is not closed`);
      const inner = path.slice(i + 1, close).trim();
      if (inner === '*') steps.push(ANY_INDEX);
      else if (/^\d{1,9}$/.test(inner)) steps.push(Number(inner));
      else if ((inner.startsWith('"') && inner.endsWith('"')) || (inner.startsWith("'") && inner.endsWith("'"))) {
        if (inner.length < 3) throw new PathError(`empty quoted key at ${i}`);
        const key = inner.slice(1, -1);
        if (FORBIDDEN.has(key)) throw new PathError(`"${key}" at ${i} cannot be a key here`);
        steps.push(key);
      } else throw new PathError(`"[${inner}]" at ${i} is neither an index, [*] nor a quoted key`);
      i = close + 1;
      expectName = false;
      continue;
    }
    if (c === '.') {
      if (expectName) throw new PathError(`empty key at ${i}`);
      i++;
      expectName = true;
      if (i === n) throw new PathError('the path ends with "."');
      continue;
    }
    if (c === ']') throw new PathError(`"]" at ${i} has no "["`);
    if (!expectName) throw new PathError(`"." expected at ${i}`);
    const rest = path.slice(i);
    const m = NAME_END.exec(rest);
    const name = m === null ? rest : rest.slice(0, m.index);
    if (FORBIDDEN.has(name)) throw new PathError(`"${name}" at ${i} cannot be a key here`);
    steps.push(name === '*' ? ANY_KEY : name);
    i += name.length;
    expectName = false;
  }
  return steps;
}

export function hasWildcard(steps: readonly Step[]): boolean {
  return steps.some((s) => s === ANY_KEY || s === ANY_INDEX);
}

type Json = unknown;
type Container = Record<string, Json> | Json[];

function isObject(v: Json): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Calls `fn(parent, last)` for every container reached by all steps but the last (wildcards fan out). With `create`,
 * missing objects on named keys are made on the way (a set on a new path); wildcards only visit what exists.
 */
export function visitParents(root: Json, steps: readonly Step[], create: boolean, fn: (parent: Container, last: Step) => void): void {
  walk(root, steps, 0, create, fn);
}

function walk(node: Json, steps: readonly Step[], i: number, create: boolean, fn: (parent: Container, last: Step) => void): void {
  if (typeof node !== 'object' || node === null) return;
  if (i === steps.length - 1) {
    fn(node as Container, steps[i]);
    return;
  }
  const s = steps[i];
  if (s === ANY_INDEX) {
    if (Array.isArray(node)) for (let k = 0; k < node.length; k++) walk(node[k], steps, i + 1, create, fn);
  } else if (s === ANY_KEY) {
    if (isObject(node)) for (const k in node) walk(node[k], steps, i + 1, create, fn);
  } else if (typeof s === 'number') {
    if (Array.isArray(node) && s < node.length) walk(node[s], steps, i + 1, create, fn);
  } else if (isObject(node)) {
    let next = Object.hasOwn(node, s) ? node[s] : undefined;
    if (next === undefined && create) {
      const after = steps[i + 1];
      if (after === ANY_KEY || after === ANY_INDEX) return; // a wildcard visits what exists: nothing to create under
      next = typeof after === 'number' ? [] : {};
      node[s] = next;
    }
    walk(next, steps, i + 1, create, fn);
  }
}

/** Calls `fn(value, parent, key)` for every value the whole path reaches. */
export function visitValues(root: Json, steps: readonly Step[], fn: (value: Json, parent: Container, key: string | number) => void): void {
  visitParents(root, steps, false, (parent, last) => {
    if (last === ANY_INDEX) {
      if (Array.isArray(parent)) for (let k = 0; k < parent.length; k++) fn(parent[k], parent, k);
    } else if (last === ANY_KEY) {
      if (isObject(parent)) for (const k in parent) fn(parent[k], parent, k);
    } else if (typeof last === 'number') {
      if (Array.isArray(parent) && last < parent.length) fn(parent[last], parent, last);
    } else if (isObject(parent) && Object.hasOwn(parent, last)) fn(parent[last], parent, last);
  });
}

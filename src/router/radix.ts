/**
 * A radix tree over request paths, built when the config loads and walked per request without allocating.
 *
 *   "/"                         a node consumes its `label` (static characters)
 *    ├─ "users/"                kids: static children keyed by their first char code
 *    │    ├─ "new"     exact → [route 3]
 *    │    └─ :param             param: one whole segment (up to the next "/"), then its own subtree
 *    │          └─ exact → [route 4]       (/users/:id)
 *    └─ "static/"  wild → [route 7]        (/static/*: everything below)
 *
 * Preference at every node: static child, then param, then wildcard. A depth-first walk in that order returns the
 * match whose segment kinds are lexicographically greatest, which is the documented rule "exact over param over
 * wildcard, longest match first". It backtracks when a branch dead-ends or when no candidate there passes its
 * method and predicate checks. Cost depends on the path's length, not on the number of routes.
 *
 * The tree is plain data (objects, arrays, numbers, strings) so the control plane can build it once and hand it to
 * every worker by structured clone.
 */

export interface RadixNode {
  label: string;
  /** static children by the char code of their first label character */
  kids: Record<number, RadixNode> | null;
  /** child that consumes one non-empty path segment */
  param: RadixNode | null;
  /** candidate route ids ending exactly here, best rank first */
  exact: number[] | null;
  /** candidate route ids that take the rest of the path from here, best rank first */
  wild: number[] | null;
}

export type PatternPart = { kind: 'static'; text: string } | { kind: 'param'; name: string } | { kind: 'wild' };

export function newNode(label: string): RadixNode {
  return { label, kids: null, param: null, exact: null, wild: null };
}

function commonPrefixLength(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

function insertStatic(node: RadixNode, text: string): RadixNode {
  while (text.length > 0) {
    const code = text.charCodeAt(0);
    if (node.kids === null) node.kids = {};
    const child = node.kids[code];
    if (child === undefined) {
      const leaf = newNode(text);
      node.kids[code] = leaf;
      return leaf;
    }
    const common = commonPrefixLength(child.label, text);
    if (common < child.label.length) {
      // split: node -> mid(label[0:common]) -> child(label[common:])
      const mid = newNode(child.label.slice(0, common));
      child.label = child.label.slice(common);
      mid.kids = { [child.label.charCodeAt(0)]: child };
      node.kids[code] = mid;
      node = mid;
    } else {
      node = child;
    }
    text = text.slice(common);
  }
  return node;
}

/** Inserts a parsed pattern and returns the list the route id must join (exact or wild of the last node). */
export function insertPattern(root: RadixNode, parts: readonly PatternPart[]): { node: RadixNode; list: 'exact' | 'wild' } {
  let node = root;
  for (const part of parts) {
    if (part.kind === 'static') node = insertStatic(node, part.text);
    else if (part.kind === 'param') node = node.param ??= newNode('');
    else return { node, list: 'wild' };
  }
  return { node, list: 'exact' };
}

/**
 * Parses `/users/:id/posts`, `/static/*` into parts. Params and the wildcard must take whole segments.
 * Returns a string describing the problem when the pattern is invalid.
 */
export function parsePattern(pattern: string): PatternPart[] | string {
  if (!pattern.startsWith('/')) return 'must start with "/"';
  const parts: PatternPart[] = [];
  let text = '';
  const segments = pattern.split('/');
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i];
    text += '/';
    if (seg.startsWith(':')) {
      const name = seg.slice(1);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return `param "${seg}" needs a name of letters, digits and _`;
      parts.push({ kind: 'static', text });
      text = '';
      parts.push({ kind: 'param', name });
    } else if (seg === '*') {
      if (i !== segments.length - 1) return 'the wildcard "*" may only be the last segment';
      parts.push({ kind: 'static', text });
      return [...parts.filter((p) => p.kind !== 'static' || p.text !== ''), { kind: 'wild' }];
    } else if (seg.includes('*') || seg.includes(':')) {
      return `segment "${seg}" mixes text with ":" or "*"; params and wildcards take whole segments`;
    } else {
      text += seg;
    }
  }
  if (text) parts.push({ kind: 'static', text });
  return parts.filter((p) => p.kind !== 'static' || p.text !== '');
}

/** Per-worker scratch space for one match: where params and the wildcard rest start and end. */
export class MatchScratch {
  readonly paramStart = new Int32Array(32);
  readonly paramEnd = new Int32Array(32);
  wildStart = -1;
}

/** Decides whether a candidate route accepts the request (method and predicates); set by the owner of the tree. */
export type CandidateCheck = (routeId: number) => boolean;

/**
 * Walks the tree from `node` (whose label is already consumed) at `pos`. Returns a route id or -1.
 */
export function walk(
  node: RadixNode,
  path: string,
  pos: number,
  depth: number,
  scratch: MatchScratch,
  accept: CandidateCheck,
): number {
  const len = path.length;
  if (pos === len) {
    const exact = node.exact;
    if (exact !== null) {
      for (let i = 0; i < exact.length; i++) if (accept(exact[i])) return exact[i];
    }
  } else {
    const kids = node.kids;
    if (kids !== null) {
      const kid = kids[path.charCodeAt(pos)];
      if (kid !== undefined && path.startsWith(kid.label, pos)) {
        const r = walk(kid, path, pos + kid.label.length, depth, scratch, accept);
        if (r >= 0) return r;
      }
    }
    const param = node.param;
    if (param !== null && path.charCodeAt(pos) !== 47 /* "/" */ && depth < 32) {
      let end = path.indexOf('/', pos);
      if (end < 0) end = len;
      scratch.paramStart[depth] = pos;
      scratch.paramEnd[depth] = end;
      const r = walk(param, path, end, depth + 1, scratch, accept);
      if (r >= 0) return r;
    }
  }
  const wild = node.wild;
  if (wild !== null) {
    for (let i = 0; i < wild.length; i++) {
      if (accept(wild[i])) {
        scratch.wildStart = pos;
        return wild[i];
      }
    }
  }
  return -1;
}

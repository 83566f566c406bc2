import { PiiMasker, type DetectorConfig, type MaskKind, type MaskStyle } from '../../shared/pii.js';
import { applyAll, compileOperation, OperationError, type JsonOp, type OperationConfig } from './ops.js';
import { PathError, parsePath, visitValues, type Step } from './path.js';

/**
 * What one body side (request or response) of a transform does to a parsed JSON body, compiled once per config:
 *
 *   request:  version mapping (client's shape -> upstream's) -> operations -> masking
 *   response: operations -> scope filtering -> masking -> version mapping (upstream's shape -> client's)
 *
 * so every path of the operations, scopes and masks names a field in the upstream's shape, whatever version the
 * client speaks. The same class runs on the worker's event loop and in the piscina pool (pool-worker.ts), built
 * from the same structured-clone-safe config.
 */
export interface MaskConfig {
  /** built-in detectors over every string (and card numbers written as JSON numbers) */
  detect: { type: MaskKind; style?: MaskStyle }[];
  /** configured patterns (national ids…) over every string */
  patterns: { name: string; regex: string; style?: MaskStyle }[];
  /** whole values by path */
  fields: { path: string; style?: MaskStyle }[];
  /** whole values by key name, at any depth */
  keys: { name: string; style?: MaskStyle }[];
  style: MaskStyle;
  hashKey?: string;
}

export interface ScopeRule {
  path: string;
  /** the field stays when the consumer has any of these scopes */
  anyOf: string[];
}

export interface ProgramConfig {
  operations: OperationConfig[];
  scopes: ScopeRule[];
  mask: MaskConfig | null;
  /** version mappings of this side, by the version value; applied before (request) or after (response) the rest */
  versions: Record<string, OperationConfig[]>;
}

/** A config problem, with its path relative to the program's config ("operations[2].rename.to"). */
export class ProgramError extends Error {
  constructor(
    readonly where: string,
    message: string,
  ) {
    super(message);
  }
}

function ops(list: readonly OperationConfig[], where: string): JsonOp[] {
  return list.map((op, i) => {
    try {
      return compileOperation(op);
    } catch (err) {
      if (err instanceof OperationError) throw new ProgramError(`${where}[${i}]${err.where ? '.' + err.where : ''}`, err.message);
      throw err;
    }
  });
}

function path(p: string, where: string): Step[] {
  try {
    return parsePath(p);
  } catch (err) {
    if (err instanceof PathError) throw new ProgramError(where, `cannot parse the path "${p}": ${err.message}`);
    throw err;
  }
}

const CARD_MIN = 1e12;

export class BodyProgram {
  readonly #ops: JsonOp[];
  readonly #scopes: { remove: JsonOp; anyOf: readonly string[] }[];
  readonly #masker: PiiMasker | null;
  readonly #maskCards: boolean;
  readonly #fields: { steps: Step[]; style: MaskStyle }[];
  readonly #keys: Map<string, MaskStyle> | null;
  readonly #versions: Map<string, JsonOp[]>;
  readonly #request: boolean;
  /** the masker has detectors (strings are scanned) */
  readonly #scan: boolean;

  constructor(config: ProgramConfig, side: 'request' | 'response') {
    this.#request = side === 'request';
    this.#ops = ops(config.operations, 'operations');
    this.#scopes = config.scopes.map((r, i) => {
      path(r.path, `scopes[${i}].path`);
      return { remove: compileOperation({ remove: [r.path] }), anyOf: r.anyOf };
    });
    this.#versions = new Map(Object.entries(config.versions).map(([v, list]) => [v, ops(list, `versions.${v}`)]));
    const m = config.mask;
    if (m === null) {
      this.#masker = null;
      this.#maskCards = false;
      this.#fields = [];
      this.#keys = null;
      this.#scan = false;
    } else {
      const detectors: DetectorConfig[] = [
        ...m.detect.map((d) => ({ kind: d.type, style: d.style ?? m.style })),
        ...m.patterns.map((p) => ({ kind: 'pattern' as const, regex: p.regex, style: p.style ?? m.style })),
      ];
      this.#masker = new PiiMasker(detectors, m.hashKey ?? null);
      this.#maskCards = m.detect.some((d) => d.type === 'card');
      this.#fields = m.fields.map((f, i) => ({ steps: path(f.path, `mask.fields[${i}].path`), style: f.style ?? m.style }));
      this.#keys = m.keys.length > 0 ? new Map(m.keys.map((k) => [k.name, k.style ?? m.style])) : null;
      this.#scan = detectors.length > 0;
    }
  }

  /** The program has version mappings (the policy then reads the request's version). */
  get versioned(): boolean {
    return this.#versions.size > 0;
  }

  get masks(): boolean {
    return this.#masker !== null;
  }

  /**
   * Transforms a parsed body in place where it can and returns the new root. `scopes` are the consumer's (null: no
   * consumer: every scoped field is removed); `version` picks a mapping (null or unknown: none).
   */
  apply(root: unknown, scopes: readonly string[] | null, version: string | null): unknown {
    const mapping = version === null ? undefined : this.#versions.get(version);
    if (this.#request && mapping !== undefined) root = applyAll(mapping, root);
    root = applyAll(this.#ops, root);
    for (let i = 0; i < this.#scopes.length; i++) {
      const rule = this.#scopes[i];
      if (scopes !== null && rule.anyOf.some((s) => scopes.includes(s))) continue;
      rule.remove.apply(root);
    }
    if (this.#masker !== null) root = this.#mask(root);
    if (!this.#request && mapping !== undefined) root = applyAll(mapping, root);
    return root;
  }

  /** Pattern masking of a text body (text/plain…): the detectors only. */
  maskText(text: string): string {
    return this.#masker === null ? text : this.#masker.mask(text);
  }

  #mask(root: unknown): unknown {
    const masker = this.#masker!;
    for (const f of this.#fields) visitValues(root, f.steps, (v, parent, key) => ((parent as Record<string | number, unknown>)[key] = this.#whole(v, f.style)));
    if (this.#keys === null && !this.#scan) return root;
    return this.#walk(root, masker);
  }

  /** A whole value masked (objects and arrays become the mask of their JSON text: nothing of them is kept). */
  #whole(v: unknown, style: MaskStyle): unknown {
    if (v === null || v === undefined) return v;
    return this.#masker!.apply(typeof v === 'string' ? v : JSON.stringify(v), style);
  }

  #walk(node: unknown, masker: PiiMasker): unknown {
    if (typeof node === 'string') return this.#scan ? masker.mask(node) : node;
    if (typeof node === 'number') {
      // a card number sent as a JSON number: 13 to 19 digits (doubles hold 15-16 exactly; longer ones are rounded
      // already, and masked if their digits still pass)
      if (this.#maskCards && Number.isInteger(node) && Math.abs(node) >= CARD_MIN) {
        const s = String(node);
        const masked = masker.mask(s);
        return masked === s ? node : masked;
      }
      return node;
    }
    if (typeof node !== 'object' || node === null) return node;
    const keys = this.#keys;
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) node[i] = this.#walk(node[i], masker);
      return node;
    }
    const obj = node as Record<string, unknown>;
    for (const k in obj) {
      const style = keys === null ? undefined : keys.get(k);
      obj[k] = style !== undefined ? this.#whole(obj[k], style) : this.#walk(obj[k], masker);
    }
    return node;
  }
}

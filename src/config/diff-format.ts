import { REDACTED } from './secrets.js';

/** What src/config/diff.ts finds, and how `nanogate diff` prints it (kept apart: printing needs no schema). */

export type ChangeKind = 'route' | 'upstream' | 'policy' | 'consumer' | 'setting';

export interface FieldChange {
  /** path inside the thing that changed, e.g. match.methods; empty for the thing as a whole */
  path: string;
  /** absent when the field was added */
  from?: unknown;
  /** absent when the field was removed */
  to?: unknown;
}

export interface ConfigChange {
  kind: ChangeKind;
  name: string;
  op: 'added' | 'removed' | 'changed';
  /** for "changed": what changed in it */
  fields?: FieldChange[];
}

/** A readable rendering, one line per change and one indented line per changed field (what `nanogate diff` prints). */
export function formatChanges(changes: readonly ConfigChange[]): string[] {
  const lines: string[] = [];
  const sign = { added: '+', removed: '-', changed: '~' } as const;
  for (const c of changes) {
    lines.push(`${sign[c.op]} ${c.kind} ${c.name}${c.op === 'changed' ? '' : ` (${c.op})`}`);
    for (const f of c.fields ?? []) {
      const where = f.path || '(whole)';
      if (!('from' in f)) lines.push(`    + ${where}: ${show(f.to)}`);
      else if (!('to' in f)) lines.push(`    - ${where}: ${show(f.from)}`);
      else lines.push(`    ~ ${where}: ${show(f.from)} -> ${show(f.to)}`);
    }
  }
  return lines;
}

function show(v: unknown): string {
  if (v === REDACTED) return REDACTED;
  const text = JSON.stringify(v) ?? 'undefined';
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}

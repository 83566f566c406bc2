import { isDeepStrictEqual } from 'node:util';
import { ConfigSchema, type Config } from './schema.js';
import { redactConfig } from './secrets.js';

/**
 * The difference between two validated configs (defaults filled in, so a default written out is no change), by the
 * things an operator names: routes by name, upstreams by key, global policies by name, consumers by id, and every
 * other top-level section as a setting. Values are shown with credentials redacted (src/config/secrets.ts); a
 * changed credential is shown as changed, never its value.
 */

export type { ChangeKind, ConfigChange, FieldChange } from './diff-format.js';
import type { ChangeKind, ConfigChange, FieldChange } from './diff-format.js';

type Entries = Map<string, { raw: unknown; shown: unknown }>;

export function diffConfigs(before: Config, after: Config): ConfigChange[] {
  const shownBefore = redactConfig(before, ConfigSchema) as Record<string, unknown>;
  const shownAfter = redactConfig(after, ConfigSchema) as Record<string, unknown>;
  const rawBefore = before as unknown as Record<string, unknown>;
  const rawAfter = after as unknown as Record<string, unknown>;
  const changes: ConfigChange[] = [];
  const sections: [ChangeKind, string, (raw: Record<string, unknown>, shown: Record<string, unknown>) => Entries][] = [
    ['setting', '', settings],
    ['upstream', 'upstreams', (r, s) => byKey(r.upstreams, s.upstreams)],
    ['policy', 'policies', (r, s) => byKey(r.policies, s.policies)],
    ['route', 'routes', (r, s) => byField(r.routes, s.routes, 'name')],
    ['consumer', 'consumers', (r, s) => byField(r.consumers, s.consumers, 'id')],
  ];
  for (const [kind, , entries] of sections) {
    const a = entries(rawBefore, shownBefore);
    const b = entries(rawAfter, shownAfter);
    for (const [name, x] of a) {
      const y = b.get(name);
      if (y === undefined) changes.push({ kind, name, op: 'removed' });
      else if (!isDeepStrictEqual(x.raw, y.raw)) changes.push({ kind, name, op: 'changed', fields: fieldChanges(x.raw, y.raw, x.shown, y.shown, '') });
    }
    for (const name of b.keys()) if (!a.has(name)) changes.push({ kind, name, op: 'added' });
  }
  return changes;
}

/** Top-level sections other than the named collections. */
function settings(raw: Record<string, unknown>, shown: Record<string, unknown>): Entries {
  const out: Entries = new Map();
  for (const key of Object.keys(raw)) {
    if (key === 'upstreams' || key === 'policies' || key === 'routes' || key === 'consumers' || key === '$schema') continue;
    out.set(key, { raw: raw[key], shown: shown[key] });
  }
  return out;
}

function byKey(raw: unknown, shown: unknown): Entries {
  const out: Entries = new Map();
  if (raw === null || typeof raw !== 'object') return out;
  for (const [k, v] of Object.entries(raw)) out.set(k, { raw: v, shown: (shown as Record<string, unknown>)[k] });
  return out;
}

function byField(raw: unknown, shown: unknown, field: string): Entries {
  const out: Entries = new Map();
  if (!Array.isArray(raw)) return out;
  raw.forEach((v, i) => out.set(String((v as Record<string, unknown>)[field]), { raw: v, shown: (shown as unknown[])[i] }));
  return out;
}

/** The changed leaves of two values; lists of different lengths, and values of different kinds, change whole. */
function fieldChanges(a: unknown, b: unknown, sa: unknown, sb: unknown, path: string): FieldChange[] {
  if (isDeepStrictEqual(a, b)) return [];
  const bothObjects = isObject(a) && isObject(b);
  const sameLists = Array.isArray(a) && Array.isArray(b) && a.length === b.length;
  if (!bothObjects && !sameLists) return [{ path, from: sa, to: sb }];
  const out: FieldChange[] = [];
  if (sameLists) {
    (a as unknown[]).forEach((x, i) => out.push(...fieldChanges(x, (b as unknown[])[i], (sa as unknown[])[i], (sb as unknown[])[i], `${path}[${i}]`)));
    return out;
  }
  const oa = a as Record<string, unknown>;
  const ob = b as Record<string, unknown>;
  const osa = sa as Record<string, unknown>;
  const osb = sb as Record<string, unknown>;
  for (const k of new Set([...Object.keys(oa), ...Object.keys(ob)])) {
    const p = path ? `${path}.${k}` : k;
    if (!(k in ob)) out.push({ path: p, from: osa[k] });
    else if (!(k in oa)) out.push({ path: p, to: osb[k] });
    else out.push(...fieldChanges(oa[k], ob[k], osa[k], osb[k], p));
  }
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

import type { TSchema } from '@sinclair/typebox';

/**
 * Which config values are credentials is said once, in the schema, by the `secret` annotation on a field:
 *
 *   secret: true     the value is a credential: a string is replaced by "[redacted]"; in an object or array (a map
 *                    of header values) every string and number inside is, while the keys stay visible
 *   secret: 'url'    a URL that may carry credentials in its userinfo: the password (or a lone userinfo, which
 *                    some clients read as a password) is replaced, the rest of the URL stays readable
 *   secret: false    looks like a credential by its name but is not one (a file path, a digest, a limit): said so
 *                    explicitly, so that test/unit/secrets.test.ts can require a decision for every such field
 *
 * Ajv treats `secret` as an annotation (src/config/load.ts); TypeBox copies it into the JSON Schema as it is.
 * Everything the control plane shows or writes about a config (admin API, version history, audit log, its own
 * log lines) goes through redactConfig or scrub, never through a list of key names that a new field can escape.
 */
export type SecretKind = true | 'url' | false;

export const REDACTED = '[redacted]';

/** One schema node as plain JSON Schema (TypeBox schemas are JSON Schema objects with symbol-keyed extras). */
type Node = TSchema & {
  secret?: SecretKind;
  properties?: Record<string, Node>;
  patternProperties?: Record<string, Node>;
  additionalProperties?: boolean | Node;
  items?: Node | Node[];
  anyOf?: Node[];
  oneOf?: Node[];
  allOf?: Node[];
};

/** scheme://userinfo@ : the userinfo of any URL in a text (also one inside an error message). */
const URL_USERINFO = /([a-z][a-z0-9+.-]*:\/\/)([^/?#@\s"'<>]*)@/gi;

/** A URL with the password of its userinfo replaced: redis://app:[redacted]@10.0.0.5:6379/0. */
export function redactUrl(url: string): string {
  return url.replace(URL_USERINFO, (_all, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    return `${scheme}${colon >= 0 ? userinfo.slice(0, colon + 1) : ''}${REDACTED}@`;
  });
}

/**
 * A deep copy of `value` (a config, or any part of one with its schema) in which every field the schema marks secret
 * is redacted. Unknown keys and values the schema does not describe are copied as they are.
 */
export function redactConfig<T>(value: T, schema: TSchema): T {
  return walk(value, schema as Node, (v, kind) => (kind === 'url' ? (typeof v === 'string' ? redactUrl(v) : v) : hideAll(v))) as T;
}

/**
 * The credentials a config holds, as they appear in it (for `scrub`): every value under a field marked `secret: true`,
 * and the userinfo of URLs marked `secret: 'url'`. Strings shorter than 4 characters are left out: replacing "a" or
 * "1" everywhere in a message would garble it and hide nothing worth hiding.
 */
export function secretValues(value: unknown, schema: TSchema): string[] {
  const out = new Set<string>();
  walk(value, schema as Node, (v, kind) => {
    if (kind === 'url') {
      if (typeof v === 'string') for (const m of v.matchAll(URL_USERINFO)) addUserinfo(out, m[2]);
    } else collectLeaves(v, out);
    return v;
  });
  return [...out].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
}

/**
 * A message with every known credential and every URL password replaced: for error texts and warnings that may
 * quote a config value (a URL that did not parse, a policy's complaint) before they reach a log, the audit log or an
 * admin API answer.
 */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = redactUrl(text);
  // Longest first (secretValues sorts), so a secret that contains another is replaced whole.
  for (const s of secrets) if (out.includes(s)) out = out.split(s).join(REDACTED);
  return out;
}

function addUserinfo(out: Set<string>, userinfo: string): void {
  const colon = userinfo.indexOf(':');
  const secret = colon >= 0 ? userinfo.slice(colon + 1) : userinfo;
  out.add(secret);
  // A client decodes %XX in the userinfo; a message may quote either form.
  try {
    out.add(decodeURIComponent(secret));
  } catch {
    // not percent-encoded text: the raw form is enough
  }
}

function collectLeaves(v: unknown, out: Set<string>): void {
  if (typeof v === 'string') out.add(v);
  else if (typeof v === 'number') out.add(String(v));
  else if (Array.isArray(v)) for (const x of v) collectLeaves(x, out);
  else if (v !== null && typeof v === 'object') for (const x of Object.values(v)) collectLeaves(x, out);
}

function hideAll(v: unknown): unknown {
  if (typeof v === 'string' || typeof v === 'number') return REDACTED;
  if (Array.isArray(v)) return v.map(hideAll);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = hideAll(x);
    return out;
  }
  return v;
}

type OnSecret = (value: unknown, kind: 'url' | true) => unknown;

/** Copies `value` along `schema`, handing every value under a secret annotation to `onSecret`. */
function walk(value: unknown, schema: Node | undefined, onSecret: OnSecret): unknown {
  if (schema === undefined) return copy(value);
  if (schema.secret === true || schema.secret === 'url') return onSecret(value, schema.secret);
  // A union: a value is walked along every branch of its own shape; each branch redacts what it marks.
  const branches = schema.anyOf ?? schema.oneOf;
  if (branches) {
    let out = copy(value);
    for (const b of branches) if (fits(value, b)) out = walk(out, b, onSecret);
    return out;
  }
  if (Array.isArray(value)) {
    const items = schema.items;
    return value.map((x, i) => walk(x, Array.isArray(items) ? items[i] : items, onSecret));
  }
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    const pattern = schema.patternProperties ? Object.entries(schema.patternProperties).map(([p, s]) => [new RegExp(p), s] as const) : [];
    for (const [k, x] of Object.entries(value)) {
      let sub = schema.properties?.[k];
      if (sub === undefined) sub = pattern.find(([re]) => re.test(k))?.[1];
      if (sub === undefined && typeof schema.additionalProperties === 'object') sub = schema.additionalProperties;
      out[k] = walk(x, sub, onSecret);
    }
    return out;
  }
  return value;
}

function fits(value: unknown, schema: Node): boolean {
  const t = (schema as { type?: string }).type;
  if (t === undefined) return true;
  if (t === 'object') return value !== null && typeof value === 'object' && !Array.isArray(value);
  if (t === 'array') return Array.isArray(value);
  if (t === 'integer' || t === 'number') return typeof value === 'number';
  return typeof value === t;
}

function copy(value: unknown): unknown {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

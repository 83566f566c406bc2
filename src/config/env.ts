import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { isMap, isPair, isScalar, isSeq, type Document, type Scalar } from 'yaml';
import type { ConfigIssue } from './errors.js';
import { TEMPLATE_VARIABLE } from '../pipeline/template.js';

/**
 * `${VAR}`, `${VAR:-default}` and `${file:PATH}` in a config, substituted into the parsed values, never into the
 * text. Substituting text let a value rewrite the file around it: a password with ` #` lost its tail to a
 * comment, one with `"` broke the quoting, and one with a newline could add keys of its own.
 *
 * Two steps, because YAML itself cannot parse `{ port: ${PORT} }` (`{` is a flow indicator):
 *   1. before parsing, each reference in the text (outside comments) is replaced by a placeholder made of
 *      private-use characters, which YAML reads as ordinary characters of any scalar, quoted or not;
 *   2. after parsing, every scalar that holds a placeholder gets the reference's value, as characters.
 *
 * Types: a plain (unquoted) scalar that is exactly one reference reads as a number when the value is a decimal
 * number and as a boolean when it is `true` or `false`, so `port: ${PORT:-8080}` is an integer; everything else
 * (a quoted scalar, a reference inside other text, any other value) is a string. Never a mapping or a list.
 * `$${` is a literal `${`.
 *
 * References to the request (`${params.id}`, `${query.q}`, `${header.x-user}`, `${consumer.id}`, `${request.id}`,
 * `${client.ip}`, `${route}` …) are not the config's: they stay as written, for the fields that template them per
 * request (aggregate calls, transforms). Environment variable names have no dots, so the two never meet.
 */

/** First and last character of a placeholder; the reference's index sits between them (PLACE_BASE + index). */
const OPEN = '\uE000';
const CLOSE = '\uE001';
const PAD = '\uE002';
const PLACE_BASE = 0xe100;
const MAX_REFS = 0xf8ff - PLACE_BASE;
const PLACEHOLDER = /\uE000([\uE100-\uF8FF])\uE002*\uE001/g;
const REFERENCE = /\$?\$\{([^}\n]*)\}/g;
const ENV_REF = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s;
const FILE_REF = /^file:(.+)$/s;
const REQUEST_REF = /^(?:(?:params|query|header|cookie|consumer|request|client|route)\.[^\s{}$]+|route)$/;
const NUMBER = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/;

interface Reference {
  /** what was between the braces */
  body: string;
  line: number;
}

export interface Substitution {
  /** the text with placeholders, to be parsed */
  text: string;
  /** replaces the placeholders in the parsed document; returns the paths of values whose variable was unset */
  apply(doc: Document): string[][];
}

/**
 * Step 1: the text with every reference replaced by a placeholder of the same length where possible (so columns
 * in syntax errors stay right). `baseDir` is where a relative `${file:PATH}` is read from.
 */
export function prepareSubstitution(text: string, env: NodeJS.ProcessEnv, baseDir: string, issues: ConfigIssue[]): Substitution {
  const refs: Reference[] = [];
  const out = text.split('\n');
  for (let n = 0; n < out.length; n++) {
    const line = out[n];
    if (!line.includes('${')) continue;
    // A comment may mention ${VAR} without it having to be set: only the part before a comment is looked at.
    const cut = commentStart(line);
    const code = line.slice(0, cut).replace(REFERENCE, (whole: string, body: string) => {
      if (whole.startsWith('$$')) return whole.slice(1); // escaped: a literal ${...}
      // a request-time template of a header or query value (src/pipeline/template.ts), filled in per request
      if (TEMPLATE_VARIABLE.test(body)) return whole;
      if (refs.length >= MAX_REFS) {
        issues.push({ path: '', message: `line ${n + 1}: more than ${MAX_REFS} \${...} references in one file` });
        return whole;
      }
      refs.push({ body, line: n + 1 });
      const mark = OPEN + String.fromCharCode(PLACE_BASE + refs.length - 1);
      return mark + PAD.repeat(Math.max(0, whole.length - mark.length - 1)) + CLOSE;
    });
    out[n] = code + line.slice(cut);
  }
  return {
    text: out.join('\n'),
    apply: (doc) => (refs.length ? substitute(doc, refs, env, baseDir, issues) : []),
  };
}

/** Step 2: walks the document and puts each reference's value into the scalar that holds it. */
function substitute(doc: Document, refs: readonly Reference[], env: NodeJS.ProcessEnv, baseDir: string, issues: ConfigIssue[]): string[][] {
  const unset: string[][] = [];
  const values = new Map<number, string | null>();
  /** a reference's value, or null when it has none (reported once, at its first use) */
  const valueOf = (index: number, path: readonly string[]): string | null => {
    if (values.has(index)) return values.get(index)!;
    const ref = refs[index];
    let value: string | null;
    const file = FILE_REF.exec(ref.body);
    const variable = file ? null : ENV_REF.exec(ref.body);
    if (file) value = readSecretFile(file[1].trim(), baseDir, path, issues);
    else if (REQUEST_REF.test(ref.body)) value = '${' + ref.body + '}';
    else if (variable) {
      const [, name, fallback] = variable;
      const set = env[name];
      value = set !== undefined && set !== '' ? set : (fallback ?? null);
      if (value === null) issues.push({ path: '', message: `line ${ref.line}: environment variable ${name} is not set`, hint: `set it or write \${${name}:-default}` });
    } else {
      issues.push({ path: '', message: `line ${ref.line}: "\${${ref.body}}" is not a reference nanogate knows`, hint: 'write ${VAR}, ${VAR:-default} or ${file:PATH}; $${ is a literal ${' });
      value = null;
    }
    values.set(index, value);
    return value;
  };

  const visitScalar = (node: Scalar, path: string[]): void => {
    if (typeof node.value !== 'string' || !node.value.includes(OPEN)) return;
    const source = node.value;
    let missing = false;
    const text = source.replace(PLACEHOLDER, (_m, c: string) => {
      const v = valueOf(c.charCodeAt(0) - PLACE_BASE, path);
      if (v === null) missing = true;
      return v ?? '';
    });
    if (missing) {
      // left out of the later stages like a schema error, without an error of its own
      unset.push(path);
      node.value = '';
      return;
    }
    const whole = source.match(PLACEHOLDER);
    if (node.type === 'PLAIN' && whole?.length === 1 && whole[0] === source) node.value = typed(text);
    else node.value = text;
  };

  const visit = (node: unknown, path: string[]): void => {
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? pair.key : null;
        if (key) visitScalar(key, path); // a key is text: no typing, and `${...}` in one is rare
        visit(pair.value, [...path, key ? String(key.value) : String(pair.key)]);
      }
    } else if (isSeq(node)) node.items.forEach((item, i) => visit(item, [...path, String(i)]));
    else if (isPair(node)) visit(node.value, path);
    else if (isScalar(node)) visitScalar(node, path);
  };
  visit(doc.contents, []);
  return unset;
}

/** A plain `${...}` scalar's value: a decimal number or a boolean when it reads as one, otherwise the text. */
function typed(text: string): string | number | boolean {
  if (text === 'true') return true;
  if (text === 'false') return false;
  if (NUMBER.test(text)) {
    const n = Number(text);
    if (Number.isFinite(n)) return n;
  }
  return text;
}

/**
 * `${file:PATH}`: the file's content without its trailing line break (secret files are usually written with one).
 * An unreadable file is a config error naming the file, the path in the config and the reason, never the content.
 */
function readSecretFile(path: string, baseDir: string, at: readonly string[], issues: ConfigIssue[]): string | null {
  const full = isAbsolute(path) ? path : resolve(baseDir, path);
  try {
    return readFileSync(full, 'utf8').replace(/(?:\r?\n)+$/, '');
  } catch (err) {
    issues.push({ path: formatPath(at), message: `cannot read the file "${full}" of \${file:...}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
    return null;
  }
}

function formatPath(parts: readonly string[]): string {
  let out = '';
  for (const key of parts) out += /^\d+$/.test(key) ? `[${key}]` : out ? `.${key}` : key;
  return out;
}

/** Index of a YAML comment ("#" at line start or after white space, outside quotes), or the line's length. */
function commentStart(line: string): number {
  let quote = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = '';
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '#' && (i === 0 || line[i - 1] === ' ' || line[i - 1] === '\t')) return i;
  }
  return line.length;
}

import { editorSchema } from './editor-schema.js';

/**
 * docs/config-reference.md, written from the schema (`nanogate schema --markdown`, `npm run docs:config`): one row
 * per key with its path, type, default, allowed values and description. A part of the schema used at several places
 * (the policies of a route and the global ones) is written out once, where it first appears, and referred to after.
 */

type Node = Record<string, any>;

interface Row {
  path: string;
  type: string;
  default: string;
  allowed: string;
  description: string;
}

const INTRO = `# Config reference

Every key of a nanogate config file, generated from the schema (\`src/config/schema.ts\` and the \`schema.ts\` of each
area) by \`npm run docs:config\` (\`nanogate schema --markdown\`); a unit test keeps this page in step with the schema.
The same schema is [config/schema.json](../config/schema.json), for editors: put
\`# yaml-language-server: $schema=./schema.json\` (or a path to it) at the top of a YAML config, or \`"$schema"\` in a
JSON one.

How to read it:

- **path**: \`a.b\` is key \`b\` inside \`a\`; \`a[]\` is every item of the list \`a\`; \`a.<name>\` is every key of the
  map \`a\` (the name is yours); \`a[type=dns]\` is the form of \`a\` chosen by \`type: dns\`.
- **default**: the value used when the key is left out; *required* means the key must be written; — means the key is
  optional and has no default (the feature it configures is off, or the text says what happens).
- **allowed**: the values the schema accepts; a key written with anything else is refused with the file, the path
  and the reason.
- Values marked *secret* are credentials: the admin API, the audit log and the gateway's own log lines show them
  redacted.
- \`\${VAR}\` and \`\${VAR:-default}\` may stand for any value: they are replaced in the text before it is parsed, so
  \`port: \${PORT:-8080}\` is a number. config/schema.json accepts a whole-value placeholder in number, boolean,
  patterned and minimum-length string fields, so an editor does not flag it; the gateway checks the value it stands
  for when the config loads. Write such a value in block style (\`port: \${PORT:-8080}\` on its own line), not
  inside \`{ }\`: there an editor reads the placeholder's braces as YAML syntax.
`;

/** The whole page, trailing newline included. */
export function configReference(): string {
  const schema = editorSchema({ placeholders: false });
  const seen = new Map<string, string>();
  const out = [INTRO];
  for (const [key, node] of Object.entries<Node>(schema.properties)) {
    const rows: Row[] = [];
    collect(node, key, !(schema.required ?? []).includes(key), rows, seen);
    out.push(`## ${key}\n`);
    if (node.description) out.push(`${prose(node.description.trim())}\n`);
    out.push('| path | type | default | allowed | description |', '|---|---|---|---|---|');
    for (const r of rows) out.push(`| ${code(r.path)} | ${r.type} | ${r.default} | ${r.allowed} | ${r.description} |`);
    out.push('');
  }
  return `${out.join('\n')}`;
}

function collect(node: Node, path: string, optional: boolean | 'form', rows: Row[], seen: Map<string, string>): void {
  const row: Row = {
    path,
    type: typeOf(node),
    default: optional === 'form' ? '' : defaultOf(node, optional),
    allowed: allowedOf(node),
    description: joinSentences(describe(node), formsOf(node)),
  };
  rows.push(row);
  // A sub-tree met before (the same keys at another path, whatever its own description) is referred to, not written out again.
  const children = childrenOf(node, path);
  if (children.length === 0) return;
  const fingerprint = JSON.stringify({ ...node, description: undefined });
  const first = seen.get(fingerprint);
  if (first !== undefined && fingerprint.length > 200) {
    row.description = `${row.description}${row.description ? '; s' : 'S'}ame keys as ${code(first)}`;
    return;
  }
  seen.set(fingerprint, path);
  for (const c of children) collect(c.node, c.path, c.optional, rows, seen);
}

interface Child {
  node: Node;
  path: string;
  /** 'form': one form of a union, chosen by its tag */
  optional: boolean | 'form';
}

function childrenOf(node: Node, path: string): Child[] {
  const out: Child[] = [];
  if (node.properties) {
    const required = new Set<string>(node.required ?? []);
    for (const [k, v] of Object.entries<Node>(node.properties)) out.push({ node: v, path: `${path}.${k}`, optional: !required.has(k) });
  }
  const map = mapValue(node);
  if (map) out.push(...childrenOf(map, `${path}.<name>`));
  if (node.type === 'array' && node.items && !Array.isArray(node.items)) out.push(...childrenOf(node.items, `${path}[]`));
  const branches: Node[] | undefined = node.oneOf ?? node.anyOf;
  if (branches) {
    for (const b of branches) {
      const tag = branchTag(b);
      if (tag) out.push({ node: b, path: `${path}[${tag}]`, optional: 'form' });
      else out.push(...childrenOf(b, path));
    }
  }
  return out;
}

/** The value schema of a map (a TypeBox Record: one patternProperties entry, or additionalProperties). */
function mapValue(node: Node): Node | undefined {
  if (node.patternProperties) return Object.values<Node>(node.patternProperties)[0];
  if (node.additionalProperties && typeof node.additionalProperties === 'object') return node.additionalProperties;
  return undefined;
}

/** type=dns for a form chosen by a const property (a discriminated union); undefined for other branches. */
function branchTag(b: Node): string | undefined {
  if (!b.properties) return undefined;
  for (const [k, v] of Object.entries<Node>(b.properties)) if (v.const !== undefined && (b.required ?? []).includes(k)) return `${k}=${v.const}`;
  return undefined;
}

function joinSentences(a: string, b: string): string {
  if (!a || !b) return a || b;
  return `${a}${/[.!?]$/.test(a) ? '' : '.'} ${b}`;
}

/** For a union of several untagged object forms (a fallback answer or upstream): which keys make up each form. */
function formsOf(node: Node): string {
  const forms = ((node.oneOf ?? node.anyOf ?? []) as Node[]).filter((b) => b.properties && !branchTag(b));
  if (forms.length < 2) return '';
  const list = forms.map((b, i) => `(${i + 1}) ${b.description ? `${prose(b.description)}: ` : ''}${Object.keys(b.properties).map((k) => code(k)).join(', ')}`);
  return `One of: ${list.join('; ')}.`;
}

function typeOf(node: Node): string {
  const branches: Node[] | undefined = node.oneOf ?? node.anyOf;
  if (branches) {
    if (branches.every((b) => b.const !== undefined)) return typeName(branches[0]);
    return [...new Set(branches.map((b) => (b.const !== undefined ? code(JSON.stringify(b.const)) : typeName(b))))].join(' or ');
  }
  return typeName(node);
}

function typeName(node: Node): string {
  if (node.const !== undefined) return typeof node.const;
  if (node.oneOf ?? node.anyOf) return typeOf(node);
  switch (node.type) {
    case 'array':
      return node.items && !Array.isArray(node.items) ? `list of ${typeName(node.items)}` : 'list';
    case 'object': {
      const value = mapValue(node);
      return value ? `map of ${typeName(value)}` : 'object';
    }
    case undefined:
      return 'any';
    default:
      return Array.isArray(node.type) ? node.type.join(' or ') : node.type;
  }
}

/** A key still required in the schema is required even with a default: there (in a union's form) none is filled in. */
function defaultOf(node: Node, optional: boolean): string {
  if (!optional) return '*required*';
  return node.default !== undefined ? code(JSON.stringify(node.default)) : '—';
}

function allowedOf(node: Node): string {
  const parts: string[] = [];
  const branches: Node[] | undefined = node.oneOf ?? node.anyOf;
  if (branches) {
    const consts = branches.filter((b) => b.const !== undefined).map((b) => code(JSON.stringify(b.const)));
    if (consts.length) parts.push(consts.join(', '));
    for (const b of branches) if (b.const === undefined && !b.properties) parts.push(...limits(b));
  }
  if (node.const !== undefined) parts.push(code(JSON.stringify(node.const)));
  parts.push(...limits(node));
  if (node.type === 'array' && node.items && !Array.isArray(node.items) && !node.items.properties) {
    const items = allowedOf(node.items);
    if (items) parts.push(`each: ${items}`);
  }
  const value = mapValue(node);
  if (value) {
    const keyPattern = node.patternProperties ? Object.keys(node.patternProperties)[0] : undefined;
    if (keyPattern && keyPattern !== '^(.*)$') parts.push(`names: ${code(keyPattern)}`);
    if (!value.properties) {
      const values = allowedOf(value);
      if (values) parts.push(`values: ${values}`);
    }
  }
  return parts.join('; ');
}

function limits(node: Node): string[] {
  const out: string[] = [];
  const range = (min: unknown, max: unknown, unit: string) => {
    if (min !== undefined && max !== undefined) out.push(`${min}–${max}${unit}`);
    else if (min !== undefined) out.push(`≥ ${min}${unit}`);
    else if (max !== undefined) out.push(`≤ ${max}${unit}`);
  };
  range(node.minimum, node.maximum, '');
  if (node.exclusiveMinimum !== undefined) out.push(`> ${node.exclusiveMinimum}`);
  if (node.exclusiveMaximum !== undefined) out.push(`< ${node.exclusiveMaximum}`);
  range(node.minLength, node.maxLength, ' characters');
  range(node.minItems, node.maxItems, ' items');
  if (node.minProperties !== undefined && node.minProperties === node.maxProperties) out.push(`exactly ${node.minProperties} key${node.minProperties === 1 ? '' : 's'}`);
  else range(node.minProperties, node.maxProperties, ' keys');
  if (node.uniqueItems) out.push('no duplicates');
  if (node.pattern) out.push(`pattern ${code(node.pattern)}`);
  if (node.enum) out.push(node.enum.map((v: unknown) => code(JSON.stringify(v))).join(', '));
  return out;
}

function describe(node: Node): string {
  const text = node.description ? prose(node.description.trim()) : '';
  if (node.secret !== true && node.secret !== 'url') return text;
  return `${text}${text ? ' ' : ''}(*secret*${node.secret === 'url' ? ': the password in the URL' : ''})`;
}

/** Schema prose in a table cell: code spans kept, | escaped everywhere, * and < outside code taken literally. */
function prose(text: string): string {
  return text
    .split(/(`[^`]*`)/)
    .map((part, i) => (i % 2 ? part : part.replace(/[*<]/g, (c) => `\\${c}`)))
    .join('')
    .replace(/\|/g, '\\|')
    .replace(/\n/g, ' ');
}

/** An inline code span that survives a table cell: | escaped, a backtick inside handled by a longer fence. */
function code(text: string): string {
  const escaped = text.replace(/\|/g, '\\|');
  return escaped.includes('`') ? `\`\` ${escaped} \`\`` : `\`${escaped}\``;
}

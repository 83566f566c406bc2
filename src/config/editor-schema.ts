import { ConfigSchema } from './schema.js';

/**
 * config/schema.json: the config schema as editors read it (yaml-language-server, VS Code, JetBrains). It is the
 * schema the gateway validates with, changed in two ways that keep it true to what the gateway accepts:
 *
 * - A key with a default is not required. The gateway's Ajv fills defaults in before it checks `required`, so a
 *   config may leave such keys out; an editor that reads `required` literally would flag every one. Inside anyOf,
 *   a plain oneOf, not, if, contains and propertyNames Ajv fills no defaults (a key there with a default really is
 *   required), so those keep their `required` as it is.
 * - With `placeholders`, a value that is one whole `${VAR}` or `${VAR:-default}` is accepted where the value must be
 *   a number, a boolean, or a string of a given pattern or minimum length. The gateway replaces placeholders in the text before
 *   parsing (src/config/load.ts), so `port: ${PORT:-8080}` is a number by then; an editor sees the text and would
 *   flag it. A number or boolean placeholder's default must look like one. Fields with a fixed set of values
 *   (`mode: standalone`) take placeholders too, but the editor flags those.
 *
 * Draft-07 is declared: yaml-language-server validates with its draft-07 rules (draft 2019-09/2020-12 keywords are
 * not all understood there), and the schema uses nothing newer.
 */

export const JSON_SCHEMA_DIALECT = 'http://json-schema.org/draft-07/schema#';

/** A whole-value environment placeholder, as interpolateEnv (src/config/load.ts) replaces it. */
const placeholder = (fallback: string) => `^\\$\\{[A-Za-z_][A-Za-z0-9_]*(:-${fallback})?\\}$`;
const PLACEHOLDER_DEFAULT: Record<string, string> = {
  integer: '-?[0-9]+',
  number: '-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?',
  boolean: '(true|false)',
  string: '[^}]*',
};

type Node = Record<string, any>;

export interface EditorSchemaOptions {
  /** accept ${VAR} placeholders in typed fields (config/schema.json: yes; the config reference: no) */
  placeholders: boolean;
}

/** The editor schema as a plain JSON object. */
export function editorSchema(options: EditorSchemaOptions = { placeholders: true }): Node {
  const copy = JSON.parse(JSON.stringify(ConfigSchema)) as Node;
  const { $id, title, description, ...rest } = relax(copy, false, options);
  return { $schema: JSON_SCHEMA_DIALECT, $id, title, description, ...rest };
}

/** config/schema.json's bytes (`nanogate schema`). */
export function editorSchemaText(): string {
  return `${JSON.stringify(editorSchema(), null, 2)}\n`;
}

/**
 * `composite`: somewhere Ajv fills no defaults (useDefaults is ignored under compositeRule in Ajv's code generator).
 * A oneOf with a discriminator is not one of those: Ajv (discriminator: true) validates the one branch that the
 * discriminating property names, defaults included.
 */
function relax(node: Node, composite: boolean, options: EditorSchemaOptions): Node {
  if (node === null || typeof node !== 'object' || Array.isArray(node)) return node;
  const props = node.properties as Record<string, Node> | undefined;
  if (props) {
    for (const k of Object.keys(props)) props[k] = relax(props[k], composite, options);
    if (!composite && Array.isArray(node.required)) {
      node.required = node.required.filter((k: string) => props[k]?.default === undefined);
      if (node.required.length === 0) delete node.required;
    }
  }
  for (const key of ['patternProperties'] as const) {
    if (node[key]) for (const k of Object.keys(node[key])) node[key][k] = relax(node[key][k], composite, options);
  }
  for (const key of ['additionalProperties', 'items', 'then', 'else'] as const) {
    if (node[key] && typeof node[key] === 'object' && !Array.isArray(node[key])) node[key] = relax(node[key], composite, options);
  }
  for (const key of ['not', 'if', 'contains', 'propertyNames'] as const) {
    if (node[key] && typeof node[key] === 'object') node[key] = relax(node[key], true, options);
  }
  if (Array.isArray(node.allOf)) node.allOf = node.allOf.map((b: Node) => relax(b, composite, options));
  if (Array.isArray(node.anyOf)) node.anyOf = node.anyOf.map((b: Node) => relax(b, true, options));
  if (Array.isArray(node.oneOf)) node.oneOf = node.oneOf.map((b: Node) => relax(b, composite || !node.discriminator, options));
  return options.placeholders ? acceptPlaceholder(node) : node;
}

function acceptPlaceholder(node: Node): Node {
  const t = node.type;
  if ((t === 'integer' || t === 'number' || t === 'boolean') && node.const === undefined && node.enum === undefined) {
    // pattern applies to strings only, minimum and maximum to numbers only: one node says both. patternErrorMessage
    // is what yaml-language-server (and VS Code) show instead of the bare pattern.
    const what = t === 'integer' ? 'a whole number' : t === 'number' ? 'a number' : 'true or false';
    return {
      ...node,
      type: [t, 'string'],
      pattern: placeholder(PLACEHOLDER_DEFAULT[t]),
      patternErrorMessage: `must be ${what}, or one whole \${VAR} or \${VAR:-default} placeholder with such a default`,
    };
  }
  // A minimum length a short placeholder would not reach (admin.token: 16, and ${ADMIN_TOKEN} is 14): the value
  // or a placeholder, as two forms; the annotations stay on the outer node, where editors read them.
  if (t === 'string' && typeof node.minLength === 'number' && node.minLength > 4) {
    const { description, default: def, secret, ...value } = node;
    const outer: Node = { description };
    if (def !== undefined) outer.default = def;
    if (secret !== undefined) outer.secret = secret;
    return { ...outer, anyOf: [value, { type: 'string', pattern: placeholder(PLACEHOLDER_DEFAULT.string) }] };
  }
  if (t === 'string' && typeof node.pattern === 'string') {
    return { ...node, pattern: `(?:${node.pattern})|(?:${placeholder(PLACEHOLDER_DEFAULT.string)})` };
  }
  return node;
}

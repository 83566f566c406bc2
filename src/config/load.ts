import { readFileSync } from 'node:fs';
import type { ErrorObject } from 'ajv';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigSchema, type Config } from './schema.js';
import { ConfigError, didYouMean, type ConfigIssue } from './errors.js';
import { configValidator } from './validator.js';

/**
 * Replaces ${VAR} and ${VAR:-default} in the raw text before parsing, so a variable can stand for any scalar
 * (a port number stays a number). An unset variable without a default is an error, not an empty string.
 */
export function interpolateEnv(text: string, env: NodeJS.ProcessEnv, issues: ConfigIssue[]): string {
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n];
    if (!line.includes('${')) continue;
    // A comment may mention ${VAR} without it having to be set: only the part before a comment is interpolated.
    const cut = commentStart(line);
    const code = line.slice(0, cut).replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_whole, name: string, fallback: string | undefined) => {
      const value = env[name];
      if (value !== undefined && value !== '') return value;
      if (fallback !== undefined) return fallback;
      issues.push({ path: '', message: `line ${n + 1}: environment variable ${name} is not set`, hint: `set it or write \${${name}:-default}` });
      return '';
    });
    lines[n] = code + line.slice(cut);
  }
  return lines.join('\n');
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

/** Parses YAML or JSON text (JSON is YAML) into a plain value; syntax errors carry line and column. */
export function parseText(text: string, issues: ConfigIssue[]): unknown {
  const lines = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter: lines });
  for (const err of doc.errors) {
    const pos = err.linePos?.[0] ?? (err.pos ? lines.linePos(err.pos[0]) : undefined);
    issues.push({ path: '', message: `${pos ? `line ${pos.line}, column ${pos.col}: ` : ''}${err.message.split('\n')[0]}` });
  }
  return doc.errors.length ? undefined : doc.toJS();
}

function pointerToPath(pointer: string): string {
  let out = '';
  for (const part of pointer.split('/').slice(1)) {
    const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(key)) out += `[${key}]`;
    else out += out ? `.${key}` : key;
  }
  return out;
}

function schemaAt(path: string): Record<string, unknown> | undefined {
  // Walks the schema along an Ajv schemaPath to list the keys an object allows (for "did you mean").
  let node: any = ConfigSchema;
  for (const part of path.split('/').slice(1)) {
    if (part === 'additionalProperties') break;
    node = node?.[part];
  }
  return node?.properties;
}

function toIssues(errors: ErrorObject[]): ConfigIssue[] {
  const byPath = new Map<string, ConfigIssue>();
  // A union that failed reports every branch; the most specific error of each path is enough.
  const anyOfPaths = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath));
  for (const e of errors) {
    let path = pointerToPath(e.instancePath);
    let message: string;
    let hint: string | undefined;
    switch (e.keyword) {
      case 'additionalProperties': {
        const key = (e.params as { additionalProperty: string }).additionalProperty;
        path = path ? `${path}.${key}` : key;
        message = `unknown key "${key}"`;
        const allowed = (e.parentSchema as { properties?: Record<string, unknown> } | undefined)?.properties ?? schemaAt(e.schemaPath.replace(/^#/, ''));
        hint = allowed ? didYouMean(key, Object.keys(allowed)) : undefined;
        break;
      }
      case 'required':
        message = `missing required key "${(e.params as { missingProperty: string }).missingProperty}"`;
        break;
      case 'const':
        message = `must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}`;
        break;
      case 'anyOf':
        if (errors.some((o) => o !== e && o.instancePath === e.instancePath && o.keyword === 'const')) {
          const here = errors.filter((o) => o.instancePath === e.instancePath);
          const allowed = here.filter((o) => o.keyword === 'const').map((o) => JSON.stringify((o.params as { allowedValue: unknown }).allowedValue));
          // other branches of the union (e.g. workers: "auto" or a whole number) are named by their type
          for (const o of here) if (o.keyword === 'type') allowed.push(`a${/^[aeiou]/.test(String((o.params as { type: string }).type)) ? 'n' : ''} ${(o.params as { type: string }).type}`);
          message = `must be one of ${[...new Set(allowed)].join(', ')}`;
          byPath.set(path, { path, message });
          continue;
        }
        message = 'does not match any allowed form';
        break;
      case 'pattern':
        message = `${JSON.stringify(e.data)} does not have the expected form${e.parentSchema?.description ? `: ${e.parentSchema.description}` : ''}`;
        break;
      default:
        message = e.message ?? 'is invalid';
    }
    if (anyOfPaths.has(e.instancePath) && e.keyword === 'const') continue;
    const prior = byPath.get(path);
    if (prior && prior.message.startsWith('must be one of')) continue;
    if (!prior || e.keyword !== 'anyOf') byPath.set(path, { path, message, hint });
  }
  return [...byPath.values()];
}

/** Validates a parsed value against the schema, fills defaults in place, and returns it typed. */
export function validateConfig(value: unknown, file: string): Config {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(file, [{ path: '', message: 'the config must be a mapping (YAML) or an object (JSON)' }]);
  }
  const validateSchema = configValidator();
  if (!validateSchema(value)) throw new ConfigError(file, toIssues(validateSchema.errors ?? []));
  return value;
}

/** Reads, interpolates, parses and validates a config file. Throws ConfigError naming the file. */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [{ path: '', message: `cannot read the file: ${(err as NodeJS.ErrnoException).code ?? err}` }]);
  }
  return loadConfigText(text, file, env);
}

export function loadConfigText(text: string, file: string, env: NodeJS.ProcessEnv = process.env): Config {
  const issues: ConfigIssue[] = [];
  const interpolated = interpolateEnv(text, env, issues);
  if (issues.length) throw new ConfigError(file, issues);
  const value = parseText(interpolated, issues);
  if (issues.length) throw new ConfigError(file, issues);
  return validateConfig(value, file);
}

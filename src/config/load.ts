import { dirname } from 'node:path';
import type { ErrorObject } from 'ajv';
import { LineCounter, parseDocument, type Document } from 'yaml';
import { ConfigSchema, type Config } from './schema.js';
import { ConfigError, didYouMean, type ConfigIssue } from './errors.js';
import { redactUrl } from './secrets.js';
import { compileConfig } from './compile.js';
import { configValidator } from './validator.js';
import { prepareSubstitution } from './env.js';
import { mergeParsed, readConfigSources, sourcesLabel, type ConfigSource, type Origins } from './sources.js';

/** Parses YAML or JSON text (JSON is YAML) into a plain value; syntax errors carry line and column. */
export function parseText(text: string, issues: ConfigIssue[]): unknown {
  return parseWithDocument(text, issues).value;
}

/**
 * One config text parsed with its environment references resolved (src/config/env.ts), not yet validated: what
 * the schema sees. Syntax errors and unreadable `${file:}` references land in `issues`.
 */
export function parseConfigText(text: string, env: NodeJS.ProcessEnv, file: string, issues: ConfigIssue[]): unknown {
  const substitution = prepareSubstitution(text, env, dirname(file), issues);
  return parseWithDocument(substitution.text, issues, (doc) => void substitution.apply(doc)).value;
}

/** parseText; `edit` may change the parsed document before it becomes a plain value (environment references). */
function parseWithDocument(text: string, issues: ConfigIssue[], edit?: (doc: Document, lines: LineCounter) => void): { value: unknown } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter: lines });
  for (const err of doc.errors) {
    const pos = err.linePos?.[0] ?? (err.pos ? lines.linePos(err.pos[0]) : undefined);
    issues.push({ path: '', message: `${pos ? `line ${pos.line}, column ${pos.col}: ` : ''}${err.message.split('\n')[0]}` });
  }
  if (doc.errors.length) return { value: undefined };
  edit?.(doc, lines);
  return { value: oneByteStrings(doc.toJS()) };
}

/**
 * The parsed value with every string that fits in Latin-1 stored one byte per character. YAML slices its strings out
 * of the source text, and V8 keeps a slice of a two-byte string two-byte even when it is plain ASCII: a config with
 * one character beyond Latin-1 anywhere (a comment's dash or arrow, or the placeholders of src/config/env.ts) would
 * make every route name, header value and URL of the plan two-byte, and every string built from them on the request
 * path (log lines, header blocks) too, which then costs a two-byte flatten and a slower UTF-8 encoding per request.
 */
export function oneByteStrings(value: unknown): unknown {
  if (typeof value === 'string') return oneByte(value);
  if (Array.isArray(value)) return value.map(oneByteStrings);
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[oneByte(k)] = oneByteStrings(v);
    return out;
  }
  return value;
}

function oneByte(s: string): string {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return s;
  // a fresh copy through Latin-1 bytes is a one-byte string whatever the source was
  return s.length === 0 ? s : Buffer.from(s, 'latin1').toString('latin1');
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
        // A credential that does not fit is not quoted: the message reaches logs, the audit log and the admin API.
        message = `${e.parentSchema?.secret === true ? 'the value' : JSON.stringify(e.parentSchema?.secret === 'url' ? redactUrl(String(e.data)) : e.data)} does not have the expected form${e.parentSchema?.description ? `: ${e.parentSchema.description}` : ''}`;
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

// ---------------------------------------------------------------------------------------------- staged check

/**
 * What the staged check hands to compileConfig when part of the file was refused before compiling: the routes that are left keep their place in the file for messages, and routes that name a refused
 * upstream are not told that it is unknown.
 */
export interface PartialConfig {
  /** index in the file of each route that is left (the config's routes[i] is routes[routeIndex[i]] of the file) */
  readonly routeIndex: readonly number[];
  /** an upstream the schema refused (it exists in the file, so a route naming it is not in error for that) */
  upstreamRefused(name: string): boolean;
  /** the names of the refused upstreams, for did-you-mean hints */
  readonly refusedUpstreams: readonly string[];
}

export interface StagedResult {
  /** the part of the config that passed every stage up to the schema, with defaults; null when nothing could go on */
  config: Config | null;
  /** every problem found so far, in stage order: environment, syntax, schema */
  issues: ConfigIssue[];
  /** set when config is only part of the file (some of it was refused) */
  partial: PartialConfig | null;
  /** for a config merged from several files: where each part came from (to name the file of a problem) */
  origins: Origins | null;
}

/**
 * The stages before compiling (environment, syntax, merge, schema), without stopping at the first that fails, so
 * that one run reports every problem it can find: an unset variable is reported and its value left out of the later
 * stages (not reported again as a schema error), and the schema's errors are reported while the rest of the config
 * goes on to compileConfig: routes and upstreams one by one, other top-level sections (and each top-level policy)
 * whole. Only a syntax error, or a config whose remainder still fails the schema, ends the check early.
 * `baseDir` is where a relative `${file:PATH}` is read from (by default each file's directory).
 */
export function stageSources(sources: readonly ConfigSource[], env: NodeJS.ProcessEnv = process.env, baseDir?: string): StagedResult {
  const several = sources.length > 1;
  const issues: ConfigIssue[] = [];
  const parsed: { file: string; value: Record<string, unknown>; unset: string[][] }[] = [];
  let unreadable = false;
  for (const { file, text } of sources) {
    const own: ConfigIssue[] = [];
    const substitution = prepareSubstitution(text, env, baseDir ?? dirname(file), own);
    let unset: string[][] = [];
    const { value } = parseWithDocument(substitution.text, own, (doc) => (unset = substitution.apply(doc)));
    if (value === undefined && own.length) unreadable = true;
    else if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      own.push({ path: '', message: 'the config must be a mapping (YAML) or an object (JSON)' });
      unreadable = true;
    } else parsed.push({ file, value: value as Record<string, unknown>, unset });
    for (const i of own) issues.push(several ? { ...i, file } : i);
  }
  if (unreadable) return { config: null, issues, partial: null, origins: null };

  let obj: Record<string, unknown>;
  let origins: Origins | null = null;
  let envPaths: string[][];
  if (!several) {
    obj = parsed[0].value;
    envPaths = parsed[0].unset;
  } else {
    const merged = mergeParsed(parsed, issues);
    obj = merged.value;
    origins = merged.origins;
    envPaths = parsed.flatMap((p) => p.unset.map((parts) => merged.origins.merged(p.file, parts)));
  }
  const validateSchema = configValidator();
  // Values that came from an unset variable: left out like a schema error, without an error of their own.
  const envKeys = new Set(envPaths.map(formatPath));
  const refused: string[][] = [...envPaths];
  if (!validateSchema(obj)) {
    const errors = validateSchema.errors ?? [];
    for (const i of toIssues(errors)) if (!coveredBy(i.path, envKeys)) issues.push(origins ? origins.locate(i) : i);
    for (const e of errors) {
      const parts = pointerParts(e.instancePath);
      if (parts.length === 0 && e.keyword === 'additionalProperties') parts.push((e.params as { additionalProperty: string }).additionalProperty);
      refused.push(parts);
    }
  }
  if (refused.length === 0) return { config: obj as Config, issues, partial: null, origins };
  const partial = prune(obj, refused);
  if (partial === null || !validateSchema(obj)) return { config: null, issues, partial: null, origins };
  return { config: obj as Config, issues, partial, origins };
}

/** stageSources for one text. */
export function stageConfigText(text: string, env: NodeJS.ProcessEnv = process.env, file = 'config'): StagedResult {
  return stageSources([{ file, text }], env);
}

function pointerParts(pointer: string): string[] {
  return pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** The same form as ConfigIssue.path: a.b[0].c */
function formatPath(parts: readonly string[]): string {
  let out = '';
  for (const key of parts) out += /^\d+$/.test(key) ? `[${key}]` : out ? `.${key}` : key;
  return out;
}

function coveredBy(path: string, roots: ReadonlySet<string>): boolean {
  for (const r of roots) if (path === r || path.startsWith(`${r}.`) || path.startsWith(`${r}[`)) return true;
  return false;
}

/**
 * Removes what the schema (or an unset variable) refused, at the grain the compiler can do without: one route, one
 * upstream, one top-level policy, or a whole other top-level section (its defaults then apply). Returns null when a
 * refusal is at the top of the file (a missing required key), where nothing sensible is left.
 */
function prune(obj: Record<string, unknown>, refused: readonly string[][]): PartialConfig | null {
  const routesDropped = new Set<number>();
  const upstreamsDropped = new Set<string>();
  let allUpstreams = false;
  for (const parts of refused) {
    const [top, second] = parts;
    if (top === undefined) return null;
    if (top === 'routes' && second !== undefined && Array.isArray(obj.routes)) routesDropped.add(Number(second));
    else if (top === 'upstreams' && second !== undefined) upstreamsDropped.add(second);
    else if (top === 'policies' && second !== undefined && obj.policies && typeof obj.policies === 'object') delete (obj.policies as Record<string, unknown>)[second];
    else {
      if (top === 'upstreams') allUpstreams = true;
      delete obj[top];
    }
  }
  const routeIndex: number[] = [];
  if (Array.isArray(obj.routes)) {
    const kept: unknown[] = [];
    obj.routes.forEach((r, i) => {
      if (!routesDropped.has(i)) {
        kept.push(r);
        routeIndex.push(i);
      }
    });
    obj.routes = kept;
  }
  if (obj.upstreams && typeof obj.upstreams === 'object') for (const name of upstreamsDropped) delete (obj.upstreams as Record<string, unknown>)[name];
  return { routeIndex, upstreamRefused: (name) => allUpstreams || upstreamsDropped.has(name), refusedUpstreams: [...upstreamsDropped] };
}

/** Reads, interpolates, parses and validates a config file. Throws ConfigError naming the file. */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  return loadConfigFiles([file], env).config;
}

/**
 * Reads the files `paths` stand for (files, and directories of *.yaml, *.yml, *.json), merges them (src/config/
 * sources.ts) and validates the result. Throws ConfigError; each problem names the file it is in.
 */
export function loadConfigFiles(paths: readonly string[], env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  return loadSources(readConfigSources(paths), env);
}

export interface LoadedConfig {
  config: Config;
  /** how the files are named in messages and the history: the file, or the files one after another */
  label: string;
  /** set when the config was merged from several files: compile problems are located with it (locateIssues) */
  origins: Origins | null;
}

export function loadConfigText(text: string, file: string, env: NodeJS.ProcessEnv = process.env): Config {
  return loadSources([{ file, text }], env).config;
}

/** Validates config sources (one file, or several to merge); throws ConfigError listing every problem. */
export function loadSources(sources: readonly ConfigSource[], env: NodeJS.ProcessEnv = process.env, baseDir?: string): LoadedConfig {
  const label = sourcesLabel(sources.map((s) => s.file));
  const staged = stageSources(sources, env, baseDir);
  if (staged.issues.length === 0 && staged.config !== null) return { config: staged.config, label, origins: staged.origins };
  // Refused: what is left still goes through the compiler, so that the one error lists every problem of the file
  // (start, reload, PUT /config and `nanogate validate` alike), not only those of the first stage that failed.
  const issues = [...staged.issues];
  if (staged.config !== null) {
    try {
      compileConfig(staged.config, label, 1, undefined, staged.partial);
    } catch (err) {
      // anything but a ConfigError would be a compiler fault on a remainder; the issues above refuse the file anyway
      if (err instanceof ConfigError) issues.push(...(staged.origins ? err.issues.map((i) => staged.origins!.locate(i)) : err.issues));
    }
  }
  throw new ConfigError(label, issues);
}

/** A ConfigError of compileConfig on a merged config, with each problem told of its file; anything else as it is. */
export function locateIssues(err: unknown, origins: Origins | null): unknown {
  if (origins === null || !(err instanceof ConfigError)) return err;
  return new ConfigError(err.file, err.issues.map((i) => origins.locate(i)));
}

import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { ConfigError, type ConfigIssue } from './errors.js';

/**
 * A config may be split over several files (`--config a.yaml --config b.yaml`, or `--config DIR` for every
 * *.yaml, *.yml and *.json in DIR, by name). They are merged into one config after each was parsed on its own
 * (environment references resolved in each), with one rule per kind of top-level key:
 *
 *   routes, consumers       lists: concatenated in file order
 *   upstreams, policies     maps: merged by key; a key defined in two files is an error naming both
 *   $schema                 an editor hint: the first one is kept
 *   anything else           (listen, admin, limits, redis...) set in one file only, or the same in each
 *
 * Every problem found later (schema, compile) is traced back to the file and the place in it where the value was
 * written: routes[4] of the merged config is "b.yaml: routes[1]" when a.yaml has three routes.
 */

/** One config file as read. */
export interface ConfigSource {
  file: string;
  text: string;
}

const CONFIG_FILE = /\.(ya?ml|json)$/i;
const LISTS = new Set(['routes', 'consumers']);
const MAPS: Record<string, string> = { upstreams: 'upstream', policies: 'policy' };

/** The files that `paths` (files and directories, as given) stand for, in order: a directory's by name. */
export function expandConfigPaths(paths: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    let dir = false;
    try {
      dir = statSync(p).isDirectory();
    } catch {
      // not there: reading it reports that, naming the file
    }
    if (!dir) {
      out.push(p);
      continue;
    }
    const names = readdirSync(p)
      .filter((n) => CONFIG_FILE.test(n) && !n.startsWith('.'))
      .sort();
    if (names.length === 0) throw new ConfigError(p, [{ path: '', message: 'the directory holds no *.yaml, *.yml or *.json file' }]);
    for (const n of names) out.push(join(p, n));
  }
  return out;
}

/** Reads every file `paths` stand for; a file that cannot be read is a ConfigError naming it. */
export function readConfigSources(paths: readonly string[]): ConfigSource[] {
  return expandConfigPaths(paths).map((file) => {
    try {
      return { file, text: readFileSync(file, 'utf8') };
    } catch (err) {
      throw new ConfigError(file, [{ path: '', message: `cannot read the file: ${(err as NodeJS.ErrnoException).code ?? err}` }]);
    }
  });
}

/** How one set of files is named in messages and the version history. */
export function sourcesLabel(files: readonly string[]): string {
  return files.join(', ');
}

/** Where relative paths of a config (a consumer file, `${file:...}`) are read from: a directory, or a file's directory. */
export function baseDirOf(path: string): string {
  try {
    if (statSync(path).isDirectory()) return path;
  } catch {
    // not there (yet): its directory
  }
  return dirname(path);
}

/** Where each part of a merged config came from. */
export class Origins {
  /** per merged route / consumer: file and index in that file */
  readonly lists: Record<string, { file: string; index: number }[]> = { routes: [], consumers: [] };
  /** per upstream / global policy name, and per other top-level key: the file that defined it */
  readonly keys: Record<string, Map<string, string>> = { upstreams: new Map(), policies: new Map() };
  readonly top = new Map<string, string>();
  /** offset of each file's routes / consumers in the merged lists */
  readonly offsets = new Map<string, Record<string, number>>();

  /** A problem found in the merged config, told of the file and place where the value was written. */
  locate(issue: ConfigIssue): ConfigIssue {
    if (issue.file !== undefined) return issue;
    const at = this.#place(issue.path);
    const file = at?.file;
    return {
      ...issue,
      ...(file !== undefined ? { file } : {}),
      path: at ? at.path : issue.path,
      message: this.#mentions(issue.message, file),
      ...(issue.hint !== undefined ? { hint: this.#mentions(issue.hint, file) } : {}),
    };
  }

  /** A path of the merged config in a file of its own, if it is known. */
  #place(path: string): { file: string; path: string } | null {
    const list = /^(routes|consumers)\[(\d+)\](.*)$/s.exec(path);
    if (list) {
      const o = this.lists[list[1]][Number(list[2])];
      return o ? { file: o.file, path: `${list[1]}[${o.index}]${list[3]}` } : null;
    }
    const keyed = /^(upstreams|policies)\.([^.[]+)/.exec(path);
    if (keyed) {
      const file = this.keys[keyed[1]].get(keyed[2]);
      return file ? { file, path } : null;
    }
    const top = /^[^.[]+/.exec(path);
    const file = top ? this.top.get(top[0]) : undefined;
    return file ? { file, path } : null;
  }

  /** `routes[4]` in a message, as it is written in its file (and naming that file when it is another one). */
  #mentions(text: string, file: string | undefined): string {
    return text.replace(/\b(routes|consumers)\[(\d+)\]/g, (whole, list: string, n: string) => {
      const o = this.lists[list][Number(n)];
      if (!o) return whole;
      return o.file === file ? `${list}[${o.index}]` : `${o.file}: ${list}[${o.index}]`;
    });
  }

  /** A path in one file (of a value left out because its variable was unset) as a path of the merged config. */
  merged(file: string, parts: readonly string[]): string[] {
    const [top, index] = parts;
    const offset = this.offsets.get(file)?.[top];
    if (offset === undefined || index === undefined || !/^\d+$/.test(index)) return [...parts];
    return [top, String(offset + Number(index)), ...parts.slice(2)];
  }
}

/** Merges parsed files (each a mapping) into one config value; conflicts are issues naming both files. */
export function mergeParsed(parsed: readonly { file: string; value: Record<string, unknown> }[], issues: ConfigIssue[]): { value: Record<string, unknown>; origins: Origins } {
  const origins = new Origins();
  const out: Record<string, unknown> = {};
  for (const { file, value } of parsed) {
    const offsets: Record<string, number> = {};
    origins.offsets.set(file, offsets);
    for (const [key, v] of Object.entries(value)) {
      if (LISTS.has(key)) {
        const prior = out[key];
        if (!Array.isArray(v) || (prior !== undefined && !Array.isArray(prior))) {
          if (prior === undefined) {
            out[key] = v; // not a list: the schema says so, naming this file
            origins.top.set(key, file);
          } else issues.push({ file, path: key, message: `must be a list to be merged with the ${key} of ${origins.top.get(key) ?? 'another file'}` });
          continue;
        }
        const list = (prior as unknown[] | undefined) ?? [];
        offsets[key] = list.length;
        v.forEach((item, index) => {
          list.push(item);
          origins.lists[key].push({ file, index });
        });
        out[key] = list;
        if (!origins.top.has(key)) origins.top.set(key, file);
      } else if (key in MAPS) {
        if (v === null || typeof v !== 'object' || Array.isArray(v)) {
          if (out[key] === undefined) {
            out[key] = v;
            origins.top.set(key, file);
          } else issues.push({ file, path: key, message: `must be a mapping to be merged with the ${key} of ${origins.top.get(key)}` });
          continue;
        }
        const map = (out[key] ??= {}) as Record<string, unknown>;
        if (!origins.top.has(key)) origins.top.set(key, file);
        for (const [name, entry] of Object.entries(v)) {
          const first = origins.keys[key].get(name);
          if (first !== undefined) {
            issues.push({ file, path: `${key}.${name}`, message: `${MAPS[key]} "${name}" is also defined in ${first}`, hint: 'define each one in one file only' });
            continue;
          }
          map[name] = entry;
          origins.keys[key].set(name, file);
        }
      } else if (!(key in out)) {
        out[key] = v;
        origins.top.set(key, file);
      } else if (key !== '$schema' && !isDeepStrictEqual(out[key], v)) {
        issues.push({ file, path: key, message: `is also set in ${origins.top.get(key)}, differently`, hint: 'a top-level setting is set in one file only, or the same in each' });
      }
    }
  }
  return { value: out, origins };
}

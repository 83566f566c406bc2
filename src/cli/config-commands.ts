import { stringify } from 'yaml';
import { EXIT, UsageError } from './args.js';
import { AdminUnavailable, adminRequest, adminTarget, unexpected, type AdminTarget } from './admin-client.js';
import { readConfigSources, sourcesLabel, type ConfigSource } from '../config/sources.js';
import { ConfigError } from '../config/errors.js';
import { formatChanges, type ConfigChange } from '../config/diff-format.js';

/**
 * `nanogate diff`, `apply` and `dump`: a running gateway's config through its admin API. The files are sent as
 * they are written (PUT /config with several files in one body); the gateway resolves `${VAR}` and `${file:...}`
 * in its own environment, so what diff shows is what a restart of that gateway with these files would run.
 */

const FILES_TYPE = 'application/vnd.nanogate.config-files+json';
/** compiling 10,000 routes and preparing every worker takes seconds, not minutes */
const APPLY_TIMEOUT_MS = 120_000;

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** The config files of diff and apply: positionals and every --config, merged in that order. */
function configPaths(command: string, values: Values, positionals: string[]): string[] {
  const paths = [...positionals, ...((values.config as string[] | undefined) ?? [])];
  if (paths.length === 0) throw new UsageError(`nanogate ${command}: name the config (a file, several, or a directory)`);
  return paths;
}

function body(sources: readonly ConfigSource[]): string {
  return JSON.stringify({ files: sources.map((s) => ({ name: s.file, text: s.text })) });
}

/** Prints the lines of a refused config (file: path: reason), as validate does. */
function printRefusal(answer: { body: any }): void {
  const errors: unknown = answer.body?.errors;
  if (Array.isArray(errors)) for (const line of errors) console.error(String(line));
  else console.error(String(answer.body?.detail ?? 'the config was refused'));
}

/** Runs `fn`; a local config error, an unusable admin API and a usage error each end with their exit code. */
async function guarded(command: string, configCode: number, fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const line of err.message.split('\n')) console.error(line);
      return configCode;
    }
    if (err instanceof AdminUnavailable) {
      console.error(`nanogate ${command}: ${err.message}`);
      return EXIT.admin;
    }
    throw err;
  }
}

export function diff(values: Values, positionals: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const paths = configPaths('diff', values, positionals);
  const target = adminTarget(values, env);
  return guarded('diff', EXIT.diffConfig, async () => {
    const sources = readConfigSources(paths);
    const label = sourcesLabel(sources.map((s) => s.file));
    const answer = await adminRequest(target, 'PUT', `/config?dryRun=1&source=${encodeURIComponent(label.slice(0, 200))}`, { body: body(sources), contentType: FILES_TYPE, timeoutMs: APPLY_TIMEOUT_MS });
    if (answer.status === 422) {
      printRefusal(answer);
      console.error(`nanogate diff: the gateway would refuse this config (${answer.body?.detail ?? '422'})`);
      return EXIT.diffConfig;
    }
    if (answer.status !== 200 || answer.body?.dryRun !== true) throw unexpected(answer, 'PUT /config?dryRun=1');
    const changes = answer.body.changes as ConfigChange[];
    for (const w of answer.body.warnings ?? []) console.log(`warning: ${w}`);
    if (changes.length === 0) {
      console.log(`no change: ${label} is what version ${answer.body.version} runs`);
      return EXIT.ok;
    }
    for (const line of formatChanges(changes)) console.log(line);
    console.log(summary(changes, answer.body.version));
    return EXIT.changes;
  });
}

function summary(changes: readonly ConfigChange[], version: number): string {
  const count = (op: string) => changes.filter((c) => c.op === op).length;
  return `${changes.length} change(s) against version ${version}: ${count('added')} added, ${count('removed')} removed, ${count('changed')} changed`;
}

export function apply(values: Values, positionals: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const paths = configPaths('apply', values, positionals);
  const target = adminTarget(values, env);
  return guarded('apply', EXIT.config, async () => {
    const sources = readConfigSources(paths);
    const label = sourcesLabel(sources.map((s) => s.file));
    const answer = await adminRequest(target, 'PUT', `/config?source=${encodeURIComponent(label.slice(0, 200))}`, { body: body(sources), contentType: FILES_TYPE, timeoutMs: APPLY_TIMEOUT_MS });
    if (answer.status === 422) {
      printRefusal(answer);
      console.error(`nanogate apply: refused; ${answer.body?.detail ?? 'the previous config keeps serving'}`);
      return EXIT.config;
    }
    if (answer.status !== 200) throw unexpected(answer, 'PUT /config');
    for (const w of answer.body.warnings ?? []) console.log(`warning: ${w}`);
    console.log(`applied: version ${answer.body.version} (was ${answer.body.previous}) from ${label}`);
    return EXIT.ok;
  });
}

export function dump(values: Values, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const format = (values.format as string | undefined) ?? 'yaml';
  if (format !== 'yaml' && format !== 'json') throw new UsageError(`nanogate dump: --format is yaml or json, not "${format}"`);
  const version = values.version as string | undefined;
  if (version !== undefined && !/^[1-9][0-9]{0,5}$/.test(version)) throw new UsageError(`nanogate dump: --version takes a version number (1 or more), not "${version}"`);
  const target: AdminTarget = adminTarget(values, env);
  return guarded('dump', EXIT.admin, async () => {
    const answer = await adminRequest(target, 'GET', `/config${version !== undefined ? `?version=${version}` : ''}`);
    if (answer.status !== 200 || typeof answer.body?.config !== 'object') throw unexpected(answer, `GET /config${version !== undefined ? ` version ${version}` : ''}`);
    const b = answer.body;
    if (format === 'json') console.log(JSON.stringify(b.config, null, 2));
    else {
      // credentials are "[redacted]": a dump is for reading and diffing, not a backup to apply again
      console.log(`# nanogate config version ${b.version} (running: ${b.current})${b.source ? `, from ${b.source}` : ''}${b.appliedAt ? `, applied ${b.appliedAt}` : ''}; credentials redacted`);
      process.stdout.write(stringify(b.config, { lineWidth: 0 }));
    }
    return EXIT.ok;
  });
}

import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDocument, stringify } from 'yaml';
import { ImportError, ImportReport, type Obj } from './common.js';
import { convertKong } from './kong.js';
import { convertApisix } from './apisix.js';

export const IMPORT_HELP = `Usage: nanogate import kong|apisix FILE [-o OUT] [--strict]

Converts another gateway's declarative config into a nanogate config:
  kong FILE     Kong declarative config (decK / DB-less YAML or JSON, _format_version "3.0")
  apisix FILE   APISIX standalone conf/apisix.yaml (routes, upstreams, services, consumers, global_rules, #END)
  -o, --output OUT   write the config to OUT instead of stdout
  --strict           exit 1 when anything could not be converted exactly
Everything that is not converted, or not exactly, is listed on stderr as "PATH: reason", followed by the count.
A route whose access control (authentication, ACL, IP rules) cannot be converted is left out, never served without
it. The result is checked with the same compile path as nanogate validate. API keys are written as SHA-256 digests.
Exits 0 (with warnings), 1 on an unreadable or unconvertible file, a result that does not validate (written all
the same, with the errors) or warnings with --strict, 2 on usage errors.
See docs/migrating-from-kong.md and docs/migrating-from-apisix.md.`;

export async function importMain(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { output: { type: 'string', short: 'o' }, strict: { type: 'boolean' } }, allowPositionals: true });
  } catch (err) {
    console.error(`nanogate import: ${(err as Error).message}\n\n${IMPORT_HELP}`);
    return 2;
  }
  const [from, file, ...extra] = parsed.positionals;
  if ((from !== 'kong' && from !== 'apisix') || !file || extra.length) {
    const problem = from && from !== 'kong' && from !== 'apisix' ? `unknown source "${from}" (kong or apisix)` : extra.length ? 'takes one file' : 'needs a source and a file';
    console.error(`nanogate import: ${problem}\n\n${IMPORT_HELP}`);
    return 2;
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    console.error(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    return 1;
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: false });
  if (doc.errors.length) {
    for (const e of doc.errors) console.error(`${file}: ${e.message.split('\n')[0]}`);
    return 1;
  }
  const report = new ImportReport();
  let config: Obj;
  try {
    config = from === 'kong' ? convertKong(doc.toJS(), report, text) : convertApisix(doc.toJS(), text, report);
  } catch (err) {
    // a shape the converter did not expect is still one line, never a stack trace
    console.error(`${file}: ${err instanceof ImportError ? err.message : `cannot convert: ${(err as Error).message}`}`);
    return 1;
  }
  const output = render(config, from, basename(file));

  // the same load and compile as `nanogate validate`: what we write must start
  const [{ loadConfigText }, { compileConfig }, { ConfigError }] = await Promise.all([
    import('../config/load.js'),
    import('../config/compile.js'),
    import('../config/errors.js'),
  ]);
  let invalid: string[] = [];
  try {
    const loaded = loadConfigText(output, parsed.values.output ?? 'converted config', {});
    compileConfig(loaded, parsed.values.output ?? 'converted config');
  } catch (err) {
    invalid = err instanceof ConfigError ? err.message.split('\n') : [(err as Error).message];
  }

  // written even when it does not validate: the errors name what to fix by hand
  if (parsed.values.output) writeFileSync(parsed.values.output, output);
  else process.stdout.write(output);
  for (const issue of report.issues) console.error(`${file}: ${issue.path}: ${issue.reason}`);
  if (invalid.length) {
    console.error(`${file}: the converted config does not validate; fix these before starting it:`);
    for (const line of invalid) console.error(`  ${line}`);
    return 1;
  }
  const n = report.issues.length;
  const routes = (config.routes as unknown[]).length;
  const summary = `${file}: ${routes} route(s), ${Object.keys(config.upstreams as Obj).length} upstream(s), ${(config.consumers as unknown[]).length} consumer(s) converted`;
  if (n && parsed.values.strict) {
    console.error(`${summary}; failed (strict): ${n} warning(s)`);
    return 1;
  }
  console.error(`${summary}${n ? `; ${n} warning(s): the items above are not converted, or not exactly` : ''}`);
  return 0;
}

function render(config: Obj, from: string, file: string): string {
  const clean: Obj = {};
  for (const k of ['limits', 'upstreams', 'consumers', 'policies', 'routes']) {
    const v = config[k];
    if (v === undefined) continue;
    if (Array.isArray(v) && !v.length) continue;
    if (v && typeof v === 'object' && !Array.isArray(v) && !Object.keys(v).length) continue;
    clean[k] = v;
  }
  const head = [
    `# Converted from the ${from === 'kong' ? 'Kong' : 'APISIX'} config ${file} by nanogate import ${from}.`,
    '# The listen and admin ports are nanogate\'s defaults (8080, 9901 on loopback); see the migration guide in docs/.',
  ];
  return `${head.join('\n')}\n${stringify(clean, { lineWidth: 0, aliasDuplicateObjects: false })}`;
}

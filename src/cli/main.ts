import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { checkRuntime, currentRuntime } from './runtime.js';

// Each command imports what it needs when it runs: the control plane, the policies and the config schema take a
// good second to load, and `--help` or `--version` need none of it.

/** The embedded default config: serves the built-in demo upstream on :8080. */
export const DEFAULT_CONFIG = fileURLToPath(new URL('../../../config/nanogate.yaml', import.meta.url));

const HELP: Record<string, string> = {
  main: `nanogate: an API gateway for latency-sensitive traffic

Usage: nanogate <command> [options]
       nanogate --version

Commands:
  start      run a gateway node
  validate   check a config file the way start would, and report every problem
  schema     print the config JSON Schema (for editors), or the config reference
  bench      measure the gateway against a direct upstream (see nanogate bench --help)

Run nanogate <command> --help for the options of a command.`,
  start: `Usage: nanogate start [--config FILE] [--workers N]

Runs a gateway node: the control plane on the main thread, N worker threads on the listen port.
  --config FILE   YAML or JSON config (default: the embedded config/nanogate.yaml with its demo upstream)
  --workers N     worker threads (default: the config's "workers", "auto" = one per core)
SIGTERM/SIGINT drain in-flight requests and exit 0 (also during start-up); SIGHUP reloads the config file;
SIGUSR2 reopens access-log files.`,
  validate: `Usage: nanogate validate FILE [--strict]

Loads and compiles FILE with the same code as start. Prints every error (file: path: reason) and every route that
can never match: each stage checks what the one before let through (routes that fail the schema are left out of
the upstream and overlap checks, the others are checked). Exits 1 on errors; with --strict, also on warnings
("failed (strict): N warning(s)").`,
  schema: `Usage: nanogate schema [--markdown]

Prints the JSON Schema of the config file to stdout, as editors read it (config/schema.json is this output:
npm run schema). With --markdown, prints the config reference instead (docs/config-reference.md: npm run docs:config).`,
};

/** package.json's version. */
export function version(): string {
  return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    console.log(HELP.main);
    return command ? 0 : 1;
  }
  if (command === '--version' || command === '-v' || command === 'version') {
    console.log(version());
    return 0;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    // `bench micro --help` and `bench policies --help` are their own pages
    if (command === 'bench') return (await import('../bench/cli.js')).benchMain(rest[0] === 'micro' || rest[0] === 'policies' ? rest : ['--help']);
    console.log(HELP[command] ?? HELP.main);
    return HELP[command] ? 0 : 1;
  }
  switch (command) {
    case 'start':
      return start(rest);
    case 'validate':
      return validate(rest);
    case 'schema':
      return schema(rest);
    case 'bench': {
      const problem = checkRuntime(currentRuntime());
      if (problem !== null) {
        console.error(problem);
        return 1;
      }
      return (await import('../bench/cli.js')).benchMain(rest);
    }
    default:
      console.error(`nanogate: unknown command "${command}"\n\n${HELP.main}`);
      return 1;
  }
}

async function schema(args: string[]): Promise<number> {
  let markdown: boolean | undefined;
  try {
    markdown = parseArgs({ args, options: { markdown: { type: 'boolean' } } }).values.markdown;
  } catch (err) {
    console.error(`nanogate schema: ${(err as Error).message}\n\n${HELP.schema}`);
    return 2;
  }
  if (markdown) process.stdout.write((await import('../config/reference.js')).configReference());
  else process.stdout.write((await import('../config/editor-schema.js')).editorSchemaText());
  return 0;
}

async function validate(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: { strict: { type: 'boolean' } }, allowPositionals: true });
  if (positionals.length === 0) {
    console.error(HELP.validate);
    return 1;
  }
  const [{ loadConfigFile }, { compileConfig }, { ConfigError }] = await Promise.all([
    import('../config/load.js'),
    import('../config/compile.js'),
    import('../config/errors.js'),
  ]);
  let failed = false;
  for (const file of positionals) {
    try {
      const config = loadConfigFile(file);
      const { plan, warnings } = compileConfig(config, file);
      for (const w of warnings) console.log(`warning: ${file}: ${w}`);
      if (warnings.length && values.strict) {
        failed = true;
        console.error(`${file}: failed (strict): ${warnings.length} warning(s)`);
        continue;
      }
      console.log(`${file}: ok (${plan.routes.length} routes, ${plan.upstreams.length} upstreams)${warnings.length ? `, ${warnings.length} warning(s)` : ''}`);
    } catch (err) {
      failed = true;
      if (err instanceof ConfigError) for (const line of err.message.split('\n')) console.error(line);
      else console.error(`${file}: ${(err as Error).message}`);
    }
  }
  return failed ? 1 : 0;
}

async function start(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, workers: { type: 'string', short: 'w' } } });
  const workers = values.workers !== undefined ? Number(values.workers) : undefined;
  if (workers !== undefined && !(Number.isInteger(workers) && workers >= 1)) {
    console.error('nanogate: --workers takes a whole number of 1 or more');
    return 1;
  }
  const problem = checkRuntime(currentRuntime());
  if (problem !== null) {
    console.error(problem);
    return 1;
  }
  const [{ createLogger }, { ConfigError }, { Gateway }] = await Promise.all([
    import('../observe/log-format.js'),
    import('../config/errors.js'),
    import('../control/gateway.js'),
  ]);
  const logger = createLogger({ name: 'nanogate', level: process.env.NANOGATE_LOG_LEVEL ?? 'info' });
  const gateway = new Gateway({
    configFile: values.config ?? DEFAULT_CONFIG,
    workers,
    logger,
    faultInjection: process.env.NANOGATE_FAULT_INJECTION === '1',
  });

  // Signals are taken before start-up begins: a SIGTERM while workers are still being spawned stops what has
  // started and exits 0, like one that comes later. The launcher's handlers (bin/nanogate.js) stand back once
  // these exist; they are not removed, since a signal still queued when the last listener goes would be lost.
  // A repeated signal does not cut the drain short: that is bounded by proxy.drainTimeoutMs.
  let stopping = false;
  let stopped!: (code: number) => void;
  /** resolves with the exit code once a signal's stop has finished */
  const done = new Promise<number>((resolve) => (stopped = resolve));
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'draining');
    gateway.stop().then(
      () => stopped(0),
      (err) => {
        console.error(`nanogate: stop failed: ${(err as Error).message}`);
        stopped(1);
      },
    );
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => stop(signal));
  logger.info({ config: values.config ?? 'embedded default' }, 'starting');
  try {
    await gateway.start();
  } catch (err) {
    if (stopping) return done; // a signal came during start-up: what had started is stopped
    if (err instanceof ConfigError) {
      for (const line of err.message.split('\n')) console.error(line);
      console.error('nanogate: the config was refused; not starting');
    } else console.error(`nanogate: cannot start: ${(err as Error).message}`);
    await gateway.stop().catch(() => {});
    return 1;
  }
  if (stopping) return done;
  process.on('SIGHUP', () => {
    gateway.reload({ who: 'SIGHUP' }).then(
      ({ version, warnings }) => logger.info({ version, warnings }, 'reloaded on SIGHUP'),
      (err) => logger.error({ err: (err as Error).message }, 'reload refused; the previous config keeps serving'),
    );
  });
  // log rotation: after the file was moved away, the workers reopen their access-log files at the configured path
  process.on('SIGUSR2', () => {
    gateway.reopenLogs();
    logger.info('access-log files reopened on SIGUSR2');
  });
  return done;
}

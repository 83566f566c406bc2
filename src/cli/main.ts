import { fileURLToPath } from 'node:url';
import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import { checkRuntime, currentRuntime } from './runtime.js';
import { EXIT, UsageError, parseCommand, type Options } from './args.js';
import { didYouMean } from '../config/errors.js';

// Each command imports what it needs when it runs: the control plane, the policies and the config schema take a
// good second to load, and `--help` or `--version` need none of it.

/** The embedded default config: serves the built-in demo upstream on :8080. */
export const DEFAULT_CONFIG = fileURLToPath(new URL('../../../config/nanogate.yaml', import.meta.url));

const ADMIN_OPTIONS = `  --admin URL        the admin API (default: $NANOGATE_ADMIN_URL, else http://127.0.0.1:9901)
  --token-file PATH  a file holding the admin token (default: $NANOGATE_ADMIN_TOKEN)`;

const HELP: Record<string, string> = {
  main: `nanogate: an API gateway for latency-sensitive traffic

Usage: nanogate <command> [options]
       nanogate help <command>
       nanogate --version

Commands:
  start      run a gateway node
  validate   check config files the way start would, and report every problem
  diff       show what a config would change in a running gateway (nothing is applied)
  apply      apply a config to a running gateway through its admin API
  dump       print a running gateway's config (credentials redacted)
  status     a running gateway's status, or with --cluster every node of its etcd cluster
  schema     print the config JSON Schema (for editors), or the config reference
  bench      measure the gateway against a direct upstream (see nanogate bench --help)
  import     convert a Kong or APISIX declarative config (see nanogate import --help)

Run nanogate help <command> (or nanogate <command> --help) for the options of a command.
Exit codes: 0 done, 1 config refused (diff: changes), 2 usage error, 3 diff: config refused,
4 admin API unreachable or refused the request (docs/config-tooling.md).`,
  start: `Usage: nanogate start [--config PATH]... [--workers N] [--etcd URL[,URL]] [--etcd-prefix P] [--etcd-node NAME]

Runs a gateway node: the control plane on the main thread, N worker threads on the listen port.
  --config PATH   YAML or JSON config, or a directory of them (*.yaml, *.yml, *.json, by name); repeatable:
                  several are merged (docs/config-tooling.md). Default: the embedded config/nanogate.yaml
                  with its demo upstream (ports: NANOGATE_PORT, NANOGATE_ADMIN_PORT, NANOGATE_DEMO_PORT)
  --workers N     worker threads (default: the config's "workers", "auto" = one per core)
  --etcd URL      etcd v3 client URL(s), comma-separated: the keys under PREFIX/config/ are config files
                  merged after --config (which holds what is per node: listen, admin); watched and applied
                  like a reload on every change (docs/etcd.md)
  --etcd-prefix P key prefix of this cluster (default /nanogate/)
  --etcd-node N   this node's name under PREFIX/nodes/ (default: host name and process id)
  --etcd-check-ms N  how often the watches are checked and this node's report written (default 5000)
SIGTERM/SIGINT drain in-flight requests and exit 0 (also during start-up); SIGHUP reads every config file
again and reloads; SIGUSR2 reopens access-log files. Exit 1: the config was refused; 2: usage error.`,
  validate: `Usage: nanogate validate FILE... [--strict]
       nanogate validate --config PATH [--config PATH]... [--strict]

Loads and compiles each FILE with the same code as start; with --config, the files (or directories) are merged
into one config first, as start --config merges them. Prints every error (file: path: reason) and every route
that can never match: each stage checks what the one before let through (routes that fail the schema are left
out of the upstream and overlap checks, the others are checked). Exits 1 on errors; with --strict, also on
warnings ("failed (strict): N warning(s)"); 2 on a usage error.`,
  diff: `Usage: nanogate diff FILE|DIR... [--config PATH]... [--admin URL] [--token-file PATH]

Sends the config (several files are merged, as start merges them) to the running gateway as a dry run
(PUT /config?dryRun=1): it is validated and compiled there, with the gateway's environment, and nothing is
applied. Prints what would change: routes, upstreams, policies, consumers and settings added (+), removed (-)
or changed (~), with the changed fields (credentials redacted).
${ADMIN_OPTIONS}
Exit codes: 0 no change, 1 changes, 2 usage error, 3 the gateway would refuse the config (its errors are
printed), 4 the admin API cannot be reached or refused the request.`,
  apply: `Usage: nanogate apply FILE|DIR... [--config PATH]... [--admin URL] [--token-file PATH]

Applies the config (several files are merged, as start merges them) to the running gateway (PUT /config): it is
validated, compiled and swapped into every worker, or refused whole while the previous version keeps serving.
${ADMIN_OPTIONS}
Exit codes: 0 applied, 1 the config was refused (its errors are printed), 2 usage error, 4 the admin API cannot
be reached or refused the request.`,
  dump: `Usage: nanogate dump [--version N] [--format yaml|json] [--admin URL] [--token-file PATH]

Prints the running config (or kept version N) as the gateway holds it: defaults filled in, \${...} resolved,
every credential "[redacted]" (so a dump is for reading and diffing, not for applying again).
  --version N        a version kept for rollback (GET /config/history lists them)
  --format F         yaml (default) or json
${ADMIN_OPTIONS}
Exit codes: 0 printed, 2 usage error, 4 the admin API cannot be reached, refused the request or does not keep N.`,
  status: `Usage: nanogate status [--cluster] [--json] [--admin URL] [--token-file PATH]

Prints the running gateway's status (GET /status). With --cluster, every node of its etcd cluster
(GET /etcd/nodes): id, address, config and consumer revisions, when it last applied one, its lag behind the
newest change in the store (config/consumers, in revisions) and its watch state (ok, stalled, away); a node
that lags, whose watch is not ok, or whose report is older than three check intervals is marked LAGGING.
  --cluster          every node (the gateway must run with --etcd)
  --json             the admin API's answer as JSON
${ADMIN_OPTIONS}
Exit codes: 0 printed (--cluster: every node in step), 1 --cluster: a node lags, 2 usage error, 4 the admin
API cannot be reached, refused the request, or (--cluster) runs without etcd.`,
  schema: `Usage: nanogate schema [--markdown]

Prints the JSON Schema of the config file to stdout, as editors read it (config/schema.json is this output:
npm run schema). With --markdown, prints the config reference instead (docs/config-reference.md: npm run docs:config).`,
  help: `Usage: nanogate help [COMMAND]

Prints the help of COMMAND, or the list of commands.`,
};

/** The options each command takes (strict: anything else is a usage error with a did-you-mean). */
const ADMIN_FLAGS: Options = { admin: { type: 'string' }, 'token-file': { type: 'string' } };
const COMMANDS: Record<string, { options: Options; positionals: 'none' | 'some' }> = {
  start: { options: { config: { type: 'string', short: 'c', multiple: true }, workers: { type: 'string', short: 'w' }, etcd: { type: 'string' }, 'etcd-prefix': { type: 'string' }, 'etcd-node': { type: 'string' }, 'etcd-check-ms': { type: 'string' } }, positionals: 'none' },
  status: { options: { cluster: { type: 'boolean' }, json: { type: 'boolean' }, ...ADMIN_FLAGS }, positionals: 'none' },
  validate: { options: { strict: { type: 'boolean' }, config: { type: 'string', short: 'c', multiple: true } }, positionals: 'some' },
  diff: { options: { config: { type: 'string', short: 'c', multiple: true }, ...ADMIN_FLAGS }, positionals: 'some' },
  apply: { options: { config: { type: 'string', short: 'c', multiple: true }, ...ADMIN_FLAGS }, positionals: 'some' },
  dump: { options: { version: { type: 'string' }, format: { type: 'string' }, ...ADMIN_FLAGS }, positionals: 'none' },
  schema: { options: { markdown: { type: 'boolean' } }, positionals: 'none' },
};
const ALL_COMMANDS = [...Object.keys(COMMANDS), 'bench', 'help', 'version'];

/** package.json's version. */
export function version(): string {
  return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

export async function main(argv: string[]): Promise<number> {
  try {
    return await run(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(err.message);
    const command = argv[0];
    console.error(HELP[command] ? `Run nanogate help ${command} for its options.` : 'Run nanogate help for the commands.');
    return EXIT.usage;
  }
}

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command) {
    console.error(HELP.main);
    return EXIT.usage;
  }
  if (command === '--help' || command === '-h') {
    console.log(HELP.main);
    return EXIT.ok;
  }
  if (command === 'help') {
    const topic = rest[0];
    if (topic === undefined) console.log(HELP.main);
    else if (topic === 'bench') return run(['bench', '--help']);
    else if (topic === 'import') return run(['import', '--help']);
    else if (HELP[topic] && topic !== 'main') console.log(HELP[topic]);
    else throw unknownCommand(topic);
    return EXIT.ok;
  }
  if (command === '--version' || command === '-v' || command === 'version') {
    console.log(version());
    return EXIT.ok;
  }
  if (command === 'bench') {
    const help = rest.includes('--help') || rest.includes('-h');
    const problem = (help ? null : checkRuntime(currentRuntime())) ?? missingBenchPackages();
    if (problem !== null) {
      console.error(problem);
      return 1;
    }
    // `bench micro --help` and `bench policies --help` are their own pages
    if (help) return (await import('../bench/cli.js')).benchMain(rest[0] === 'micro' || rest[0] === 'policies' ? rest : ['--help']);
    return (await import('../bench/cli.js')).benchMain(rest);
  }
  if (command === 'import') {
    // the importer parses its own options (src/import/cli.ts)
    const mod = await import('../import/cli.js');
    if (rest.includes('--help') || rest.includes('-h')) {
      console.log(mod.IMPORT_HELP);
      return EXIT.ok;
    }
    return mod.importMain(rest);
  }
  const spec = COMMANDS[command];
  if (!spec) throw unknownCommand(command);
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(HELP[command]);
    return EXIT.ok;
  }
  const { values, positionals } = parseCommand(command, rest, spec.options, spec.positionals);
  switch (command) {
    case 'start':
      return start(values);
    case 'validate':
      return validate(values, positionals);
    case 'diff':
      return (await import('./config-commands.js')).diff(values, positionals);
    case 'apply':
      return (await import('./config-commands.js')).apply(values, positionals);
    case 'dump':
      return (await import('./config-commands.js')).dump(values);
    case 'status':
      return (await import('./status-command.js')).status(values);
    default:
      if (values.markdown) process.stdout.write((await import('../config/reference.js')).configReference());
      else process.stdout.write((await import('../config/editor-schema.js')).editorSchemaText());
      return EXIT.ok;
  }
}

/** The bench's load generators and histograms are dev dependencies: a production install has none of them. */
const BENCH_PACKAGES = ['autocannon', 'hdr-histogram-js', 'tinybench'];

function missingBenchPackages(): string | null {
  const missing = BENCH_PACKAGES.filter((name) => {
    try {
      import.meta.resolve(name);
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length === 0) return null;
  return `nanogate bench: ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not installed (the bench's dev dependencies, left out by npm install --omit=dev): run \`npm install --include=dev\` in ${fileURLToPath(new URL('../../../', import.meta.url))}, or \`npm install --no-save ${BENCH_PACKAGES.join(' ')}\``;
}

function unknownCommand(command: string): UsageError {
  const hint = didYouMean(command, ALL_COMMANDS);
  return new UsageError(`nanogate: unknown command "${command}"${hint ? ` (${hint})` : ''}; commands: ${ALL_COMMANDS.join(', ')}`);
}

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

async function validate(values: Values, positionals: string[]): Promise<number> {
  const merged = (values.config as string[] | undefined) ?? [];
  if (positionals.length === 0 && merged.length === 0) throw new UsageError('nanogate validate: name a config file (or --config PATH, repeatable, to merge several)');
  const [{ loadConfigFiles, locateIssues }, { compileConfig }, { ConfigError }] = await Promise.all([
    import('../config/load.js'),
    import('../config/compile.js'),
    import('../config/errors.js'),
  ]);
  let failed = false;
  // each FILE on its own, then the --config set as one config
  const sets = [...positionals.map((f) => [f]), ...(merged.length ? [merged] : [])];
  for (const paths of sets) {
    let file = paths.join(', ');
    try {
      const loaded = loadConfigFiles(paths);
      file = loaded.label;
      let compiled;
      try {
        compiled = compileConfig(loaded.config, file);
      } catch (err) {
        throw locateIssues(err, loaded.origins);
      }
      const { plan, warnings } = compiled;
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
  return failed ? EXIT.config : EXIT.ok;
}

/** --etcd, --etcd-prefix, --etcd-node as the gateway's etcd source options (null without --etcd). */
function etcdOptions(values: Values): { endpoints: string[]; prefix: string; node: string; checkIntervalMs?: number } | null {
  const given = values.etcd as string | undefined;
  if (given === undefined) {
    if (values['etcd-prefix'] !== undefined || values['etcd-node'] !== undefined || values['etcd-check-ms'] !== undefined) throw new UsageError('nanogate start: --etcd-prefix, --etcd-node and --etcd-check-ms need --etcd URL');
    return null;
  }
  const endpoints = given.split(',').map((e) => e.trim()).filter(Boolean);
  for (const e of endpoints) {
    let url: URL | null = null;
    try {
      url = new URL(e);
    } catch {
      // reported below
    }
    if (url?.protocol !== 'http:') throw new UsageError(`nanogate start: --etcd takes http:// URLs of etcd's client port, not "${e}"`);
  }
  if (endpoints.length === 0) throw new UsageError('nanogate start: --etcd takes one or more URLs, comma-separated');
  const prefix = (values['etcd-prefix'] as string | undefined) ?? '/nanogate/';
  const node = (values['etcd-node'] as string | undefined) ?? `${hostname()}-${process.pid}`;
  if (!/^[A-Za-z0-9._:-]{1,100}$/.test(node)) throw new UsageError(`nanogate start: --etcd-node takes 1 to 100 of A-Z a-z 0-9 . _ : -, not "${node}"`);
  const check = values['etcd-check-ms'] as string | undefined;
  if (check !== undefined && !(/^[0-9]{1,7}$/.test(check) && Number(check) >= 100)) throw new UsageError(`nanogate start: --etcd-check-ms takes milliseconds, 100 or more, not "${check}"`);
  return { endpoints, prefix, node, ...(check !== undefined ? { checkIntervalMs: Number(check) } : {}) };
}

async function start(values: Values): Promise<number> {
  const workers = values.workers !== undefined ? Number(values.workers) : undefined;
  if (workers !== undefined && !(Number.isInteger(workers) && workers >= 1)) throw new UsageError(`nanogate start: --workers takes a whole number of 1 or more, not "${values.workers}"`);
  const configs = (values.config as string[] | undefined) ?? [];
  const etcd = etcdOptions(values);
  const problem = checkRuntime(currentRuntime());
  if (problem !== null) {
    console.error(problem);
    return 1;
  }
  const [{ createLogger }, { ConfigError }, { Gateway }, { tuneHeaps, collectStartupGarbage, memoryReducerOff }] = await Promise.all([
    import('../observe/log-format.js'),
    import('../config/errors.js'),
    import('../control/gateway.js'),
    import('../shared/heap-tuning.js'),
  ]);
  // before any worker exists: their heaps take these flags when they are made
  const heapFlags = tuneHeaps();
  const logger = createLogger({ name: 'nanogate', level: process.env.NANOGATE_LOG_LEVEL ?? 'info' });
  if (heapFlags !== '') logger.debug({ heapFlags }, 'V8 heap flags set (NANOGATE_V8_HEAP=default leaves them)');
  const gateway = new Gateway({
    configFile: configs[0] ?? DEFAULT_CONFIG,
    configFiles: configs.length > 1 ? configs : undefined,
    workers,
    logger,
    faultInjection: process.env.NANOGATE_FAULT_INJECTION === '1',
    ...(etcd ? { etcd } : {}),
    beforeServing: () => {
      if (!memoryReducerOff()) {
        logger.info('node runs with V8\'s memory reducer: ~8 s after start-up it may compact the control plane\'s heap, a 15-20 ms stall of a worker\'s CPU; start node with --no-memory-reducer as bin/nanogate.js and npm start do (docs/performance.md)');
        return;
      }
      const ms = collectStartupGarbage();
      logger.debug({ ms: Math.round(ms * 10) / 10 }, 'start-up garbage collected');
    },
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
  logger.info({ config: configs.length ? configs.join(', ') : 'embedded default' }, 'starting');
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

import { readFileSync, existsSync, readdirSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { BENCH_DIR } from './paths.js';

/**
 * A macro scenario: which gateway config to run, what request to send, and how hard. One small JSON or YAML file
 * under bench/scenarios/ (or anywhere, with --scenario FILE). Paths inside it are relative to the file.
 *
 * Example (bench/scenarios/passthrough.json):
 *   {
 *     "description": "GET / through one prefix route to a 100-byte upstream answer",
 *     "gateway": { "config": "../configs/passthrough.yaml" },
 *     "request": { "method": "GET", "paths": ["/"] },
 *     "expect": { "status": 200, "bodyBytes": 100 },
 *     "fixedRate": { "rate": 2000, "connections": 50 },
 *     "maxThroughput": { "connections": 50 },
 *     "durationSeconds": 5, "warmupSeconds": 2, "rounds": 3,
 *     "short": { "durationSeconds": 3, "warmupSeconds": 1, "rounds": 1 }
 *   }
 */

const Seconds = (def: number, description: string) => Type.Number({ exclusiveMinimum: 0, maximum: 3600, default: def, description });

const FixedRate = Type.Object(
  {
    rate: Type.Number({ exclusiveMinimum: 0, maximum: 1_000_000, description: 'requests per second over all connections (open loop)' }),
    connections: Type.Integer({ minimum: 1, maximum: 20_000, default: 50 }),
  },
  { additionalProperties: false },
);

const MaxThroughput = Type.Object(
  { connections: Type.Integer({ minimum: 1, maximum: 20_000, default: 50, description: 'closed-loop connections (autocannon)' }) },
  { additionalProperties: false },
);

const Generate = Type.Object(
  {
    kind: Type.String({ minLength: 1, description: 'a generator in src/bench/gen-config.ts, e.g. "routes"' }),
  },
  { additionalProperties: true, description: 'a config generated for the run (the other keys are the generator options)' },
);

const Gateway = Type.Object(
  {
    config: Type.Optional(Type.String({ minLength: 1, description: 'gateway config file (YAML or JSON), relative to this file' })),
    generate: Type.Optional(Generate),
    workers: Type.Optional(Type.Integer({ minimum: 1, maximum: 256, description: 'overrides the config (default: its "workers")' })),
    env: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), Type.String(), { description: 'extra ${VARS} for the config' })),
    baseline: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'a second gateway config (relative to this file) measured in place of the direct upstream: "added" is then the cost of what the first config adds to it (a policy vs the same route without it)',
      }),
    ),
  },
  { additionalProperties: false },
);

const Request = Type.Object(
  {
    method: Type.String({ pattern: '^[A-Z]{1,16}$', default: 'GET' }),
    paths: Type.Array(Type.String({ pattern: '^/' }), { minItems: 1, default: ['/'], description: 'request targets, used in turn' }),
    directPaths: Type.Optional(Type.Array(Type.String({ pattern: '^/' }), { minItems: 1, description: 'targets for the direct run when the gateway rewrites (default: paths)' })),
    headers: Type.Record(Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" }), Type.String(), { default: {} }),
    bodyBytes: Type.Integer({ minimum: 0, maximum: 256 * 1024 * 1024, default: 0 }),
  },
  { additionalProperties: false, default: {} },
);

const WebSocketLoad = Type.Object(
  {
    messageBytes: Type.Integer({ minimum: 1, maximum: 16 * 1024 * 1024, default: 64, description: 'size of each binary message' }),
    window: Type.Integer({ minimum: 1, maximum: 10_000, default: 16, description: 'max mode: messages each connection keeps in flight' }),
  },
  {
    additionalProperties: false,
    description: 'WebSocket messages instead of HTTP requests: request.paths[0] is the echo endpoint (the bench upstream has /ws/echo); fixedRate.rate is messages/s; latency is per message, send to echo',
  },
);

const Expect = Type.Object(
  {
    status: Type.Integer({ minimum: 100, maximum: 599, default: 200 }),
    bodyBytes: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false, default: {} },
);

const Timing = {
  durationSeconds: Seconds(5, 'length of each measured phase'),
  warmupSeconds: Type.Number({ minimum: 0, maximum: 600, default: 2, description: 'load before measuring, per target' }),
  rounds: Type.Integer({ minimum: 1, maximum: 100, default: 3, description: 'direct/gateway pairs per mode, interleaved' }),
};

const Short = Type.Object(
  {
    durationSeconds: Type.Optional(Timing.durationSeconds),
    warmupSeconds: Type.Optional(Timing.warmupSeconds),
    rounds: Type.Optional(Timing.rounds),
    fixedRate: Type.Optional(Type.Union([FixedRate, Type.Null()])),
    maxThroughput: Type.Optional(Type.Union([MaxThroughput, Type.Null()])),
  },
  { additionalProperties: false, description: 'what --short changes' },
);

export const ScenarioSchema = Type.Object(
  {
    $schema: Type.Optional(Type.String()),
    name: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', description: 'default: the file name' })),
    description: Type.String({ default: '' }),
    gateway: Gateway,
    request: Request,
    expect: Expect,
    websocket: Type.Optional(WebSocketLoad),
    fixedRate: Type.Union([FixedRate, Type.Null()], { default: null, description: 'omit or null to skip the fixed-rate mode' }),
    maxThroughput: Type.Union([MaxThroughput, Type.Null()], { default: null, description: 'omit or null to skip the max-throughput mode' }),
    ...Timing,
    timeoutSeconds: Type.Number({ exclusiveMinimum: 0, maximum: 600, default: 10, description: 'a request unanswered this long is an error' }),
    short: Type.Optional(Short),
  },
  { additionalProperties: false },
);

export type ScenarioFile = Static<typeof ScenarioSchema>;

/** A loaded scenario, with its paths resolved and --short / command-line overrides applied. */
export interface Scenario extends ScenarioFile {
  name: string;
  file: string;
  /** absolute path of the gateway config, or null when generated */
  configFile: string | null;
  /** absolute path of the baseline gateway's config (gateway.baseline), or null: the direct upstream */
  baselineFile: string | null;
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validate = ajv.compile<ScenarioFile>(ScenarioSchema);

export const SCENARIO_DIR = join(BENCH_DIR, 'scenarios');

/** The shipped scenarios run first and in this order (the simplest first); others follow by name. */
const PREFERRED = ['passthrough', 'routes-10k', 'body-1mb', 'conns-1000'];

/** Scenario names in bench/scenarios/. */
export function shippedScenarios(): string[] {
  const rank = (n: string) => (PREFERRED.includes(n) ? PREFERRED.indexOf(n) : PREFERRED.length);
  return readdirSync(SCENARIO_DIR)
    .filter((f) => /\.(json|ya?ml)$/.test(f))
    .map((f) => f.replace(/\.(json|ya?ml)$/, ''))
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

/** A name (bench/scenarios/NAME.json|yaml) or a path. */
export function resolveScenarioFile(nameOrPath: string): string {
  if (nameOrPath.includes('/') || /\.(json|ya?ml)$/.test(nameOrPath)) {
    const p = isAbsolute(nameOrPath) ? nameOrPath : resolve(nameOrPath);
    if (!existsSync(p)) throw new Error(`scenario file not found: ${nameOrPath}`);
    return p;
  }
  for (const ext of ['.json', '.yaml', '.yml']) {
    const p = join(SCENARIO_DIR, nameOrPath + ext);
    if (existsSync(p)) return p;
  }
  throw new Error(`no scenario named "${nameOrPath}" (shipped: ${shippedScenarios().join(', ')}); pass a file path to use your own`);
}

export interface Overrides {
  short?: boolean;
  durationSeconds?: number;
  warmupSeconds?: number;
  rounds?: number;
  rate?: number;
  connections?: number;
  workers?: number;
}

export function loadScenario(nameOrPath: string, o: Overrides = {}): Scenario {
  const file = resolveScenarioFile(nameOrPath);
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: cannot parse: ${(err as Error).message}`);
  }
  if (!validate(raw)) {
    const issues = (validate.errors ?? []).map((e) => `  ${e.instancePath || '(top)'} ${e.message}${e.keyword === 'additionalProperties' ? ` "${(e.params as { additionalProperty: string }).additionalProperty}"` : ''}`);
    throw new Error(`${file}: not a valid scenario:\n${issues.join('\n')}`);
  }
  const s = raw as ScenarioFile;
  if (!s.gateway.config === !s.gateway.generate) throw new Error(`${file}: gateway needs exactly one of "config" or "generate"`);
  if (!s.fixedRate && !s.maxThroughput) throw new Error(`${file}: set fixedRate, maxThroughput or both`);
  const name = s.name ?? basename(file, extname(file));
  const scenario: Scenario = {
    ...s,
    name,
    file,
    configFile: s.gateway.config ? resolve(dirname(file), s.gateway.config) : null,
    baselineFile: s.gateway.baseline ? resolve(dirname(file), s.gateway.baseline) : null,
  };
  if (o.short && s.short) {
    const sh = s.short;
    if (sh.durationSeconds !== undefined) scenario.durationSeconds = sh.durationSeconds;
    if (sh.warmupSeconds !== undefined) scenario.warmupSeconds = sh.warmupSeconds;
    if (sh.rounds !== undefined) scenario.rounds = sh.rounds;
    if (sh.fixedRate !== undefined) scenario.fixedRate = sh.fixedRate;
    if (sh.maxThroughput !== undefined) scenario.maxThroughput = sh.maxThroughput;
  }
  if (o.durationSeconds !== undefined) scenario.durationSeconds = o.durationSeconds;
  if (o.warmupSeconds !== undefined) scenario.warmupSeconds = o.warmupSeconds;
  if (o.rounds !== undefined) scenario.rounds = o.rounds;
  if (o.rate !== undefined && scenario.fixedRate) scenario.fixedRate = { ...scenario.fixedRate, rate: o.rate };
  if (o.connections !== undefined) {
    if (scenario.fixedRate) scenario.fixedRate = { ...scenario.fixedRate, connections: o.connections };
    if (scenario.maxThroughput) scenario.maxThroughput = { ...scenario.maxThroughput, connections: o.connections };
  }
  if (o.workers !== undefined) scenario.gateway = { ...scenario.gateway, workers: o.workers };
  if (scenario.baselineFile && !existsSync(scenario.baselineFile)) throw new Error(`${file}: baseline gateway config not found: ${scenario.baselineFile}`);
  if (scenario.configFile && !existsSync(scenario.configFile)) throw new Error(`${file}: gateway config not found: ${scenario.configFile}`);
  return scenario;
}

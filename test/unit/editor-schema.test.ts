import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ConfigSchema } from '../../src/config/schema.js';
import { editorSchema, editorSchemaText, JSON_SCHEMA_DIALECT } from '../../src/config/editor-schema.js';
import { configReference } from '../../src/config/reference.js';
import { parseConfigText, validateConfig } from '../../src/config/load.js';
import { AJV_OPTIONS, createAjv } from '../../src/config/validator.js';
import { runCli } from '../helpers/cli.js';

/**
 * config/schema.json is what editors validate a config with; docs/config-reference.md is what people read. Both are
 * generated from the TypeBox schema, and these tests keep them in step with it and true to what the gateway accepts.
 */

const require = createRequire(import.meta.url);
const { Ajv } = require('ajv') as typeof import('ajv');
const root = fileURLToPath(new URL('../../../', import.meta.url));
const files = ['config/nanogate.yaml', ...readdirSync(join(root, 'config/examples')).filter((f) => f.endsWith('.yaml')).map((f) => `config/examples/${f}`)];
const published = JSON.parse(readFileSync(join(root, 'config/schema.json'), 'utf8'));

type Node = Record<string, any>;

/** The file's text parsed as an editor sees it: YAML, with ${VAR} placeholders left as they are written. */
const asWritten = (file: string) => parse(readFileSync(join(root, file), 'utf8'));

/** Validates the way an editor does: a standard Ajv, strict mode off, on config/schema.json itself. */
function editorValidator() {
  return new Ajv({ strict: false, allErrors: true }).compile(published);
}

function errorsOf(validate: ReturnType<typeof editorValidator>, value: unknown): string[] {
  return validate(value) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`);
}

test('config/schema.json is what nanogate schema prints (run npm run schema after a schema change)', () => {
  assert.equal(readFileSync(join(root, 'config/schema.json'), 'utf8'), editorSchemaText());
});

test('docs/config-reference.md is what nanogate schema --markdown prints (run npm run docs:config after a schema change)', () => {
  assert.equal(readFileSync(join(root, 'docs/config-reference.md'), 'utf8'), configReference());
});

test('nanogate schema prints config/schema.json whole through a pipe, --markdown the reference; an unknown option is a usage error', async () => {
  const json = await runCli(['schema']);
  assert.equal(json.code, 0, json.stderr);
  assert.equal(json.stdout, readFileSync(join(root, 'config/schema.json'), 'utf8'));
  const md = await runCli(['schema', '--markdown']);
  assert.equal(md.code, 0, md.stderr);
  assert.equal(md.stdout, readFileSync(join(root, 'docs/config-reference.md'), 'utf8'));
  const bad = await runCli(['schema', '--markdwon']);
  assert.equal(bad.code, 2);
  assert.equal(bad.stdout, '');
  assert.match(bad.stderr, /nanogate schema: unknown option "--markdwon" \(did you mean "--markdown"\?\)/);
});

test('config/schema.json declares draft-07, its $id and a title, and is a valid draft-07 schema', () => {
  assert.equal(published.$schema, JSON_SCHEMA_DIALECT);
  assert.equal(published.$id, 'https://nanogate.dev/schema/config.json');
  assert.equal(published.title, 'nanogate config');
  const ajv = new Ajv({ strict: false });
  assert.equal(ajv.validateSchema(published), true, JSON.stringify(ajv.errors));
});

test('every property in config/schema.json has a description', () => {
  const missing: string[] = [];
  let count = 0;
  const walk = (node: Node | undefined, path: string) => {
    if (node === null || typeof node !== 'object') return;
    for (const [k, v] of Object.entries<Node>(node.properties ?? {})) {
      count++;
      if (typeof v.description !== 'string' || v.description.trim().length < 8) missing.push(`${path}.${k}`);
      walk(v, `${path}.${k}`);
    }
    for (const v of Object.values<Node>(node.patternProperties ?? {})) walk(v, `${path}.<name>`);
    if (typeof node.additionalProperties === 'object') walk(node.additionalProperties, `${path}.<name>`);
    if (node.items) for (const it of [node.items].flat()) walk(it, `${path}[]`);
    for (const k of ['anyOf', 'oneOf', 'allOf']) (node[k] ?? []).forEach((b: Node, i: number) => walk(b, `${path}(${k} ${i})`));
    for (const k of ['then', 'else']) walk(node[k], path);
  };
  walk(published, '');
  assert.ok(count > 400, `the walk reaches the policy, identity and upstream schemas (${count} properties)`);
  assert.deepEqual([...new Set(missing)], [], 'describe these in their TypeBox schema (what it does, unit, default behaviour), then npm run schema');
});

test('every example and the embedded config pass config/schema.json as an editor validates them, placeholders as written', () => {
  const validate = editorValidator();
  assert.ok(files.length >= 10);
  for (const file of files) assert.deepEqual(errorsOf(validate, asWritten(file)), [], file);
});

test('config/schema.json still refuses what the gateway refuses', () => {
  const validate = editorValidator();
  const base = () => asWritten('config/examples/routing.yaml');
  const cases: [string, (c: Node) => void, RegExp][] = [
    ['an unknown key', (c) => (c.routes[0].stripPrefx = true), /must NOT have additional properties/],
    ['a route without match', (c) => delete c.routes[0].match, /must have required property 'match'/],
    ['a port that is text', (c) => (c.listen = { port: 'eighty' }), /\/listen\/port must match pattern/],
    ['a port that is a number in quotes', (c) => (c.listen = { port: '8080' }), /\/listen\/port must match pattern/],
    ['a port out of range', (c) => (c.listen = { port: 70000 }), /\/listen\/port must be <= 65535/],
    ['a placeholder whose default is not a number', (c) => (c.listen = { port: '${PORT:-eighty}' }), /\/listen\/port must match pattern/],
    ['a placeholder inside a longer value', (c) => (c.listen = { port: '80${N}' }), /\/listen\/port must match pattern/],
    ['a boolean placeholder with a number default', (c) => (c.listen = { reusePort: '${REUSE:-1}' }), /\/listen\/reusePort must match pattern/],
  ];
  for (const [what, change, error] of cases) {
    const config = base();
    change(config);
    assert.match(errorsOf(validate, config).join('\n'), error, what);
  }
  const ok = base();
  ok.listen = { port: '${PORT}', reusePort: '${REUSE:-false}' };
  ok.redis = { url: '${REDIS_URL:-redis://127.0.0.1:6379}' };
  ok.admin = { token: '${ADMIN_TOKEN}' };
  assert.deepEqual(errorsOf(validate, ok), [], 'whole-value placeholders in number, boolean, patterned and minimum-length string fields');
  ok.admin = { token: 'too-short' };
  assert.match(errorsOf(validate, ok).join('\n'), /\/admin\/token must NOT have fewer than 16 characters/);
});

/**
 * Removes from a parsed config every key that config/schema.json does not require but the gateway's own schema does
 * (sections are emptied rather than removed, so that what is inside them is tried as well).
 */
function withoutDroppedKeys(value: unknown, source: Node, editor: Node, dropped: string[], path: string): void {
  if (value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    if (source.items && !Array.isArray(source.items)) value.forEach((v, i) => withoutDroppedKeys(v, source.items, editor.items, dropped, `${path}[${i}]`));
    return;
  }
  const obj = value as Node;
  const branches: Node[] | undefined = source.oneOf ?? source.anyOf;
  if (branches) {
    const i = branches.findIndex((b) => fits(obj, b));
    if (i >= 0) withoutDroppedKeys(obj, branches[i], (editor.oneOf ?? editor.anyOf)[i], dropped, path);
  }
  if (source.properties) {
    const stillRequired = new Set(editor.required ?? []);
    for (const k of source.required ?? []) {
      // a section is kept and emptied of its own optional keys instead, so that the keys inside are tried too
      if (!stillRequired.has(k) && k in obj && !holdsObjects(obj[k])) {
        delete obj[k];
        dropped.push(`${path}.${k}`);
      }
    }
  }
  for (const [k, v] of Object.entries(obj)) {
    if (source.properties?.[k]) withoutDroppedKeys(v, source.properties[k], editor.properties[k], dropped, `${path}.${k}`);
    else if (source.patternProperties) {
      const [p, s] = Object.entries<Node>(source.patternProperties)[0];
      withoutDroppedKeys(v, s, editor.patternProperties[p], dropped, `${path}.${k}`);
    }
  }
}

const holdsObjects = (v: unknown) => v !== null && typeof v === 'object' && (!Array.isArray(v) || v.some((x) => x !== null && typeof x === 'object'));

/** Which branch of a union an object takes: the one whose const properties it matches and whose keys it uses. */
function fits(obj: Node, branch: Node): boolean {
  if (branch.type !== 'object' || !branch.properties) return false;
  for (const [k, s] of Object.entries<Node>(branch.properties)) if (s.const !== undefined && obj[k] !== s.const) return false;
  return Object.keys(obj).every((k) => k in branch.properties);
}

test('every key config/schema.json leaves optional is one the gateway fills in: the examples load without them', () => {
  const source = JSON.parse(JSON.stringify(ConfigSchema));
  const editor = editorSchema({ placeholders: false });
  const dropped: string[] = [];
  for (const file of files) {
    const value = parseConfigText(readFileSync(join(root, file), 'utf8'), {}, join(root, file), []);
    withoutDroppedKeys(value, source, editor, dropped, file);
    assert.doesNotThrow(() => validateConfig(value, file), file);
  }
  // the walk did take keys out, in the places that matter (discovery branches, policies, upstreams)
  assert.ok(dropped.length > 30, `${dropped.length} keys removed`);
  for (const part of ['.discovery.', '.policies.', '.upstreams.', '.listen.']) assert.ok(dropped.some((d) => d.includes(part)), part);
  assert.doesNotThrow(() => validateConfig({}, 'empty.yaml'));
});

test('a config with only the keys config/schema.json requires, in sections no example has, loads', () => {
  const minimal = {
    upstreams: {
      c: { discovery: { type: 'consul', service: 'web' } },
      k: { discovery: { type: 'kubernetes', namespace: 'default', service: 'web' } },
      d: { discovery: { type: 'dns', name: '_http._tcp.api.internal', recordType: 'SRV' } },
      h: { nodes: [{ url: 'http://127.0.0.1:1' }], balancer: 'consistent-hash', balancing: { slowStart: { windowMs: 5000 } }, healthCheck: {}, circuitBreaker: {} },
    },
    routes: [
      {
        name: 'r',
        match: { prefix: '/' },
        upstream: 'h',
        retries: {},
        requestBody: {},
        timeouts: { requestMs: 1000 },
        fallback: { status: 503, headers: {}, body: '' },
        policies: {
          auth: { methods: { apiKey: {}, jwt: { jwksUrl: 'https://idp.example.com/jwks.json' } }, identityHeaders: { consumerId: 'x-consumer-id' } },
          authorize: { scopes: { anyOf: ['read'] } },
          rateLimit: { limits: [{ key: 'ip', rate: 1 }], quota: { per: 'day', limit: 5 }, plans: { gold: { limits: [{ key: 'consumer', rate: 5 }] } } },
          cors: { origins: ['https://app.example.com'] },
          accessLog: {},
          tracing: {},
          serverTiming: {},
          headers: { request: { set: { 'x-a': '1' } } },
          ipRestriction: { allow: ['127.0.0.1'] },
        },
      },
    ],
    consumers: [{ id: 'c1', keys: [{ key: 'a-key-of-sixteen-chars' }], subscriptions: ['r', { api: 'other' }] }],
    consumerRegistry: { file: 'consumers.yaml' },
    redis: { nodes: [{ host: '127.0.0.1' }] },
    observability: { accessLog: { destination: { type: 'file', path: 'access.log' } }, tracing: { endpoint: 'http://127.0.0.1:4318/v1/traces' } },
    demo: {},
  };
  assert.deepEqual(errorsOf(editorValidator(), minimal), []);
  assert.doesNotThrow(() => validateConfig(JSON.parse(JSON.stringify(minimal)), 'minimal.yaml'));
});

test('config/schema.json carries the gateway\'s defaults: filling them in gives the config the gateway loads', () => {
  const fill = createAjv({ ...AJV_OPTIONS }).compile(editorSchema({ placeholders: false }));
  for (const file of files) {
    const text = readFileSync(join(root, file), 'utf8');
    const loaded = validateConfig(parseConfigText(text, {}, join(root, file), []), file);
    const filled = parseConfigText(text, {}, join(root, file), []);
    assert.equal(fill(filled), true, `${file}: ${JSON.stringify(fill.errors)}`);
    assert.deepEqual(filled, loaded, file);
  }
});

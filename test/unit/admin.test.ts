import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadConfigText } from '../../src/config/load.js';
import { compileConfig } from '../../src/config/compile.js';
import { ConfigError } from '../../src/config/errors.js';
import { Runtime } from '../../src/worker/runtime.js';
import { ADMIN_ERRORS } from '../../src/control/admin.js';
import { tokenFingerprint } from '../../src/control/audit.js';
import { AdminFlags, FLAG_ON, HEADER_SLOTS, NODE_COUNT, PLAN_VERSION, ROUTE_COUNT, flagCells, nodeCellBase, routeCell, type AdminSwitches } from '../../src/shared/admin-flags.js';

const compile = (yaml: string, version = 1) => compileConfig(loadConfigText(yaml, 'gw.yaml', {}), 'gw.yaml', version).plan;

const BASE = `
upstreams:
  a: { nodes: [{ url: "http://127.0.0.1:9001" }, { url: "http://127.0.0.1:9002" }] }
  b: { nodes: [{ url: "http://127.0.0.1:9003" }] }
routes:
  - { name: one, match: { prefix: /one }, upstream: a }
  - { name: two, match: { prefix: /two }, upstream: b }
`;

test('the admin API refuses to listen on a non-loopback host without a token', () => {
  let err: unknown;
  try {
    compile(`admin: { host: 0.0.0.0 }\n${BASE}`);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ConfigError);
  assert.equal(err.issues.length, 1);
  assert.match(err.message, /^gw\.yaml: admin\.token: the admin API listens on 0\.0\.0\.0, which is not loopback, so it needs a token/);
  assert.doesNotThrow(() => compile(`admin: { host: 0.0.0.0, token: a-token-of-sixteen-chars }\n${BASE}`));
  for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1']) assert.doesNotThrow(() => compile(`admin: { host: "${host}" }\n${BASE}`), host);
  // A short token is refused by the schema.
  assert.throws(() => compile(`admin: { host: 0.0.0.0, token: short }\n${BASE}`), /admin\.token/);
});

test('admin defaults: audit log on stderr, 10 versions kept, file watch on', () => {
  const c = loadConfigText(BASE, 'gw.yaml', {});
  assert.equal(c.admin.auditLog, 'stderr');
  assert.equal(c.admin.history, 10);
  assert.deepEqual(c.reload, { watch: true, debounceMs: 250 });
});

test('the flag region has the documented layout and maps switches by name', () => {
  const plan = compile(BASE, 7);
  const switches: AdminSwitches = { disabledRoutes: new Set(['two', 'gone']), drainedNodes: new Map([['a', new Set(['http://127.0.0.1:9002', 'http://10.0.0.1:1'])], ['zzz', new Set(['http://x:1'])]]) };
  const flags = AdminFlags.forPlan(plan, switches);
  const cells = new Int32Array(flags.buffer);
  assert.equal(cells.length, HEADER_SLOTS + 2 + 3);
  assert.equal(cells[PLAN_VERSION], 7);
  assert.equal(cells[ROUTE_COUNT], 2);
  assert.equal(cells[NODE_COUNT], 3);
  assert.deepEqual([...cells.slice(HEADER_SLOTS)], [0, FLAG_ON, 0, FLAG_ON, 0]);
  assert.equal(flags.routeDisabled(1), true);
  assert.equal(flags.nodeDrained(1), true);
  // Names the plan does not have are forgotten.
  assert.deepEqual([...switches.disabledRoutes], ['two']);
  assert.deepEqual([...switches.drainedNodes].map(([k, v]) => [k, [...v]]), [['a', ['http://127.0.0.1:9002']]]);
  const gen = flags.generation;
  flags.setRoute(0, true);
  assert.equal(flags.generation, gen + 1);
  assert.equal(cells[routeCell(0)], FLAG_ON);
});

test('a plan carries its region by structured clone as shared memory: a switch reaches every copy', () => {
  const plan = compile(BASE);
  const flags = AdminFlags.forPlan(plan, { disabledRoutes: new Set(), drainedNodes: new Map() });
  const copy = structuredClone({ ...plan, adminFlags: flags.buffer });
  const rt = new Runtime(copy, null, 0);
  assert.equal(Atomics.load(rt.flags, rt.routes[1].flagCell), 0);
  flags.setRoute(1, true);
  assert.equal(Atomics.load(rt.flags, rt.routes[1].flagCell), FLAG_ON);
  // node 1 of upstream a
  flags.setNode(1, true);
  for (let i = 0; i < 10; i++) assert.equal(rt.upstreams[0].cluster.pick(-1), 0);
  flags.setNode(1, false);
  assert.deepEqual(new Set(Array.from({ length: 10 }, () => rt.upstreams[0].cluster.pick(-1))), new Set([0, 1]));
});

test('a plan without a region gets a private one of the same layout', () => {
  const plan = compile(BASE);
  const cells = flagCells(plan);
  assert.equal(cells.length, HEADER_SLOTS + 5);
  assert.equal(nodeCellBase(cells, 2), HEADER_SLOTS + 2 + 2);
  const rt = new Runtime(plan, null, 0);
  assert.equal(rt.flags[ROUTE_COUNT], 2);
});


test('the admin error table in docs/errors.md matches ADMIN_ERRORS', () => {
  const docs = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
  const rows = [...docs.matchAll(/^\| `(NG_ERR_ADMIN_[A-Z_]+)` \| (\d+) \|/gm)].map((m) => [m[1], Number(m[2])]);
  assert.deepEqual(rows.sort(), Object.entries(ADMIN_ERRORS).map(([c, s]) => [c, s.status]).sort());
});

test('a token fingerprint names the token without revealing it', () => {
  const fp = tokenFingerprint('a-token-of-sixteen-chars');
  assert.match(fp, /^token:[0-9a-f]{16}$/);
  assert.equal(fp, tokenFingerprint('a-token-of-sixteen-chars'));
  assert.notEqual(fp, tokenFingerprint('a-token-of-sixteen-chart'));
});

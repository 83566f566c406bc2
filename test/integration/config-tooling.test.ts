import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startAdminGateway, admin, eventually, type AdminGateway } from '../helpers/admin.js';
import { startUpstream, closedPort, type TestUpstream } from '../helpers/upstream.js';
import { send } from '../helpers/http.js';
import { runCli, BIN, ROOT } from '../helpers/cli.js';

/**
 * nanogate diff, apply and dump against a real running gateway (its admin API on a loopback port), PUT
 * /config?dryRun=1 itself, and a config split over several files, from start to reload.
 */

const TOKEN = 'config-tooling-admin-token-0123';
let up: TestUpstream;
let gw: AdminGateway;
let dir: string;

const head = () => `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0, token: ${TOKEN} }
reload: { watch: false }
upstreams:
  users: { nodes: [{ url: "${up.url}" }] }
`;
const ROUTES = 'routes:\n  - { name: users, match: { prefix: /users }, upstream: users }\n  - { name: old, match: { prefix: /old }, upstream: users }\n';

/** runCli with the admin API of this gateway and its token (what the other tests then take away). */
const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(args, { env: { NANOGATE_ADMIN_URL: gw.adminUrl, NANOGATE_ADMIN_TOKEN: TOKEN, ...env }, timeoutMs: 30_000 });
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const runningVersion = async () => (await admin(gw.adminUrl, 'GET', '/config', { token: TOKEN })).body.version as number;

before(async () => {
  up = await startUpstream();
  dir = mkdtempSync(join(tmpdir(), 'nanogate-tooling-'));
  gw = await startAdminGateway(head() + ROUTES);
});

after(async () => {
  await gw?.stop();
  await up?.close();
});

test('diff of the running config says "no change" and exits 0', async () => {
  const r = await cli(['diff', file('same.yaml', head() + ROUTES)]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^no change: .*same\.yaml is what version 1 runs$/m);
});

test('diff lists what would change, exits 1, and applies nothing', async () => {
  const next = head() + 'limits: { maxBodyBytes: 1000 }\nroutes:\n  - { name: users, match: { prefix: /users, methods: [GET] }, upstream: users }\n  - { name: new, match: { prefix: /new }, upstream: users }\n';
  const r = await cli(['diff', file('next.yaml', next)]);
  assert.equal(r.code, 1, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n'), [
    '~ setting limits',
    '    ~ maxBodyBytes: 10485760 -> 1000',
    '~ route users',
    '    + match.methods: ["GET"]',
    '- route old (removed)',
    '+ route new (added)',
    '4 change(s) against version 1: 1 added, 1 removed, 2 changed',
  ]);
  assert.equal(await runningVersion(), 1);
  assert.equal((await send(gw.port, { path: '/old' })).status, 200, 'the dry run changed what is served');
  assert.equal((await send(gw.port, { path: '/new' })).status, 404);
});

test('a changed credential shows as changed, never with its value', async () => {
  const r = await cli(['diff', file('token.yaml', head().replace(TOKEN, 'another-admin-token-456789') + ROUTES)]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stdout, /^~ setting admin\n {4}~ token: \[redacted\] -> \[redacted\]$/m);
  assert.doesNotMatch(r.stdout, /another-admin-token|config-tooling-admin-token/);
});

test('diff of a config the gateway would refuse prints its errors (file: path: reason) and exits 3', async () => {
  const bad = file('bad.yaml', head() + 'routes:\n  - { name: a, match: { prefix: /a }, upstream: userz }\n');
  const r = await cli(['diff', bad]);
  assert.equal(r.code, 3, r.stdout);
  assert.ok(r.stderr.includes(`${bad}: routes[0].upstream: unknown upstream "userz" (did you mean "users"?)`), r.stderr);
  // also what only the running gateway can refuse: a port that cannot change while it runs
  const moved = await cli(['diff', file('moved.yaml', head().replace('port: 0, token', 'port: 1, token') + ROUTES)]);
  assert.equal(moved.code, 3);
  assert.match(moved.stderr, /moved\.yaml: admin\.port: cannot change while the gateway runs/);
});

test('an admin API that cannot be reached, or refuses the token, exits 4 with the reason', async () => {
  const f = file('any.yaml', head() + ROUTES);
  const closed = await cli(['diff', f, '--admin', `http://127.0.0.1:${await closedPort()}`]);
  assert.equal(closed.code, 4);
  assert.match(closed.stderr, /cannot reach the admin API at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
  const noToken = await cli(['diff', f], { NANOGATE_ADMIN_TOKEN: '' });
  assert.equal(noToken.code, 4);
  assert.match(noToken.stderr, /refused the request \(401\): it wants a token/);
  const wrong = await cli(['dump'], { NANOGATE_ADMIN_TOKEN: 'not-the-token-at-all' });
  assert.equal(wrong.code, 4);
  assert.match(wrong.stderr, /the token is not the one it expects/);
});

test('--token-file gives the token (its trailing line break dropped); an unreadable one is a usage error', async () => {
  const tokenFile = file('admin.token', `${TOKEN}\n`);
  const r = await cli(['dump', '--token-file', tokenFile, '--format', 'json'], { NANOGATE_ADMIN_TOKEN: '' });
  assert.equal(r.code, 0, r.stderr);
  const missing = await cli(['dump', '--token-file', join(dir, 'nope')], { NANOGATE_ADMIN_TOKEN: '' });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--token-file: cannot read ".*nope": ENOENT/);
});

test('dump prints the running config as YAML or JSON with credentials redacted; --version N a kept one', async () => {
  const y = await cli(['dump']);
  assert.equal(y.code, 0, y.stderr);
  assert.match(y.stdout, /^# nanogate config version \d+ \(running: \d+\)/);
  const config = parse(y.stdout);
  assert.equal(config.admin.token, '[redacted]');
  assert.deepEqual(config.routes.map((r: { name: string }) => r.name).slice(0, 2), ['users', 'old']);
  assert.doesNotMatch(y.stdout, new RegExp(TOKEN));
  const j = await cli(['dump', '--version', '1', '--format', 'json']);
  assert.equal(j.code, 0, j.stderr);
  assert.equal(JSON.parse(j.stdout).admin.token, '[redacted]');
  const gone = await cli(['dump', '--version', '99']);
  assert.equal(gone.code, 4);
  assert.match(gone.stderr, /NG_ERR_ADMIN_UNKNOWN_VERSION: version 99 is not kept/);
  const format = await cli(['dump', '--format', 'xml']);
  assert.equal(format.code, 2);
});

test('apply swaps the config in (exit 0); a refused one exits 1 and the previous keeps serving', async () => {
  const before = await runningVersion();
  const next = file('apply.yaml', head() + 'routes:\n  - { name: users, match: { prefix: /users }, upstream: users }\n  - { name: applied, match: { prefix: /applied }, upstream: users }\n');
  const r = await cli(['apply', next]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^applied: version ${before + 1} \\(was ${before}\\) from .*apply\\.yaml$`, 'm'));
  assert.equal((await send(gw.port, { path: '/applied' })).status, 200);
  const again = await cli(['diff', next]);
  assert.equal(again.code, 0, 'what was applied is what runs');

  const refused = await cli(['apply', file('refused.yaml', head() + 'routes:\n  - { name: x, match: { prefix: /x }, upstream: nowhere }\n')]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /refused\.yaml: routes\[0\]\.upstream: unknown upstream "nowhere"/);
  assert.equal(await runningVersion(), before + 1);
  assert.equal((await send(gw.port, { path: '/applied' })).status, 200);
});

test('diff and apply merge several files, and errors name the file they are in', async () => {
  const split = join(dir, 'split');
  mkdirSync(split);
  writeFileSync(join(split, '00-base.yaml'), head());
  writeFileSync(join(split, '10-routes.yaml'), 'routes:\n  - { name: users, match: { prefix: /users }, upstream: users }\n  - { name: split, match: { prefix: /split }, upstream: users }\n');
  const d = await cli(['diff', split]);
  assert.equal(d.code, 1, d.stderr);
  assert.match(d.stdout, /^\+ route split \(added\)$/m);
  const a = await cli(['apply', '--config', join(split, '00-base.yaml'), '--config', join(split, '10-routes.yaml')]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal((await send(gw.port, { path: '/split' })).status, 200);
  writeFileSync(join(split, '20-dup.yaml'), `upstreams:\n  users: { nodes: [{ url: "${up.url}" }] }\n`);
  const dup = await cli(['diff', split]);
  assert.equal(dup.code, 3);
  assert.ok(dup.stderr.includes(`${join(split, '20-dup.yaml')}: upstreams.users: upstream "users" is also defined in ${join(split, '00-base.yaml')}`), dup.stderr);
});

test('PUT /config?dryRun=1 answers the changes and applies nothing; its refusals are those of a real PUT', async () => {
  const v = await runningVersion();
  const text = head() + 'routes:\n  - { name: users, match: { prefix: /users }, upstream: users }\n';
  const dry = await admin(gw.adminUrl, 'PUT', '/config?dryRun=1', { token: TOKEN, body: text });
  assert.equal(dry.status, 200);
  assert.equal(dry.body.dryRun, true);
  assert.equal(dry.body.version, v);
  assert.equal(dry.body.changed, true);
  assert.ok(dry.body.changes.some((c: { kind: string; op: string }) => c.kind === 'route' && c.op === 'removed'));
  assert.equal(await runningVersion(), v);

  const bad = head() + 'routes:\n  - { name: a, match: { prefix: /a }, upstream: users, stripPrefx: true }\n';
  const dryBad = await admin(gw.adminUrl, 'PUT', '/config?dryRun=1', { token: TOKEN, body: bad });
  const realBad = await admin(gw.adminUrl, 'PUT', '/config', { token: TOKEN, body: bad });
  assert.equal(dryBad.status, 422);
  assert.equal(dryBad.body.code, 'NG_ERR_ADMIN_CONFIG_INVALID');
  assert.deepEqual(dryBad.body.errors, realBad.body.errors);
  assert.equal((await admin(gw.adminUrl, 'PUT', '/config?dryRun=maybe', { token: TOKEN, body: text })).status, 400);
  assert.equal((await admin(gw.adminUrl, 'PUT', '/config?dryRun=1', { token: null, body: text })).status, 401);
  assert.equal(await runningVersion(), v);
});

test('start --config DIR --config FILE merges them; SIGHUP and the file watch read every file again', async () => {
  const port = await closedPort();
  const adminPort = await closedPort();
  const conf = join(dir, 'conf.d');
  mkdirSync(conf);
  writeFileSync(join(conf, '00-base.yaml'), `listen: { host: 127.0.0.1, port: ${port} }\nadmin: { host: 127.0.0.1, port: ${adminPort} }\nreload: { watch: false }\nupstreams:\n  users: { nodes: [{ url: "${up.url}" }] }\n`);
  writeFileSync(join(conf, '10-a.yaml'), 'routes:\n  - { name: a, match: { prefix: /a }, upstream: users }\n');
  const extra = file('extra.yaml', 'routes:\n  - { name: extra, match: { prefix: /extra }, upstream: users }\n');
  const child = spawn(process.execPath, [BIN, 'start', '--config', conf, '--config', extra, '--workers', '1'], { cwd: ROOT, env: { ...process.env, NANOGATE_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const base = `http://127.0.0.1:${adminPort}`;
  const routes = async () => ((await admin(base, 'GET', '/routes')).body.routes as { name: string }[]).map((r) => r.name);
  try {
    assert.ok(await eventually(() => log.includes('nanogate is serving'), 20_000), log);
    assert.deepEqual(await routes(), ['a', 'extra']);
    assert.equal((await send(port, { path: '/extra' })).status, 200);

    // a new file in the directory, read on SIGHUP
    writeFileSync(join(conf, '20-b.yaml'), 'routes:\n  - { name: b, match: { prefix: /b }, upstream: users }\n');
    child.kill('SIGHUP');
    assert.ok(await eventually(async () => (await routes()).includes('b'), 10_000), log);
    assert.deepEqual(await routes(), ['a', 'b', 'extra']);

    // a broken second file is refused naming it; the merged config keeps serving
    writeFileSync(extra, 'routes:\n  - { name: extra, match: { prefix: /extra }, upstream: nowhere }\n');
    child.kill('SIGHUP');
    assert.ok(await eventually(() => log.includes('reload refused'), 10_000), log);
    assert.match(log, /extra\.yaml: routes\[0\]\.upstream: unknown upstream \\"nowhere\\"/);
    assert.equal((await send(port, { path: '/b' })).status, 200);

    // the file watch, switched on by a reload, follows a file added to the directory
    writeFileSync(extra, 'routes:\n  - { name: extra, match: { prefix: /extra }, upstream: users }\n');
    writeFileSync(join(conf, '00-base.yaml'), `listen: { host: 127.0.0.1, port: ${port} }\nadmin: { host: 127.0.0.1, port: ${adminPort} }\nreload: { watch: true, debounceMs: 50 }\nupstreams:\n  users: { nodes: [{ url: "${up.url}" }] }\n`);
    child.kill('SIGHUP');
    assert.ok(await eventually(async () => (await admin(base, 'GET', '/config')).body.config.reload.watch === true, 10_000), log);
    writeFileSync(join(conf, '30-c.yaml'), 'routes:\n  - { name: c, match: { prefix: /c }, upstream: users }\n');
    assert.ok(await eventually(async () => (await routes()).includes('c'), 10_000), 'the file watch did not pick up a new file in the directory');
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
  }
});

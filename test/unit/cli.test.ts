import { test, before } from 'node:test';
import { closedPort } from '../helpers/upstream.js';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';

/**
 * The command line as a user runs it: `node bin/nanogate.js ...` in a child process, asserting exit codes and what
 * is printed. `validate` and `start` share one compile path, so a file validate refuses must also stop start.
 */

let dir: string;
let good: string;
let bad: string;
let shadowed: string;
let badJson: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'nanogate-cli-'));
  const upstreams = 'upstreams:\n  users: { nodes: [{ url: "http://127.0.0.1:9001" }] }\n';
  good = join(dir, 'good.yaml');
  writeFileSync(good, `listen: { host: 127.0.0.1, port: 0 }\nadmin: { host: 127.0.0.1, port: 0 }\n${upstreams}routes:\n  - { name: a, match: { prefix: /a }, upstream: users }\n`);
  bad = join(dir, 'bad.yaml');
  writeFileSync(
    bad,
    `${upstreams}routes:\n  - { name: a, match: { path: /a }, upstream: users }\n  - { name: b, match: { path: /b }, upstream: userz }\n  - { name: c, match: { path: /c/:x }, upstream: users, rewrite: /d/:y }\n`,
  );
  shadowed = join(dir, 'shadowed.yaml');
  writeFileSync(
    shadowed,
    `${upstreams}routes:\n  - { name: all, match: { path: /x }, upstream: users, priority: 1 }\n  - { name: get-x, match: { path: /x, methods: [GET] }, upstream: users }\n`,
  );
  badJson = join(dir, 'bad.json');
  writeFileSync(badJson, JSON.stringify({ upstreams: { users: { nodes: [{ url: 'http://127.0.0.1:9001' }] } }, routes: [], listne: {} }));
});

test('nanogate --help lists the commands and exits 0', async () => {
  const r = await runCli(['--help']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Usage: nanogate <command>/);
  for (const cmd of ['start', 'validate']) assert.match(r.stdout, new RegExp(`^\\s+${cmd}\\s`, 'm'));
});

test('nanogate start --help and validate --help describe their options and exit 0', async () => {
  const start = await runCli(['start', '--help']);
  assert.equal(start.code, 0, start.stderr);
  assert.match(start.stdout, /Usage: nanogate start/);
  assert.match(start.stdout, /--config PATH/);
  assert.match(start.stdout, /--workers N/);
  const validate = await runCli(['validate', '--help']);
  assert.equal(validate.code, 0, validate.stderr);
  assert.match(validate.stdout, /Usage: nanogate validate FILE/);
  assert.match(validate.stdout, /--strict/);
});

test('nanogate validate exits 0 on a good file and says what it found', async () => {
  const r = await runCli(['validate', good]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), `${good}: ok (1 routes, 1 upstreams)`);
  assert.equal(r.stderr, '');
});

test('nanogate validate prints every error as FILE: path: reason and exits 1', async () => {
  const r = await runCli(['validate', bad]);
  assert.equal(r.code, 1);
  const lines = r.stderr.trim().split('\n');
  assert.deepEqual(lines.sort(), [
    `${bad}: routes[1].upstream: unknown upstream "userz" (did you mean "users"?)`,
    `${bad}: routes[2].rewrite: ":y" is not a param of the match (params: x)`,
  ]);
});

test('nanogate validate reports schema errors in a JSON file', async () => {
  const r = await runCli(['validate', badJson]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`^${badJson.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: listne: unknown key "listne" \\(did you mean "listen"\\?\\)$`, 'm'));
});

test('nanogate validate prints warnings and exits 0; with --strict a warning fails it', async () => {
  const lax = await runCli(['validate', shadowed]);
  assert.equal(lax.code, 0, lax.stderr);
  assert.match(lax.stdout, /^warning: .*shadowed\.yaml: routes\[1\]: route "get-x" can never match: routes\[0\] \("all"\) takes every request it would$/m);
  const strict = await runCli(['validate', '--strict', shadowed]);
  assert.equal(strict.code, 1);
  assert.match(strict.stdout, /can never match/);
});

test('nanogate start --config BAD refuses to start, prints the errors and exits non-zero', async () => {
  const r = await runCli(['start', '--config', bad], { timeoutMs: 20_000 });
  assert.equal(r.timedOut, false, 'start kept running with a bad config');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /routes\[1\]\.upstream: unknown upstream "userz"/);
  assert.match(r.stderr, /not starting/);
});

test('nanogate start --config with a missing file refuses to start', async () => {
  const r = await runCli(['start', '--config', join(dir, 'missing.yaml')], { timeoutMs: 20_000 });
  assert.equal(r.timedOut, false);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /missing\.yaml: cannot read the file: ENOENT/);
});


// ------------------------------------------------------------------------------------------------ CLI hygiene

const COMMANDS = ['start', 'validate', 'diff', 'apply', 'dump', 'status', 'schema'];

test('nanogate help CMD and CMD --help print the same page for every command, and exit 0', async () => {
  for (const cmd of COMMANDS) {
    const help = await runCli(['help', cmd]);
    assert.equal(help.code, 0, `${cmd}: ${help.stderr}`);
    assert.match(help.stdout, new RegExp(`^Usage: nanogate ${cmd}\\b`), cmd);
    const flag = await runCli([cmd, '--help']);
    assert.equal(flag.code, 0, cmd);
    assert.equal(flag.stdout, help.stdout, `${cmd} --help`);
  }
  const bench = await runCli(['help', 'bench']);
  assert.equal(bench.code, 0);
  assert.match(bench.stdout, /^Usage: nanogate bench/);
  const main = await runCli(['help']);
  for (const cmd of COMMANDS) assert.match(main.stdout, new RegExp(`^\\s+${cmd}\\s`, 'm'), `${cmd} missing from the command list`);
});

test('an unknown option is refused by every command with exit 2, naming it and the options there are', async () => {
  for (const cmd of COMMANDS) {
    const r = await runCli([cmd, '--no-such-flag']);
    assert.equal(r.code, 2, `${cmd}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^nanogate ${cmd}: unknown option "--no-such-flag"`, 'm'), cmd);
    assert.match(r.stderr, new RegExp(`Run nanogate help ${cmd} for its options`), cmd);
  }
});

test('a misspelt option gets a did-you-mean from that command\'s own options', async () => {
  for (const [args, meant] of [
    [['start', '--confg', 'x.yaml'], '--config'],
    [['validate', '--strikt', 'x.yaml'], '--strict'],
    [['diff', 'x.yaml', '--tokenfile', 't'], '--token-file'],
    [['apply', 'x.yaml', '--admn', 'http://127.0.0.1:1'], '--admin'],
    [['dump', '--formt', 'json'], '--format'],
  ] as const) {
    const r = await runCli([...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.ok(r.stderr.includes(`(did you mean "${meant}"?)`), `${args.join(' ')}: ${r.stderr}`);
  }
});

test('usage errors exit 2: an unknown command (with a did-you-mean), no command, a missing argument, a bad value', async () => {
  const unknown = await runCli(['valdate', 'x.yaml']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "valdate" \(did you mean "validate"\?\)/);
  assert.equal((await runCli([])).code, 2);
  assert.equal((await runCli(['help', 'nope'])).code, 2);
  const noFile = await runCli(['validate']);
  assert.equal(noFile.code, 2);
  assert.match(noFile.stderr, /name a config file/);
  for (const cmd of ['diff', 'apply']) assert.equal((await runCli([cmd])).code, 2, `${cmd} without a config`);
  assert.equal((await runCli(['start', '--workers', 'many'])).code, 2);
  assert.equal((await runCli(['start', '--config'])).code, 2, 'an option without its value');
  assert.equal((await runCli(['schema', 'extra'])).code, 2, 'a stray argument');
  assert.equal((await runCli(['dump', '--admin', 'ftp://127.0.0.1:9901'])).code, 2);
});

test('config errors exit 1, distinct from usage errors', async () => {
  const r = await runCli(['validate', '--config', good, '--config', bad]);
  assert.equal(r.code, 1);
  assert.ok(r.stderr.includes(`${bad}: routes[1].upstream: unknown upstream "userz" (did you mean "users"?)`), r.stderr);
  assert.match(r.stderr, /upstream "users" is also defined in .*good\.yaml/);
});

test('status: --cluster against an admin API that does not answer exits 4; start refuses a check interval under 100 ms', async () => {
  const port = await closedPort();
  const r = await runCli(['status', '--cluster', '--admin', `http://127.0.0.1:${port}`]);
  assert.equal(r.code, 4);
  assert.match(r.stderr, /nanogate status: cannot reach the admin API at http:\/\/127\.0\.0\.1:\d+/);
  const check = await runCli(['start', '--etcd', 'http://127.0.0.1:2379', '--etcd-check-ms', '50']);
  assert.equal(check.code, 2);
  assert.match(check.stderr, /--etcd-check-ms takes milliseconds, 100 or more, not "50"/);
});

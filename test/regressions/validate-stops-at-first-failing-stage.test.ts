import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { loadConfigText } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/errors.js';

/**
 * `nanogate validate` stopped at the first stage that failed: schema errors hid unknown upstreams, which hid routes
 * that match the same requests, so a file took one run per stage to fix. Each stage now checks what the one before
 * let through, and one run lists them all, each as `file: path: reason`, without knock-on errors (a route naming an
 * upstream the schema refused is not told that it is unknown; a value from an unset variable is not also a schema
 * error).
 */

let dir: string;
let file: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'nanogate-staged-'));
  file = join(dir, 'gw.yaml');
  writeFileSync(
    file,
    `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
upstreams:
  users: { nodes: [{ url: "http://127.0.0.1:9001" }] }
  broken: { nodes: [{ url: "http://127.0.0.1:9002", wieght: 1 }] }
routes:
  - { name: typo, match: { prefix: /typo }, upstream: users, stripPrefx: true }
  - { name: lost, match: { prefix: /lost }, upstream: userz }
  - { name: first, match: { path: /same }, upstream: users }
  - { name: second, match: { path: /same }, upstream: users }
  - { name: uses-broken, match: { prefix: /broken }, upstream: broken }
  - { name: from-env, match: { prefix: /env }, upstream: users, maxBodyBytes: \${NANOGATE_TEST_UNSET_LIMIT} }
`,
  );
});

test('one validate run reports schema, upstream and overlap errors together, each in file: path: reason form', async () => {
  const r = await runCli(['validate', file], { env: { NANOGATE_TEST_UNSET_LIMIT: '' } });
  assert.equal(r.code, 1, r.stdout);
  const lines = r.stderr.trim().split('\n');
  const expect = [
    /gw\.yaml: line 12: environment variable NANOGATE_TEST_UNSET_LIMIT is not set/,
    /gw\.yaml: upstreams\.broken\.nodes\[0\]\.wieght: unknown key "wieght" \(did you mean "weight"\?\)/,
    /gw\.yaml: routes\[0\]\.stripPrefx: unknown key "stripPrefx" \(did you mean "stripPrefix"\?\)/,
    /gw\.yaml: routes\[1\]\.upstream: unknown upstream "userz"/,
    /gw\.yaml: routes\[3\]: route "second" matches the same requests as routes\[2\] \("first"\)/,
  ];
  for (const re of expect) assert.ok(lines.some((l) => re.test(l)), `missing ${re} in:\n${r.stderr}`);
  for (const line of lines) assert.match(line, /gw\.yaml: /, 'every line names the file');
  assert.doesNotMatch(r.stderr, /unknown upstream "broken"/, 'the upstream exists; only its schema failed');
  assert.doesNotMatch(r.stderr, /maxBodyBytes/, 'the unset variable is reported once, not again as a schema error');
  assert.equal(lines.length, expect.length, `exactly the expected errors:\n${r.stderr}`);
});

test('a file whose only problem is two overlapping routes still reports them (the stage is reached)', async () => {
  const only = join(dir, 'overlap.yaml');
  writeFileSync(
    only,
    `upstreams:\n  users: { nodes: [{ url: "http://127.0.0.1:9001" }] }\nroutes:\n  - { name: a, match: { path: /x }, upstream: users, bogus: 1 }\n  - { name: b, match: { path: /y }, upstream: users }\n  - { name: c, match: { path: /y }, upstream: users }\n`,
  );
  const r = await runCli(['validate', only]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /overlap\.yaml: routes\[0\]\.bogus: unknown key "bogus"/);
  assert.match(r.stderr, /overlap\.yaml: routes\[2\]: route "c" matches the same requests as routes\[1\] \("b"\)/);
});

test('start, reload and PUT /config get the same complete list: loadConfigText throws every problem at once', () => {
  const text = `upstreams:\n  users: { nodes: [{ url: "http://127.0.0.1:9001" }] }\nroutes:\n  - { name: a, match: { path: /x }, upstream: users, bogus: 1 }\n  - { name: b, match: { path: /y }, upstream: userz }\n  - { name: c, match: { path: /z }, upstream: users }\n  - { name: d, match: { path: /z }, upstream: users }\n`;
  assert.throws(
    () => loadConfigText(text, 'gw.yaml', {}),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.deepEqual(
        err.issues.map((i) => i.path),
        ['routes[0].bogus', 'routes[1].upstream', 'routes[3]'],
      );
      return true;
    },
  );
});

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigFiles, loadSources, locateIssues } from '../../src/config/load.js';
import { compileConfig } from '../../src/config/compile.js';
import { ConfigError } from '../../src/config/errors.js';
import { expandConfigPaths } from '../../src/config/sources.js';

/**
 * A config split over several files (src/config/sources.ts): lists concatenate, maps merge by key, other top-level
 * settings are set once (or the same everywhere), and every problem names the file and its own place in it.
 */

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  assert.fail('expected a ConfigError');
}

const lines = (err: ConfigError) => err.message.split('\n');
const base = { file: 'base.yaml', text: 'listen: { host: 127.0.0.1, port: 0 }\nupstreams:\n  users: { nodes: [{ url: "http://127.0.0.1:9001" }] }\nroutes:\n  - { name: a, match: { path: /a }, upstream: users }\n' };

test('routes and consumers concatenate in file order; upstreams and policies merge by key', () => {
  const { config, label } = loadSources(
    [
      base,
      { file: 'more.yaml', text: 'upstreams:\n  orders: { nodes: [{ url: "http://127.0.0.1:9002" }] }\nroutes:\n  - { name: b, match: { path: /b }, upstream: orders }\npolicies:\n  headers: { response: { set: { x-a: "1" } } }\n' },
    ],
    {},
  );
  assert.deepEqual(config.routes.map((r) => r.name), ['a', 'b']);
  assert.deepEqual(Object.keys(config.upstreams), ['users', 'orders']);
  assert.ok(config.policies?.headers);
  assert.equal(config.listen.port, 0);
  assert.equal(label, 'base.yaml, more.yaml');
});

test('an upstream defined in two files is an error naming both', () => {
  const err = configError(() => loadSources([base, { file: 'dup.yaml', text: 'upstreams:\n  users: { nodes: [{ url: "http://127.0.0.1:9009" }] }\n' }], {}));
  assert.deepEqual(lines(err), ['dup.yaml: upstreams.users: upstream "users" is also defined in base.yaml (define each one in one file only)']);
});

test('a top-level setting in two files is an error unless it is the same in both', () => {
  const same = loadSources([base, { file: 'same.yaml', text: 'listen: { host: 127.0.0.1, port: 0 }\n' }], {});
  assert.equal(same.config.listen.host, '127.0.0.1');
  const err = configError(() => loadSources([base, { file: 'other.yaml', text: 'listen: { host: 127.0.0.1, port: 8080 }\n' }], {}));
  assert.deepEqual(lines(err), ['other.yaml: listen: is also set in base.yaml, differently (a top-level setting is set in one file only, or the same in each)']);
});

test('schema and compile errors name the file and the route index in that file', () => {
  const second = {
    file: 'routes.yaml',
    text: 'routes:\n  - { name: ok, match: { path: /ok }, upstream: users }\n  - { name: typo, match: { path: /t }, upstream: users, stripPrefx: true }\n  - { name: lost, match: { path: /l }, upstream: userz }\n  - { name: same, match: { path: /a }, upstream: users }\n',
  };
  const err = configError(() => loadSources([base, second], {}));
  const got = lines(err);
  assert.ok(got.includes('routes.yaml: routes[1].stripPrefx: unknown key "stripPrefx" (did you mean "stripPrefix"?)'), got.join('\n'));
  assert.ok(got.includes('routes.yaml: routes[2].upstream: unknown upstream "userz" (did you mean "users"?)'), got.join('\n'));
  // the overlap is between routes of two files: the message names the other one's file
  assert.ok(got.some((l) => l.startsWith('routes.yaml: routes[3]: route "same" matches the same requests as base.yaml: routes[0] ("a")')), got.join('\n'));
});

test('an unset variable in the second file is reported with that file and its line', () => {
  const err = configError(() => loadSources([base, { file: 'env.yaml', text: 'limits:\n  maxBodyBytes: ${NG_UNSET_LIMIT}\n' }], {}));
  assert.deepEqual(lines(err), ['env.yaml: line 2: environment variable NG_UNSET_LIMIT is not set (set it or write ${NG_UNSET_LIMIT:-default})']);
});

test('a problem compileConfig finds in a valid merged config is located too (locateIssues)', () => {
  const dup = { file: 'dup-route.yaml', text: 'routes:\n  - { name: a, match: { path: /other }, upstream: users }\n' };
  const loaded = loadSources([base, { file: 'fine.yaml', text: 'limits: { maxBodyBytes: 5 }\n' }], {});
  assert.doesNotThrow(() => compileConfig(loaded.config, loaded.label));
  const merged = loadSources([base, dup], {});
  const err = configError(() => {
    try {
      compileConfig(merged.config, merged.label);
    } catch (e) {
      throw locateIssues(e, merged.origins);
    }
  });
  assert.match(err.message, /^dup-route\.yaml: routes\[0\]\.name: duplicate route name "a" \(also base\.yaml: routes\[0\]\)$/m);
});

test('a directory stands for its *.yaml, *.yml and *.json files, by name; an empty one is an error', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nanogate-sources-'));
  writeFileSync(join(dir, '20-routes.yml'), 'routes:\n  - { name: b, match: { path: /b }, upstream: users }\n');
  writeFileSync(join(dir, '10-base.yaml'), base.text);
  writeFileSync(join(dir, '30-more.json'), JSON.stringify({ routes: [{ name: 'c', match: { path: '/c' }, upstream: 'users' }] }));
  writeFileSync(join(dir, 'notes.txt'), 'not a config');
  writeFileSync(join(dir, '.hidden.yaml'), 'editor: swap file');
  assert.deepEqual(expandConfigPaths([dir]).map((f) => f.slice(dir.length + 1)), ['10-base.yaml', '20-routes.yml', '30-more.json']);
  assert.deepEqual(loadConfigFiles([dir]).config.routes.map((r) => r.name), ['a', 'b', 'c']);
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  assert.deepEqual(lines(configError(() => loadConfigFiles([empty]))), [`${empty}: the directory holds no *.yaml, *.yml or *.json file`]);
  assert.match(configError(() => loadConfigFiles([join(dir, '10-base.yaml'), join(dir, 'gone.yaml')])).message, /gone\.yaml: cannot read the file: ENOENT/);
});

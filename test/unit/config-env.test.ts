import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText, loadSources } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/errors.js';

/**
 * ${VAR}, ${VAR:-default} and ${file:PATH} are resolved in the parsed values (src/config/env.ts). The values below
 * broke the file when they were pasted into its text: a ` #` started a comment, a quote ended the quoting, a
 * newline added keys of its own. Now each arrives as it was set, and only a plain, lone reference is typed.
 */

const UPSTREAMS = 'upstreams:\n  users: { nodes: [{ url: "http://127.0.0.1:9001" }] }\n';
const TOKEN_LINE = (ref: string) => `admin: { host: 127.0.0.1, token: ${ref} }\n${UPSTREAMS}`;

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  assert.fail('expected a ConfigError');
}

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'nanogate-env-'));
});

for (const [why, value] of [
  ['a " #" that YAML would read as a comment', 'first-half-of-it #second-half-of-it'],
  ['a double quote', 'has-"quotes"-inside-0123'],
  ['a single quote', "it's-a-long-enough-token"],
  ['braces and a colon, which would make a mapping', '{ token: x, host: 0.0.0.0 }-0123'],
] as const) {
  test(`a variable holding ${why} is taken as the characters it holds, quoted or not`, () => {
    for (const ref of ['${NG_TOKEN}', '"${NG_TOKEN}"', "'${NG_TOKEN}'"]) {
      const config = loadConfigText(TOKEN_LINE(ref), 'gw.yaml', { NG_TOKEN: value });
      assert.equal(config.admin.token, value, `written as ${ref}`);
      assert.equal(config.admin.host, '127.0.0.1');
    }
  });
}

test('a variable holding a newline and a key cannot add that key to the config', () => {
  const value = 'abcdefghijklmnop\nlisten: { host: 0.0.0.0, port: 1 }';
  const config = loadConfigText(`admin: { token: "\${NG_TOKEN}" }\nlisten: { host: 127.0.0.1, port: 8080 }\n${UPSTREAMS}`, 'gw.yaml', { NG_TOKEN: value });
  assert.equal(config.admin.token, value);
  assert.deepEqual([config.listen.host, config.listen.port], ['127.0.0.1', 8080]);
  // in block style, where the old text substitution made the second line a top-level key
  const block = loadConfigText(`listen:\n  host: 127.0.0.1\n  port: 8080\nadmin:\n  token: \${NG_TOKEN}\n${UPSTREAMS}`, 'gw.yaml', { NG_TOKEN: value });
  assert.equal(block.admin.token, value);
  assert.equal(block.listen.host, '127.0.0.1');
});

test('a plain lone reference reads as a number or boolean; quoted, or inside other text, it stays a string', () => {
  const text = `listen: { port: \${NG_PORT:-8080}, reusePort: \${NG_REUSE:-false} }\nproxy: { via: \${NG_VIA} }\nadmin: { token: "\${NG_NUMERIC}" }\n${UPSTREAMS}`;
  const config = loadConfigText(text, 'gw.yaml', { NG_REUSE: 'true', NG_VIA: 'edge', NG_NUMERIC: '12345678901234567890' });
  assert.equal(config.listen.port, 8080);
  assert.equal(config.listen.reusePort, true);
  assert.equal(config.admin.token, '12345678901234567890', 'quoted: a string, even when it reads as a number');
  // a plain lone reference to "1.5" is the number 1.5, which a string field refuses, with its path
  const err = configError(() => loadConfigText(text, 'gw.yaml', { NG_VIA: '1.5', NG_NUMERIC: '12345678901234567890' }));
  assert.match(err.message, /gw\.yaml: proxy\.via: must be string/);
  const inText = loadConfigText(`upstreams:\n  users: { nodes: [{ url: http://127.0.0.1:\${NG_PORT} }] }\n`, 'gw.yaml', { NG_PORT: '9001' });
  assert.equal(inText.upstreams.users.nodes[0].url, 'http://127.0.0.1:9001');
});

test('a reference in a flow mapping, where YAML alone cannot parse ${...}, works and keeps columns of later errors', () => {
  const config = loadConfigText(`admin: { host: 127.0.0.1, port: \${ADMIN_PORT:-9911} }\n${UPSTREAMS}`, 'gw.yaml', {});
  assert.equal(config.admin.port, 9911);
  const err = configError(() => loadConfigText('listen: { port: ${P:-1}, host: [ }\n', 'gw.yaml', {}));
  assert.match(err.message, /gw\.yaml: line 1, column \d+: /);
});

test('$${ is a literal ${, and an unknown reference form is an error naming its line', () => {
  const config = loadConfigText(`proxy: { via: "a$\${B}c" }\n${UPSTREAMS}`, 'gw.yaml', {});
  assert.equal(config.proxy.via, 'a${B}c');
  const err = configError(() => loadConfigText(`workers: 1\nproxy: { via: "\${not a name}" }\n${UPSTREAMS}`, 'gw.yaml', {}));
  assert.match(err.message, /gw\.yaml: line 2: "\$\{not a name\}" is not a reference nanogate knows/);
});

test('references to the request (${params.id}, ${header.x-user}, ${route}) stay as written, for the fields that template them', () => {
  const config = loadConfigText(`proxy: { via: "\${params.id}/\${header.x-user}/\${consumer.id}/\${route}" }\n${UPSTREAMS}`, 'gw.yaml', { route: 'from-env' });
  assert.equal(config.proxy.via, '${params.id}/${header.x-user}/${consumer.id}/${route}');
  // a dotted name outside the request's namespaces is still an error, not a silent literal
  const err = configError(() => loadConfigText(`proxy: { via: "\${secrets.token}" }\n${UPSTREAMS}`, 'gw.yaml', {}));
  assert.match(err.message, /"\$\{secrets\.token\}" is not a reference nanogate knows/);
});

test('${file:PATH} reads the file without its trailing line break; a relative path is read beside the config', () => {
  writeFileSync(join(dir, 'token'), 'token-from-a-file-0123\n');
  writeFileSync(join(dir, 'crlf'), 'windows-line-ending-0123\r\n');
  const abs = loadConfigText(TOKEN_LINE(`\${file:${join(dir, 'token')}}`), join(dir, 'gw.yaml'), {});
  assert.equal(abs.admin.token, 'token-from-a-file-0123');
  const rel = loadSources([{ file: join(dir, 'gw.yaml'), text: TOKEN_LINE('"${file:crlf}"') }], {}).config;
  assert.equal(rel.admin.token, 'windows-line-ending-0123');
});

test('an unreadable ${file:PATH} is a config error naming the file, the path in the config and the reason, not the content', () => {
  const missing = join(dir, 'no-such-secret');
  const err = configError(() => loadConfigText(TOKEN_LINE(`\${file:${missing}}`), 'gw.yaml', {}));
  assert.deepEqual(err.message.split('\n'), [`gw.yaml: admin.token: cannot read the file "${missing}" of \${file:...}: ENOENT`]);
  if (process.getuid?.() !== 0) {
    const locked = join(dir, 'locked');
    writeFileSync(locked, 'the-secret-itself-0123');
    chmodSync(locked, 0o000);
    const denied = configError(() => loadConfigText(TOKEN_LINE(`\${file:${locked}}`), 'gw.yaml', {}));
    assert.match(denied.message, /EACCES/);
    assert.doesNotMatch(denied.message, /the-secret-itself/);
  }
  const isDir = configError(() => loadConfigText(TOKEN_LINE(`\${file:${dir}}`), 'gw.yaml', {}));
  assert.match(isDir.message, /admin\.token: cannot read the file .*: EISDIR/);
});

test('an unset variable is reported once with its line, and its value is not reported again by the schema', () => {
  const err = configError(() => loadConfigText(`listen:\n  port: \${NG_UNSET_PORT}\n${UPSTREAMS}`, 'gw.yaml', {}));
  assert.deepEqual(err.message.split('\n'), ['gw.yaml: line 2: environment variable NG_UNSET_PORT is not set (set it or write ${NG_UNSET_PORT:-default})']);
});

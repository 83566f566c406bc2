import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Strings of a loaded config are one byte per character when they fit in Latin-1, also when the text had to be
 * two-byte (a `${VAR}` reference is resolved through private-use placeholders, a comment may hold an arrow): two-byte
 * route names and header values made every access-log batch a two-byte string to flatten and encode (about 5 % of the
 * worker's CPU with the standard policy set). V8 tells a string's representation only through %DebugPrint, whose
 * short form starts a two-byte string's text with u", so the check runs in a child process with natives syntax.
 */

const load = new URL('../../src/config/load.js', import.meta.url).href;
const CONFIG = `# a comment with an arrow → and a dash —
upstreams:
  app: { nodes: [{ url: "http://127.0.0.1:\${PORT}" }] }
routes:
  - name: all
    match: { prefix: / }
    upstream: app
    policies:
      headers: { request: { set: { x-team: payments } } }
`;

function representations(script: string): string[] {
  const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, PORT: '9001' } });
  assert.equal(r.status, 0, r.stderr);
  // one "DebugPrint: 0x…: [String]…: <text>" line per string printed
  return r.stdout.split('\n').filter((l) => l.startsWith('DebugPrint:')).map((l) => (/\]: (u?)c?"/.exec(l)?.[1] === 'u' ? 'two-byte' : 'one-byte'));
}

test('a loaded config\'s strings are one-byte even when its text was two-byte', () => {
  const text = JSON.stringify(CONFIG);
  const got = representations(`import { loadConfigText } from ${JSON.stringify(load)};
const c = loadConfigText(${text}, 'gw.yaml', process.env);
%DebugPrint(c.routes[0].name);
%DebugPrint(c.upstreams.app.nodes[0].url);
%DebugPrint(Object.keys(c.upstreams)[0]);
%DebugPrint(c.routes[0].policies.headers.request.set['x-team']);`);
  assert.deepEqual(got, ['one-byte', 'one-byte', 'one-byte', 'one-byte']);
});

test('the check above can fail: a slice of a two-byte text is two-byte', () => {
  const got = representations(`const t = ${JSON.stringify('all → ')} + Math.random(); %DebugPrint(t.slice(0, 3) + t.slice(0, 3).repeat(4));`);
  assert.deepEqual(got, ['two-byte']);
});

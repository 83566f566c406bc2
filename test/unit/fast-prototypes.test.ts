import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The builtin prototypes stay in V8's fast mode in both threads once all their modules are loaded. A dictionary-mode
 * String.prototype (ioredis defines `class VerbatimString extends String`) made every string method call in the worker
 * a generic property load: about 1-2 µs a request on the pass-through (src/shared/fast-prototypes.ts). V8's
 * %HasFastProperties needs --allow-natives-syntax, so the check runs in a child process.
 */

const dist = fileURLToPath(new URL('../../src/', import.meta.url));
const PROTOTYPES = ['String', 'Number', 'Boolean', 'Object', 'Array', 'Function', 'RegExp', 'Map', 'Set', 'Promise', 'Uint8Array', 'Buffer'];

/** The relative imports of a built module, as the worker or the control plane loads them. */
function importsOf(file: string): string[] {
  const text = readFileSync(dist + file, 'utf8');
  return [...text.matchAll(/^import [^;]*? from '([^']+)';$/gm)].map((m) => m[1]).filter((s) => !s.startsWith('node:'));
}

function slowPrototypes(script: string): string[] {
  const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], { encoding: 'utf8', cwd: dist, timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as string[];
}

const CHECK = `console.log(JSON.stringify(${JSON.stringify(PROTOTYPES)}.filter((n) => !%HasFastProperties(globalThis[n].prototype))));`;

test('a worker thread\'s modules leave the builtin prototypes fast once keepBuiltinPrototypesFast has run', () => {
  const specifiers = importsOf('worker/worker.js').map((s) => (s.startsWith('.') ? new URL(s, 'file://' + dist + 'worker/').href : s));
  assert.ok(specifiers.some((s) => s.includes('fast-prototypes')), 'worker.js imports fast-prototypes.js');
  // the worker calls it in its module body, that is after every import above has been evaluated
  assert.match(readFileSync(dist + 'worker/worker.js', 'utf8'), /^keepBuiltinPrototypesFast\(\);$/m);
  const script = `${specifiers.map((s, i) => `import * as m${i} from ${JSON.stringify(s)};`).join('\n')}
import 'ioredis';
import { keepBuiltinPrototypesFast } from ${JSON.stringify('file://' + dist + 'shared/fast-prototypes.js')};
keepBuiltinPrototypesFast();
${CHECK}`;
  assert.deepEqual(slowPrototypes(script), []);
});

test('the control plane leaves them fast too (gateway.js runs it when it loads)', () => {
  assert.deepEqual(slowPrototypes(`import ${JSON.stringify('file://' + dist + 'control/gateway.js')};\n${CHECK}`), []);
});

test('keepBuiltinPrototypesFast brings back prototypes that subclassing made slow', () => {
  const script = `import { keepBuiltinPrototypesFast } from ${JSON.stringify('file://' + dist + 'shared/fast-prototypes.js')};
class A extends String {} class B extends Number {} class C extends Boolean {}
const before = ['String', 'Number', 'Boolean'].filter((n) => !%HasFastProperties(globalThis[n].prototype));
if (before.length === 0) throw new Error('this V8 keeps subclassed prototypes fast: the check below proves nothing');
keepBuiltinPrototypesFast();
${CHECK}`;
  assert.deepEqual(slowPrototypes(script), []);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/cli.js';
import { compileValidator, generatedValidator } from '../../src/config/validator.js';
import { parseText } from '../../src/config/load.js';
import type { ErrorObject } from 'ajv';

// The prebuilt config validator (Ajv standalone code made by npm run build) against one compiled now from the
// same schema: same verdicts, same errors, same defaults filled in.

const generated = generatedValidator();
const compiled = compileValidator();

test('the build made a validator from the current schema', () => {
  assert.ok(generated, 'dist/src/config/validator.generated.cjs exists and its schema digest matches');
});

const examples = readdirSync(join(ROOT, 'config', 'examples'))
  .filter((f) => /\.ya?ml$/.test(f))
  .map((f) => join(ROOT, 'config', 'examples', f));
const bad = [
  'listen: { port: 99999 }',
  'workers: many',
  'listne: {}',
  'routes: [{ name: "a b", match: { prefix: x }, upstream: u }]',
  'upstreams: { u: { nodes: [] } }\nroutes: [{ name: r, match: { prefix: / }, upstream: u, policies: { nope: {} } }]',
  'listen: { reusePort: yes please }',
  'admin: { token: short }',
];

test('generated and compiled validators agree on examples and on broken configs', () => {
  const texts = [...examples.map((f) => readFileSync(f, 'utf8').replace(/\$\{[^}]*\}/g, 'x')), ...bad];
  for (const text of texts) {
    const a = parseText(text, []);
    const b = structuredClone(a);
    const okA = generated!(a);
    const okB = compiled(b);
    assert.equal(okA, okB, text);
    assert.deepEqual(a, b, `defaults filled in alike: ${text}`);
    const strip = (errs: ErrorObject[] | null | undefined) => (errs ?? []).map((e) => ({ path: e.instancePath, keyword: e.keyword, params: e.params, message: e.message }));
    if (!okA) assert.deepEqual(strip(generated!.errors), strip(compiled.errors), text);
  }
});

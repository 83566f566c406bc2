import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERRORS } from '../../src/errors/codes.js';
import { problemBody } from '../../src/errors/problem.js';

const docs = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');

test('every error code is documented in docs/errors.md with its status', () => {
  for (const [code, spec] of Object.entries(ERRORS)) {
    const row = docs.split('\n').find((l) => l.startsWith(`| ${code} |`));
    assert.ok(row, `${code} is missing from docs/errors.md`);
    assert.equal(Number(row!.split('|')[2].trim()), spec.status, `${code}: status in docs differs`);
  }
});

test('docs/errors.md lists no code that does not exist', () => {
  const documented = [...docs.matchAll(/^\| (NG_ERR_[A-Z_]+) \|/gm)].map((m) => m[1]);
  for (const code of documented) assert.ok(code in ERRORS, `${code} is documented but not defined`);
});

test('codes follow NG_ERR_<AREA>_<WHAT> and problem bodies are valid JSON with the code and request id', () => {
  for (const code of Object.keys(ERRORS) as (keyof typeof ERRORS)[]) {
    assert.match(code, /^NG_ERR_[A-Z]+_[A-Z_]+$/);
    const body = JSON.parse(problemBody(code, 'req-1', 'a "quoted" detail'));
    assert.equal(body.code, code);
    assert.equal(body.status, ERRORS[code].status);
    assert.equal(body.requestId, 'req-1');
    assert.equal(body.detail, 'a "quoted" detail');
  }
});

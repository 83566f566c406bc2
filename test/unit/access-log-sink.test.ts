import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { accessLogSink, flushAccessLogs } from '../../src/observe/access-log-sink.js';
import { jsonString } from '../../src/policies/access-log/line.js';
import type { AccessLogDestinationConfig } from '../../src/observe/schema.js';

/**
 * The file sink joins lines and writes each batch as latin1, which is exact only because every line is ASCII:
 * jsonString escapes the rest. Values with Latin-1, BMP and astral characters, quotes, controls and lone surrogates
 * come back unchanged when the file is read as JSON, through a line longer than a batch and many batches.
 */
test('a file sink writes every line whole and in order, and non-ASCII values read back unchanged', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'nanogate-sink-')), 'access.log');
  const sink = accessLogSink({ type: 'file', path, flushMs: 50 } as AccessLogDestinationConfig);
  const values: string[] = [];
  for (let i = 0; i < 3000; i++) values.push(`/caf\u00e9/${'x'.repeat(i % 200)} \u2192 \u{1F600} "q" \\ \t\u0001\u007f\u00a0 ${i % 7 === 0 ? '\ud800' : ''}`);
  // one line larger than a whole batch, between the others
  values.splice(1500, 0, '\u00e9\u2192'.repeat(70_000));
  const lines = values.map((v, n) => `{"n":${n},"path":${jsonString(v)}}\n`);
  for (const l of lines) {
    assert.match(l, /^[\x20-\x7e]*\n$/, 'a line is printable ASCII');
    sink.write(l);
  }
  await flushAccessLogs();
  const text = readFileSync(path, 'latin1');
  assert.equal(text, lines.join(''));
  const back = text.trimEnd().split('\n').map((l) => JSON.parse(l) as { n: number; path: string });
  assert.deepEqual(back.map((r) => r.n), values.map((_, n) => n));
  assert.deepEqual(back.map((r) => r.path), values);
});

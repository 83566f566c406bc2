import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { accessLogSink, flushAccessLogs } from '../../src/observe/access-log-sink.js';
import type { AccessLogDestinationConfig } from '../../src/observe/schema.js';

/** The file sink encodes each line into its batch buffer: every byte arrives, in order, whatever the line holds. */
test('a file sink writes every line whole and in order: non-Latin-1 text, a line longer than a batch, many batches', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'nanogate-sink-')), 'access.log');
  const sink = accessLogSink({ type: 'file', path, flushMs: 50 } as AccessLogDestinationConfig);
  const lines: string[] = [];
  for (let i = 0; i < 3000; i++) lines.push(`{"n":${i},"path":"/caf\u00e9/${'x'.repeat(i % 200)}","ua":"\u2192 \u{1F600}"}\n`);
  // one line larger than a whole batch buffer, between the others
  lines.splice(1500, 0, `{"big":"${'\u00e9\u2192'.repeat(70_000)}"}\n`);
  for (const l of lines) sink.write(l);
  await flushAccessLogs();
  assert.equal(readFileSync(path, 'utf8'), lines.join(''));
});

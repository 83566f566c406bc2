import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync, appendFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDiscoverySource, parseDiscoveryConfig } from '../../src/discovery/index.js';
import { started, until } from '../helpers/discovery.js';

/**
 * The file source on a real file: JSON and YAML, changes seen through fs.watch (and through the poll when events are
 * lost), and every broken state of the file keeping the last set: invalid content, a half-written file, a file that
 * is removed.
 */

const dir = mkdtempSync(join(tmpdir(), 'ng-discovery-file-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** Writes atomically (write + rename), as deploy tools and editors do. */
function publish(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

function source(path: string, extra: Record<string, unknown> = {}) {
  return (logger: Parameters<typeof createDiscoverySource>[1]) =>
    createDiscoverySource(parseDiscoveryConfig({ type: 'file', path, debounceMs: 20, ...extra }), logger);
}

const json = (...nodes: [string, number, number?][]) =>
  JSON.stringify({ nodes: nodes.map(([host, port, weight]) => (weight ? { host, port, weight } : { host, port })) });

test('a JSON file is read at start and an atomic replacement is followed', async () => {
  const file = join(dir, `nodes-${n++}.json`);
  publish(file, json(['127.0.0.1', 8001], ['127.0.0.2', 8002, 5]));
  const { source: s, rec } = started(source(file));
  try {
    await until('first set', () => rec.sets.length === 1);
    assert.deepEqual(rec.latest(), ['127.0.0.1:8001/1', '127.0.0.2:8002/5']);
    publish(file, json(['127.0.0.3', 8003]));
    await until('second set', () => rec.sets.length === 2);
    assert.deepEqual(rec.latest(), ['127.0.0.3:8003/1']);
    assert.equal(s.status().updates, 2);
  } finally {
    await s.stop();
  }
});

test('YAML, the bare-list form, and an in-place rewrite', async () => {
  const file = join(dir, `nodes-${n++}.yaml`);
  writeFileSync(file, '- { host: 127.0.0.1, port: 8001, zone: a }\n- host: ::1\n  port: 8002\n');
  const { source: s, rec } = started(source(file));
  try {
    await until('first set', () => rec.sets.length === 1);
    assert.deepEqual(rec.latest(), ['127.0.0.1:8001/1', '[::1]:8002/1']);
    assert.equal(rec.sets[0].find((x) => x.port === 8001)?.zone, 'a');
    writeFileSync(file, 'nodes:\n  - { host: api-1.internal, port: 9000, weight: 2 }\n');
    await until('second set', () => rec.sets.length === 2);
    assert.deepEqual(rec.latest(), ['api-1.internal:9000/2']);
  } finally {
    await s.stop();
  }
});

test('invalid content, an empty list and a removed file keep the last set, each logged once', async () => {
  const file = join(dir, `nodes-${n++}.json`);
  publish(file, json(['127.0.0.1', 8001]));
  const { source: s, rec } = started(source(file, { pollSeconds: 0.05 }));
  try {
    await until('first set', () => rec.sets.length === 1);
    const broken = [
      ['{"nodes": [{"host": "127.0.0.9", "port": 80', /not valid JSON/],
      ['{"nodes": []}', /fewer than 1 items/],
      ['{"nodes": [{"host": "127.0.0.9", "port": 0}]}', /must be >= 1/],
      ['{"nodes": [{"host": "127.0.0.9", "port": 80, "wieght": 2}]}', /must NOT have additional properties "wieght"/],
      ['{"nodes": [{"host": "a b", "port": 80}]}', /invalid host/],
      ['', /the file is empty/],
    ] as const;
    for (const [text, reason] of broken) {
      publish(file, text);
      await until(`refused: ${reason}`, () => reason.test(s.status().lastError ?? ''));
    }
    unlinkSync(file);
    await until('missing file seen', () => /ENOENT/.test(s.status().lastError ?? ''));
    // One warning per broken state, although the file was also polled every 50 ms meanwhile.
    assert.equal(rec.logged('keeping the last good node set').length, broken.length + 1);
    assert.equal(rec.sets.length, 1);
    assert.equal(s.status().nodes, 1);
    assert.equal(s.status().stale, true);

    publish(file, json(['127.0.0.5', 8005]));
    await until('recovered', () => rec.sets.length === 2);
    assert.deepEqual(rec.latest(), ['127.0.0.5:8005/1']);
    assert.equal(s.status().stale, false);
  } finally {
    await s.stop();
  }
});

test('a file written in pieces in place: no prefix replaces the set, the complete file does', async () => {
  const file = join(dir, `nodes-${n++}.json`);
  publish(file, json(['127.0.0.1', 8001]));
  const { source: s, rec } = started(source(file, { debounceMs: 10 }));
  try {
    await until('first set', () => rec.sets.length === 1);
    // A writer that writes in pieces, in place: every prefix is seen by the watcher; none is valid JSON.
    const text = json(['127.0.0.2', 8002], ['127.0.0.3', 8003], ['127.0.0.4', 8004]);
    writeFileSync(file, '');
    for (let i = 0; i < text.length; i += 7) {
      appendFileSync(file, text.slice(i, i + 7));
      await new Promise((r) => setTimeout(r, 5));
    }
    await until('complete file taken', () => rec.sets.length === 2);
    assert.deepEqual(rec.latest(), ['127.0.0.2:8002/1', '127.0.0.3:8003/1', '127.0.0.4:8004/1']);
    assert.equal(rec.sets.length, 2, 'no partial set in between');
  } finally {
    await s.stop();
  }
});

test('the poll finds a change when no watch event arrives', async () => {
  // A file in a directory that does not exist yet cannot be watched: only the poll sees it appear.
  const sub = join(dir, `later-${n++}`);
  const file = join(sub, 'nodes.json');
  const { source: s, rec } = started(source(file, { pollSeconds: 0.05 }));
  try {
    await until('missing at start', () => /ENOENT/.test(s.status().lastError ?? ''));
    assert.equal(s.status().stale, true);
    assert.equal(s.status().nodes, 0);
    const { mkdirSync } = await import('node:fs');
    mkdirSync(sub);
    publish(file, json(['127.0.0.7', 8007]));
    await until('found by the poll', () => rec.sets.length === 1);
    assert.deepEqual(rec.latest(), ['127.0.0.7:8007/1']);
  } finally {
    await s.stop();
  }
});

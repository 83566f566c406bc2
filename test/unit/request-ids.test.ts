import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RequestIds } from '../../src/worker/request-ids.js';

test('generated request ids are the prefix and the sequence in base 36, across the table boundaries', () => {
  const ids = new RequestIds('a1b2c3d40-');
  const seen = new Set<string>();
  for (let seq = 1; seq <= 100_000; seq++) {
    const id = ids.next();
    assert.equal(id, 'a1b2c3d40-' + seq.toString(36), `id number ${seq}`);
    seen.add(id);
  }
  assert.equal(seen.size, 100_000);
});

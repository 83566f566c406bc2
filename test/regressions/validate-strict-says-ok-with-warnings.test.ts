import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';

/**
 * `nanogate validate --strict` on a file with warnings printed "FILE: ok (…), 2 warning(s)" and exited 1: a
 * failure that called itself ok. It now lists the warnings and says "FILE: failed (strict): N warning(s)".
 */

test('validate --strict with warnings lists them and says failed (strict), never ok', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nanogate-strict-'));
  const file = join(dir, 'shadowed.yaml');
  writeFileSync(
    file,
    `upstreams:\n  users: { nodes: [{ url: "http://127.0.0.1:9001" }] }\nroutes:\n  - { name: all, match: { path: /x }, upstream: users, priority: 1 }\n  - { name: get-x, match: { path: /x, methods: [GET] }, upstream: users }\n  - { name: post-x, match: { path: /x, methods: [POST] }, upstream: users }\n`,
  );
  const strict = await runCli(['validate', '--strict', file]);
  assert.equal(strict.code, 1);
  assert.equal((strict.stdout.match(/^warning: .*can never match/gm) ?? []).length, 2, strict.stdout);
  assert.match(strict.stderr, /^.*shadowed\.yaml: failed \(strict\): 2 warning\(s\)$/m);
  assert.doesNotMatch(strict.stdout + strict.stderr, /: ok \(/);
  const lax = await runCli(['validate', file]);
  assert.equal(lax.code, 0, lax.stderr);
  assert.match(lax.stdout, /shadowed\.yaml: ok \(3 routes, 1 upstreams\), 2 warning\(s\)/);
});

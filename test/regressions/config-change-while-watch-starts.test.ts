import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway } from '../helpers/gateway.js';
import { startUpstream } from '../helpers/upstream.js';
import { eventually } from '../helpers/admin.js';

/**
 * The file watch starts at the end of the apply that switches it on, but the files were read at its beginning: a
 * change written in between sent its event before any watcher existed and was lost until some later event (the
 * file-watch step of config-tooling.test.ts could fail so on a loaded machine). The watch now compares the files
 * once when it starts. Here the change is written while the apply waits for the worker; had the watcher already
 * been there, the test passes all the same.
 */

const config = (watch: boolean, route: string, upstream: string) => `
reload: { watch: ${watch}, debounceMs: 20 }
upstreams:
  app: { nodes: [{ url: ${upstream} }] }
routes:
  - { name: ${route}, match: { prefix: /${route} }, upstream: app }
`;

test('a config change written while the reload that switches the file watch on is applied is picked up', async () => {
  const up = await startUpstream((_req, res) => res.end('ok'));
  const gw = await startGateway(config(false, 'a', up.url));
  try {
    gw.rewrite(config(true, 'a', up.url));
    const applied = gw.gateway.reload();
    // A few microtask turns: the reload has read the file (synchronously, first thing) and waits for the worker to
    // take the plan, which cannot answer before the next macrotask.
    for (let i = 0; i < 5; i++) await null;
    gw.rewrite(config(true, 'b', up.url));
    assert.equal((await applied).version, 2);
    const routes = () => gw.gateway.plan.routes.map((r) => r.name);
    assert.ok(await eventually(() => routes().includes('b'), 5000), `the change was not picked up: routes ${routes().join(', ')}`);
    assert.deepEqual(routes(), ['b']);
  } finally {
    await gw.stop();
    await up.close();
  }
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startFaultUpstream, type FaultUpstream } from '../helpers/fault-upstream.js';
import { admin, eventually } from '../helpers/admin.js';

/**
 * Discovery wired into an upstream: a watched file (src/discovery/file.ts) feeds the node set of a running gateway.
 * Changes are applied on every worker; a broken or empty file changes nothing; discovered nodes are ejected like
 * static ones. The sources themselves are tested against real servers in discovery-*.test.ts.
 */

const T = { timeout: 60_000 };
let nodes: FaultUpstream[];
let gw: TestGateway;
let dir: string;
const agent = new Agent({ connections: 8 });

function publish(content: string): void {
  // written then renamed, as the docs ask, so the source never reads half a file
  const tmp = join(dir, 'nodes.json.tmp');
  writeFileSync(tmp, content);
  renameSync(tmp, join(dir, 'nodes.json'));
}

const list = (...ns: FaultUpstream[]) => JSON.stringify({ nodes: ns.map((n) => ({ host: '127.0.0.1', port: n.port })) });

async function served(count: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < count; i++) {
    const res = await request(`${gw.url}/api`, { dispatcher: agent });
    const text = await res.body.text();
    seen.add(res.statusCode === 200 ? text : `status ${res.statusCode}`);
  }
  return seen;
}

const same = (a: Set<string>, b: string[]) => a.size === b.length && b.every((x) => a.has(x));

before(async () => {
  nodes = [await startFaultUpstream('a'), await startFaultUpstream('b'), await startFaultUpstream('c')];
  dir = mkdtempSync(join(tmpdir(), 'nanogate-discovery-'));
  publish(list(nodes[0], nodes[1]));
  gw = await startGateway(
    `
upstreams:
  app:
    discovery: { type: file, path: ${JSON.stringify(join(dir, 'nodes.json'))}, pollSeconds: 0.2 }
    outlierDetection: { baseEjectionMs: 60000 }
routes:
  - { name: api, match: { prefix: /api }, upstream: app }
`,
    { workers: 2 },
  );
});

after(async () => {
  await gw?.stop();
  await agent.close();
  for (const n of nodes) await n.stop();
});

test('the discovered node set is served, and follows the file on every worker', T, async () => {
  assert.ok(await eventually(async () => same(await served(30), ['a', 'b']), 10_000), 'serves a and b');
  publish(list(nodes[1], nodes[2]));
  assert.ok(await eventually(async () => same(await served(30), ['b', 'c']), 10_000), 'follows the file: b and c');
  const view = (await admin(gw.adminUrl, 'GET', '/upstreams/app')).body;
  assert.deepEqual(view.nodes.map((n: { url: string }) => n.url).sort(), [nodes[1].url, nodes[2].url].sort());
  assert.ok(view.discovery.source.startsWith('file'));
});

test('a broken or empty file changes nothing: the last good set keeps serving', T, async () => {
  const before = gw.gateway.plan.version;
  publish('{"nodes": [ {"host": "127.0.0.1", "port": ');
  publish('{"nodes": []}');
  publish('not json at all');
  // the source polls every 200 ms: give it several rounds, then check nothing was applied
  await eventually(async () => (await admin(gw.adminUrl, 'GET', '/upstreams/app')).body.discovery.errors >= 1, 5000);
  assert.equal(gw.gateway.plan.version, before);
  assert.ok(same(await served(30), ['b', 'c']));
});

test('a discovered node that dies is ejected like a static one', T, async () => {
  publish(list(nodes[1], nodes[2]));
  await nodes[2].kill();
  const seen = await served(60);
  assert.ok(!seen.has('c'));
  assert.ok(seen.has('b'));
  assert.ok(!seen.has('status 502'), 'the refused connect was retried on the live node');
  const view = (await admin(gw.adminUrl, 'GET', '/upstreams/app')).body;
  assert.equal(view.nodes.find((n: { url: string }) => n.url === nodes[2].url).ejected, true);
  await nodes[2].restart();
});

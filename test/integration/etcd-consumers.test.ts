import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { runCli } from '../helpers/cli.js';
import { closeAll } from '../helpers/http.js';
import { EtcdClient } from '../../src/control/etcd-client.js';

/**
 * The consumer registry in etcd, shared by three gateway processes (two workers each) on one real etcd, and
 * `nanogate status --cluster` over them. The shared config (in etcd too) turns on API-key auth and names the registry.
 */

const PREFIX = '/k/';
const CONFIG_KEY = `${PREFIX}config/shared.yaml`;
const REGISTRY_KEY = `${PREFIX}consumers/registry`;

const shared = (upstream: number) => `upstreams:
  app: { nodes: [{ url: "http://127.0.0.1:${upstream}" }] }
consumerRegistry: { etcd: true }
policies:
  auth: { methods: { apiKey: {} }, identityHeaders: { consumerId: x-consumer-id } }
routes:
  - name: app
    match: { prefix: / }
    upstream: app
`;

const key = (name: string) => `${name}-key-0123456789abcdef`;
const registry = (consumers: readonly { id: string; key: string }[]) => JSON.stringify({ consumers: consumers.map((c) => ({ id: c.id, keys: [{ key: c.key }] })) });

/** One request on a new connection (so the kernel spreads them over the node's workers); the status. */
function statusWith(node: GatewayProcess, apiKey: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${node.url}/x`, { agent: false, headers: { 'x-api-key': apiKey } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The statuses of `tries` requests with `apiKey` on every node. */
async function statusesOn(nodes: readonly GatewayProcess[], apiKey: string, tries = 4): Promise<number[]> {
  const out: number[] = [];
  for (const n of nodes) for (let i = 0; i < tries; i++) out.push(await statusWith(n, apiKey));
  return out;
}

/** Waits (bounded) until a request with `apiKey` gets `status` on every node; the ms it took. */
async function everyNodeAnswers(nodes: readonly GatewayProcess[], apiKey: string, status: number, timeoutMs = 10_000): Promise<number> {
  const t0 = performance.now();
  const deadline = Date.now() + timeoutMs;
  const pending = new Set(nodes);
  while (pending.size > 0 && Date.now() < deadline) {
    for (const n of [...pending]) if ((await statusWith(n, apiKey)) === status) pending.delete(n);
    if (pending.size > 0) await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal(pending.size, 0, `every node answers ${status} for the key within ${timeoutMs} ms`);
  return performance.now() - t0;
}

interface ConsumersReport { revision: number; refusedRevision: number | null; state: string }
const consumersOf = async (n: GatewayProcess) => ((await n.status()).etcd as { consumers: ConsumersReport }).consumers;

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`timed out waiting for: ${what}`);
}

const pct = (sorted: readonly number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

describe('the consumer registry in etcd, shared by three gateway processes', () => {
  let etcd: TestEtcd;
  let upstream: TestUpstream;
  let client: EtcdClient;
  const nodes: GatewayProcess[] = [];
  const three = [{ id: 'c1', key: key('c1') }, { id: 'c2', key: key('c2') }, { id: 'c3', key: key('c3') }];

  before(async () => {
    etcd = await startEtcd();
    upstream = await startUpstream((_req, res) => res.writeHead(200, { 'content-length': '2' }).end('ok'));
    client = new EtcdClient([etcd.url]);
    await client.txn([{ key: CONFIG_KEY, value: shared(upstream.port) }], [], 2000);
    const started = [0, 1, 2].map((i) => startGatewayProcess('', { workers: 2, timeoutMs: 40_000, args: ['--etcd', etcd.url, '--etcd-prefix', PREFIX, '--etcd-node', `node-${i}`, '--etcd-check-ms', '300'] }));
    nodes.push(...(await Promise.all(started)));
  });

  after(() => closeAll(...nodes.map((n) => () => { n.child.kill('SIGCONT'); return n.stop(); }), () => client.close(), () => upstream.close(), () => etcd.close()));

  test('three consumers written through one node\'s admin API are let in by every node; other keys get 401', async () => {
    assert.deepEqual(await statusesOn(nodes, key('c1'), 1), [401, 401, 401], 'no consumer before the registry is written');
    const r = await fetch(`${nodes[0].adminUrl}/etcd/consumers`, { method: 'PUT', body: registry(three) });
    const body = (await r.json()) as { revision: number; consumers: number; applied: boolean };
    assert.equal(r.status, 200);
    assert.equal(body.consumers, 3);
    assert.equal(body.applied, true, 'the answer comes once the node serves it');
    for (const c of three) await everyNodeAnswers(nodes, c.key, 200);
    for (const s of await statusesOn(nodes, key('c2'))) assert.equal(s, 200);
    assert.deepEqual(await statusesOn(nodes, key('nobody'), 1), [401, 401, 401]);
    assert.equal(upstream.received.at(-1)?.headers['x-consumer-id'], 'c2');
    // audited: who wrote which key, and that it was written
    const audit = nodes[0].logs.map((l) => { try { return JSON.parse(l) as Record<string, unknown>; } catch { return {}; } }).find((l) => l.action === 'etcd.consumers');
    assert.equal(audit?.target, REGISTRY_KEY);
    assert.equal(audit?.result, 'ok');
  });

  test('20 key rotations each reach all three nodes (P50/P99 printed); a removed consumer gets 401 everywhere', async () => {
    const times: number[] = [];
    for (let i = 0; i < 20; i++) {
      const rotated = key(`c3-r${i}`);
      await client.txn([{ key: REGISTRY_KEY, value: registry([three[0], three[1], { id: 'c3', key: rotated }]) }], [], 2000);
      times.push(await everyNodeAnswers(nodes, rotated, 200));
    }
    assert.deepEqual(await statusesOn(nodes, key('c3'), 1), [401, 401, 401], 'the key rotated away no longer works');
    times.sort((a, b) => a - b);
    console.log(`# consumer change until applied on all 3 nodes: P50 ${pct(times, 50).toFixed(0)} ms, P99 ${pct(times, 99).toFixed(0)} ms, max ${times.at(-1)!.toFixed(0)} ms (20 changes)`);

    await client.txn([{ key: REGISTRY_KEY, value: registry([three[0], { id: 'c3', key: key('c3-r19') }]) }], [], 2000);
    await everyNodeAnswers(nodes, key('c2'), 401);
    for (const s of await statusesOn(nodes, key('c2'))) assert.equal(s, 401);
    for (const s of await statusesOn(nodes, key('c1'))) assert.equal(s, 200);
  });

  test('a malformed registry is refused by the admin API (nothing written) and, written directly, by every node; old keys keep working', async () => {
    const before = await client.rangePrefix(`${PREFIX}consumers/`, 2000);
    const r = await fetch(`${nodes[1].adminUrl}/etcd/consumers`, { method: 'PUT', body: registry([{ id: 'short', key: 'too-short' }]) });
    const problem = (await r.json()) as { code: string; errors: string[] };
    assert.equal(r.status, 422);
    assert.equal(problem.code, 'NG_ERR_ADMIN_CONSUMERS_INVALID');
    assert.match(problem.errors[0], /^etcd:\/k\/consumers\/registry: \/consumers\/0\/keys\/0\/key must NOT have fewer than 16 characters/);
    assert.deepEqual((await client.rangePrefix(`${PREFIX}consumers/`, 2000)).kvs, before.kvs, 'nothing was written');

    const bad = await client.txn([{ key: REGISTRY_KEY, value: '{"consumers": [{"id": "c1", ' }], [], 2000);
    await until('every node refused it', async () => (await Promise.all(nodes.map(consumersOf))).every((c) => c.refusedRevision === bad));
    for (const s of await statusesOn(nodes, key('c1'))) assert.equal(s, 200, 'the last good registry keeps serving');
    assert.ok(nodes[2].logs.some((l) => l.includes('consumer registry update refused') && l.includes('etcd:/k/consumers/registry: not valid JSON')));

    // a duplicate across two keys is refused too
    const dup = await client.txn([{ key: REGISTRY_KEY, value: registry([three[0]]) }, { key: `${REGISTRY_KEY}-2`, value: registry([{ id: 'c1', key: key('other') }]) }], [], 2000);
    await until('every node refused the duplicate', async () => (await Promise.all(nodes.map(consumersOf))).every((c) => c.refusedRevision === dup));
    for (const s of await statusesOn(nodes, key('c1'))) assert.equal(s, 200);
    await client.txn([], [`${REGISTRY_KEY}-2`], 2000);
    await until('the fixed registry is applied', async () => (await Promise.all(nodes.map(consumersOf))).every((c) => c.refusedRevision === null));
  });

  test('status --cluster: all three nodes at the same revisions; a stopped node is marked lagging, then away', async () => {
    await until('every node reported the same revisions', async () => {
      const r = await runCli(['status', '--cluster', '--json', '--admin', nodes[0].adminUrl]);
      return r.code === 0 && (JSON.parse(r.stdout) as { nodes: unknown[] }).nodes.length === 3;
    });
    const ok = await runCli(['status', '--cluster', '--admin', nodes[0].adminUrl]);
    assert.equal(ok.code, 0, ok.stderr);
    const rows = ok.stdout.split('\n').filter((l) => l.startsWith('node-'));
    assert.equal(rows.length, 3);
    const cells = rows.map((l) => l.split(/\s+/));
    for (const [i, c] of cells.entries()) {
      assert.equal(c[0], `node-${i}`);
      assert.equal(c[1], `127.0.0.1:${nodes[i].port}`);
      assert.equal(c[2], cells[0][2], 'same config revision');
      assert.equal(c[3], cells[0][3], 'same consumer revision');
      assert.equal(c[5], '0/0');
      assert.equal(c[6], 'ok');
    }
    assert.doesNotMatch(ok.stdout, /LAGGING/);

    nodes[2].child.kill('SIGSTOP'); // the node stops: no watch, no apply, no report
    try {
      const written = await client.txn([{ key: REGISTRY_KEY, value: registry([three[0], { id: 'c4', key: key('c4') }]) }], [], 2000);
      await everyNodeAnswers(nodes.slice(0, 2), key('c4'), 200);
      const view = async () => {
        const r = await runCli(['status', '--cluster', '--json', '--admin', nodes[1].adminUrl]);
        return { code: r.code, view: JSON.parse(r.stdout) as { consumers: number; lagging: number; nodes: { node: string; lagging: boolean; watch: string; lag: { consumers: number } }[] } };
      };
      await until('node-2 marked away', async () => (await view()).view.nodes[2].watch === 'away');
      const { code, view: v } = await view();
      assert.equal(code, 1, 'exit 1 while a node lags');
      assert.equal(v.consumers, written);
      assert.deepEqual(v.nodes.map((n) => n.lagging), [false, false, true]);
      assert.ok(v.nodes[2].lag.consumers > 0);
      const table = await runCli(['status', '--cluster', '--admin', nodes[0].adminUrl]);
      assert.match(table.stdout, /^node-2\s.*\saway \(\d+ s\)\s+LAGGING$/m);
      console.log(table.stdout.trimEnd().split('\n').map((l) => `# ${l}`).join('\n'));
    } finally {
      nodes[2].child.kill('SIGCONT');
    }
    await everyNodeAnswers(nodes, key('c4'), 200);
    await until('node-2 back in step', async () => (await runCli(['status', '--cluster', '--admin', nodes[0].adminUrl])).code === 0);
  });

  test('etcd stopped: every node keeps letting the registry\'s keys in, says so, and catches up when etcd is back', async () => {
    await etcd.stop();
    try {
      await until('every node saw etcd away', async () => (await Promise.all(nodes.map(consumersOf))).every((c) => c.state === 'away'));
      for (const s of await statusesOn(nodes, key('c4'))) assert.equal(s, 200);
      for (const s of await statusesOn(nodes, key('c2'), 1)) assert.equal(s, 401);
      const r = await runCli(['status', '--admin', nodes[0].adminUrl]);
      assert.match(r.stdout, /consumers revision \d+ \(watch away\)/);
    } finally {
      await etcd.start();
    }
    await client.txn([{ key: REGISTRY_KEY, value: registry([three[0], { id: 'c5', key: key('c5') }]) }], [], 5000);
    await everyNodeAnswers(nodes, key('c5'), 200, 20_000);
    await everyNodeAnswers(nodes, key('c4'), 401);
  });
});

test('consumerRegistry: { etcd: true } on a node started without --etcd is refused at start, naming the setting', async () => {
  await assert.rejects(
    startGatewayProcess('consumerRegistry: { etcd: true }\nupstreams: { app: { nodes: [{ url: "http://127.0.0.1:9" }] } }\nroutes: [{ name: r, match: { prefix: / }, upstream: app }]\n', { timeoutMs: 20_000 }),
    (err: Error) => /consumerRegistry\.etcd: this node was started without --etcd/.test(err.message) && /exited \(1\)/.test(err.message),
  );
});

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { closedPort, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { runCli } from '../helpers/cli.js';
import { closeAll, waitFor } from '../helpers/http.js';
import { EtcdClient } from '../../src/control/etcd-client.js';
import { EtcdConfigSource } from '../../src/control/etcd-source.js';

/** The shared part of the config (what every node serves), with a response header telling which change it is. */
const shared = (upstream: number, mark: string) => `upstreams:
  app: { nodes: [{ url: "http://127.0.0.1:${upstream}" }] }
routes:
  - name: app
    match: { prefix: / }
    upstream: app
    policies:
      headers:
        response: { set: { x-config: "${mark}" } }
`;

interface EtcdStatus { up: boolean; revision: number; appliedRevision: number; refusedRevision: number | null; lastError: string | null }

async function etcdStatus(node: GatewayProcess): Promise<EtcdStatus> {
  return (await node.status()).etcd as EtcdStatus;
}

async function mark(node: GatewayProcess): Promise<string | null> {
  const r = await fetch(`${node.url}/x`);
  await r.arrayBuffer();
  return r.status === 200 ? r.headers.get('x-config') : `status ${r.status}`;
}

/** Waits until every node applied `revision` (bounded); the time it took. */
async function converged(nodes: readonly GatewayProcess[], revision: number, timeoutMs = 10_000): Promise<number> {
  const t0 = performance.now();
  const ok = await Promise.all(nodes.map(async (n) => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if ((await etcdStatus(n)).appliedRevision >= revision) return true;
      await new Promise((r) => setTimeout(r, 5));
    }
    return false;
  }));
  assert.deepEqual(ok, nodes.map(() => true), `every node applies revision ${revision}`);
  return performance.now() - t0;
}

describe('config in etcd shared by three gateway processes', () => {
  let etcd: TestEtcd;
  let upstream: TestUpstream;
  let client: EtcdClient;
  const nodes: GatewayProcess[] = [];
  const KEY = '/t/config/shared.yaml';

  before(async () => {
    etcd = await startEtcd();
    upstream = await startUpstream();
    client = new EtcdClient([etcd.url]);
    await client.txn([{ key: KEY, value: shared(upstream.port, 'v0') }], [], 2000);
    for (let i = 0; i < 3; i++) {
      nodes.push(await startGatewayProcess('', { args: ['--etcd', etcd.url, '--etcd-prefix', '/t/', '--etcd-node', `node-${i}`] }));
    }
  });

  after(() => closeAll(...nodes.map((n) => () => n.stop()), () => client.close(), () => upstream.close(), () => etcd.close()));

  test('every node starts with the config from etcd and shows its revision', async () => {
    for (const n of nodes) assert.equal(await mark(n), 'v0');
    let statuses = await Promise.all(nodes.map(etcdStatus));
    for (const deadline = Date.now() + 10_000; !statuses.every((s) => s.up) && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 20)); // the watch is confirmed just after the node serves
      statuses = await Promise.all(nodes.map(etcdStatus));
    }
    assert.ok(statuses.every((s) => s.up && s.appliedRevision > 0 && s.appliedRevision === statuses[0].appliedRevision));
  });

  test('50 changes each reach all three nodes (P99 printed)', async () => {
    const times: number[] = [];
    let revision = 0;
    for (let i = 1; i <= 50; i++) {
      const t0 = performance.now();
      revision = await client.txn([{ key: KEY, value: shared(upstream.port, `c${i}`) }], [], 2000);
      await converged(nodes, revision);
      times.push(performance.now() - t0);
    }
    for (const n of nodes) assert.equal(await mark(n), 'c50');
    times.sort((a, b) => a - b);
    const q = (p: number) => times[Math.min(times.length - 1, Math.ceil((p / 100) * times.length) - 1)].toFixed(1);
    console.log(`# etcd change -> applied on all 3 nodes, 50 changes: P50 ${q(50)} ms, P99 ${q(99)} ms, max ${q(100)} ms`);
  });

  test('a broken config written to etcd is refused by every node, which keep serving the old one', async () => {
    const before = await mark(nodes[0]);
    const broken = `routes:\n  - name: app\n    match: { prefix: / }\n    upstream: nowhere\n`;
    const revision = await client.txn([{ key: KEY, value: broken }], [], 2000);
    for (const n of nodes) {
      const deadline = Date.now() + 10_000;
      let s = await etcdStatus(n);
      while (s.refusedRevision !== revision && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
        s = await etcdStatus(n);
      }
      assert.equal(s.refusedRevision, revision);
      assert.match(s.lastError ?? '', /etcd:\/t\/config\/shared\.yaml/);
      assert.match(s.lastError ?? '', /nowhere/);
      assert.ok(s.appliedRevision < revision);
      assert.equal(await mark(n), before);
      assert.ok(await waitFor(() => n.logs.some((l) => l.includes('config in etcd refused')), 3000), 'the refusal is logged'); // the log is written asynchronously
    }
    const metrics = await (await fetch(`http://127.0.0.1:${nodes[1].adminPort}/metrics`)).text();
    assert.match(metrics, /^nanogate_etcd_refused_total [1-9]/m);
  });

  test('the admin API of any node validates, writes to etcd, and all nodes converge', async () => {
    const admin = (i: number) => `http://127.0.0.1:${nodes[i].adminPort}`;
    const { revision: before } = await client.rangePrefix('/t/config/', 2000);
    const refused = await fetch(`${admin(2)}/etcd/config`, { method: 'PUT', body: 'routes: [{ name: x, match: { prefix: / }, upstream: nowhere }]\n' });
    assert.equal(refused.status, 422);
    const problem = (await refused.json()) as { code: string; errors: string[] };
    assert.equal(problem.code, 'NG_ERR_ADMIN_CONFIG_INVALID');
    assert.ok(problem.errors.some((e) => e.includes('nowhere')));
    assert.equal((await client.rangePrefix('/t/config/', 2000)).revision, before, 'nothing was written');

    const put = await fetch(`${admin(2)}/etcd/config`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.nanogate.config-files+json' },
      body: JSON.stringify({ files: [{ name: 'shared.yaml', text: shared(upstream.port, 'admin') }] }),
    });
    assert.equal(put.status, 200);
    const body = (await put.json()) as { revision: number; applied: boolean };
    assert.equal(body.applied, true);
    await converged(nodes, body.revision);
    for (const n of nodes) assert.equal(await mark(n), 'admin');

    const cluster = (await (await fetch(`${admin(0)}/etcd/nodes`)).json()) as { nodes: { node: string; revision: number; lagging: boolean }[] };
    assert.deepEqual(cluster.nodes.map((n) => n.node).sort(), ['node-0', 'node-1', 'node-2']);
  });

  test('etcd stopped for 5 s and started again: no failed request, the nodes catch up', async () => {
    let sent = 0;
    const failed: string[] = [];
    let running = true;
    const load = (async () => {
      while (running) {
        const n = nodes[sent % 3];
        sent++;
        try {
          const m = await mark(n);
          if (m !== 'admin') failed.push(String(m));
        } catch (err) {
          failed.push((err as Error).message);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await etcd.stop();
    const down = await Promise.all(nodes.map(async (n) => {
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline) {
        if (!(await etcdStatus(n)).up) return true;
        await new Promise((r) => setTimeout(r, 50));
      }
      return false;
    }));
    assert.deepEqual(down, [true, true, true], 'every node says etcd is away');
    await new Promise((r) => setTimeout(r, 5000));
    await etcd.start();
    running = false;
    await load;
    assert.deepEqual(failed, [], `${sent} requests during the outage`);
    assert.ok(sent > 100);
    const revision = await client.txn([{ key: KEY, value: shared(upstream.port, 'after') }], [], 2000);
    await converged(nodes, revision);
    for (const n of nodes) {
      assert.equal(await mark(n), 'after');
      assert.equal((await etcdStatus(n)).up, true);
    }
  });
});

test('a watch from a compacted revision re-lists the prefix: vanished keys are deleted, the view is the newest', async () => {
  const etcd = await startEtcd();
  const client = new EtcdClient([etcd.url]);
  let changes = 0;
  const source = new EtcdConfigSource({ endpoints: [etcd.url], prefix: '/c/', node: 'n' }, pino({ level: 'silent' }), async () => {
    changes++;
  });
  try {
    await client.txn([{ key: '/c/config/a.yaml', value: 'a: 1' }, { key: '/c/config/b.yaml', value: 'b: 1' }], [], 2000);
    await source.load();
    const listed = source.revision;
    // changes the source has not watched yet, then a compaction past them: the watch from `listed + 1` is refused
    await client.txn([{ key: '/c/config/a.yaml', value: 'a: 2' }], [], 2000);
    const last = await client.txn([], ['/c/config/b.yaml'], 2000);
    await client.compact(last, 2000);
    source.run();
    assert.ok(await waitFor(() => source.relists.compacted === 1 && source.revision >= last, 5000), 'compaction seen and re-listed');
    assert.deepEqual(source.sources(), [{ file: 'etcd:/c/config/a.yaml', text: 'a: 2' }]);
    assert.ok(await waitFor(() => changes === 1, 2000));
    // the watch goes on from the re-listed revision
    const next = await client.txn([{ key: '/c/config/c.yaml', value: 'c: 1' }], [], 2000);
    assert.ok(await waitFor(() => source.revision >= next, 5000));
    assert.deepEqual(source.sources().map((s) => s.file), ['etcd:/c/config/a.yaml', 'etcd:/c/config/c.yaml']);
  } finally {
    await source.stop();
    client.close();
    await etcd.close();
  }
});

test('one transaction that writes two keys and deletes a third reaches the view whole (its events share a revision)', async () => {
  const etcd = await startEtcd();
  const client = new EtcdClient([etcd.url]);
  // a check interval longer than the test: only the watch can bring the change
  const source = new EtcdConfigSource({ endpoints: [etcd.url], prefix: '/m/', node: 'n', checkIntervalMs: 60_000 }, pino({ level: 'silent' }), async () => {});
  try {
    await client.txn([{ key: '/m/config/c.yaml', value: 'c: 1' }], [], 2000);
    await source.load();
    source.run();
    assert.ok(await waitFor(() => source.up, 3000));
    const written = await client.txn([{ key: '/m/config/a.yaml', value: 'a: 1' }, { key: '/m/config/b.yaml', value: 'b: 1' }], ['/m/config/c.yaml'], 2000);
    assert.ok(await waitFor(() => source.configRevision >= written, 5000));
    assert.deepEqual(source.sources(), [{ file: 'etcd:/m/config/a.yaml', text: 'a: 1' }, { file: 'etcd:/m/config/b.yaml', text: 'b: 1' }]);
  } finally {
    await source.stop();
    client.close();
    await etcd.close();
  }
});

/** A TCP proxy to etcd whose open connections can be frozen: they stay open and carry nothing (a hung watch). */
async function freezableProxy(target: number): Promise<{ url: string; freezeOpen(): void; close(): Promise<void> }> {
  const pairs = new Set<[Socket, Socket]>();
  const server: Server = createServer((c) => {
    const u = connect(target, '127.0.0.1');
    const pair: [Socket, Socket] = [c, u];
    pairs.add(pair);
    c.pipe(u);
    u.pipe(c);
    const drop = () => {
      pairs.delete(pair);
      c.destroy();
      u.destroy();
    };
    c.on('error', drop).on('close', drop);
    u.on('error', drop).on('close', drop);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    freezeOpen: () => {
      for (const [c, u] of pairs) {
        c.unpipe(u);
        u.unpipe(c);
        c.pause();
        u.pause();
      }
    },
    close: async () => {
      for (const [c, u] of pairs) {
        c.destroy();
        u.destroy();
      }
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

test('a watch that goes silent (its connection hung) is found by the periodic check and restarted', async () => {
  const etcd = await startEtcd();
  const proxy = await freezableProxy(etcd.port);
  const client = new EtcdClient([etcd.url]);
  const source = new EtcdConfigSource({ endpoints: [proxy.url], prefix: '/s/', node: 'n', checkIntervalMs: 200, requestTimeoutMs: 500 }, pino({ level: 'silent' }), async () => {});
  try {
    await client.txn([{ key: '/s/config/a.yaml', value: 'a: 1' }], [], 2000);
    await source.load();
    source.run();
    assert.ok(await waitFor(() => source.up, 3000));
    proxy.freezeOpen(); // the watch stream (and any kept-alive request socket) now carries nothing
    const written = await client.txn([{ key: '/s/config/a.yaml', value: 'a: 2' }], [], 2000);
    assert.ok(await waitFor(() => source.revision >= written, 8000), 'the change arrives through a new watch');
    assert.deepEqual(source.sources(), [{ file: 'etcd:/s/config/a.yaml', text: 'a: 2' }]);
    assert.ok(source.watchRestarts >= 1);
  } finally {
    await source.stop();
    client.close();
    await proxy.close();
    await etcd.close();
  }
});

test('start refuses bad --etcd flags (exit 2) and an etcd it cannot read (exit 1), naming it', async () => {
  const scheme = await runCli(['start', '--etcd', 'https://127.0.0.1:2379']);
  assert.equal(scheme.code, 2);
  assert.match(scheme.stderr, /--etcd takes http:\/\/ URLs/);
  const lone = await runCli(['start', '--etcd-prefix', '/x/']);
  assert.equal(lone.code, 2);
  assert.match(lone.stderr, /--etcd-prefix, --etcd-node and --etcd-check-ms need --etcd URL/);
  const port = await closedPort();
  await assert.rejects(
    startGatewayProcess('', { args: ['--etcd', `http://127.0.0.1:${port}`], timeoutMs: 10_000 }),
    (err: Error) => /cannot start: cannot read the config from etcd \(http:\/\/127\.0\.0\.1:\d+\/\): .*ECONNREFUSED/.test(err.message) && /exited \(1\)/.test(err.message),
  );
});

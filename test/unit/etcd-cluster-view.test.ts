import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterView } from '../../src/control/etcd-cluster-view.js';
import type { EtcdNodeStatus } from '../../src/control/etcd-source.js';

const NOW = Date.parse('2026-01-01T12:00:10.000Z');

function report(node: string, revision: number, consumers: number | null, over: Partial<EtcdNodeStatus> = {}): EtcdNodeStatus {
  return {
    node,
    address: `10.0.0.${node.length}:8080`,
    admin: null,
    revision,
    version: 1,
    appliedAt: '2026-01-01T12:00:00.000Z',
    refusedRevision: null,
    state: 'ok',
    consumers: consumers === null ? null : { revision: consumers, appliedAt: '2026-01-01T12:00:05.000Z', refusedRevision: null, state: 'ok' },
    checkIntervalMs: 5000,
    at: '2026-01-01T12:00:09.000Z',
    ...over,
  };
}

test('nodes at the newest revisions are in step; the newest apply of config or consumers is the applied time', () => {
  const v = clusterView({ revision: 90, config: 40, consumers: 50 }, [report('b', 40, 50), report('a', 40, 50)], NOW);
  assert.equal(v.lagging, 0);
  assert.deepEqual(v.nodes.map((n) => n.node), ['a', 'b']);
  assert.deepEqual(v.nodes[0].lag, { config: 0, consumers: 0 });
  assert.equal(v.nodes[0].watch, 'ok');
  assert.equal(v.nodes[0].appliedAt, '2026-01-01T12:00:05.000Z');
});

test('a node behind the store, or with a watch that is not ok, lags; one without a registry has no consumer lag', () => {
  const v = clusterView({ revision: 90, config: 40, consumers: 50 }, [
    report('a', 40, 50),
    report('b', 38, 50),
    report('c', 40, 44),
    report('d', 40, 50, { state: 'stalled' }),
    report('e', 40, null),
  ], NOW);
  assert.deepEqual(v.nodes.map((n) => n.lagging), [false, true, true, true, false]);
  assert.deepEqual(v.nodes[1].lag, { config: 2, consumers: 0 });
  assert.deepEqual(v.nodes[2].lag, { config: 0, consumers: 6 });
  assert.equal(v.nodes[3].watch, 'stalled');
  assert.equal(v.nodes[4].lag.consumers, null);
  assert.equal(v.lagging, 3);
});

test('a report older than three check intervals is away; a consumer watch that is away makes the node away', () => {
  const v = clusterView({ revision: 90, config: 40, consumers: 50 }, [
    report('a', 40, 50, { at: '2026-01-01T11:59:54.000Z' }), // 16 s old, interval 5 s
    report('b', 40, 50, { consumers: { revision: 50, appliedAt: null, refusedRevision: null, state: 'away' } }),
    report('c', 40, 50, { at: '2026-01-01T11:59:56.000Z' }), // 14 s: within three intervals
  ], NOW);
  assert.deepEqual(v.nodes.map((n) => n.watch), ['away', 'away', 'ok']);
  assert.equal(v.nodes[0].reportAgeMs, 16_000);
});

test('after a delete the store shows no newer key: the newest revision any node applied counts', () => {
  const v = clusterView({ revision: 90, config: 30, consumers: 0 }, [report('a', 45, 61), report('b', 30, 50)], NOW);
  assert.equal(v.config, 45);
  assert.equal(v.consumers, 61);
  assert.deepEqual(v.nodes[1].lag, { config: 15, consumers: 11 });
});

test('a report of an older node (revision, version, at only) is read, its watch taken as ok while fresh', () => {
  const old = { node: 'x', revision: 40, version: 3, at: '2026-01-01T12:00:09.000Z' } as EtcdNodeStatus;
  const v = clusterView({ revision: 90, config: 40, consumers: 0 }, [old], NOW);
  assert.deepEqual(
    { address: v.nodes[0].address, consumers: v.nodes[0].consumersRevision, lag: v.nodes[0].lag, watch: v.nodes[0].watch, lagging: v.nodes[0].lagging },
    { address: null, consumers: null, lag: { config: 0, consumers: null }, watch: 'ok', lagging: false },
  );
});

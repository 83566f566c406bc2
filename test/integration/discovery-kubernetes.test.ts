import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDiscoverySource, parseDiscoveryConfig } from '../../src/discovery/index.js';
import type { KubernetesSource } from '../../src/discovery/kubernetes.js';
import { slice, startFakeKube, type FakeKube } from '../helpers/fake-kube.js';
import { started, until } from '../helpers/discovery.js';

/**
 * The Kubernetes source against a loopback server that speaks the EndpointSlice list + watch API
 * (test/helpers/fake-kube.ts): several slices joined, slices added, changed and deleted, endpoint conditions,
 * ports by name, 410 Gone (as a status and as an ERROR event) re-listing, a watch dropped mid-stream resuming from
 * the last resourceVersion (bookmarks included), a garbage event, failing lists.
 */

const dir = mkdtempSync(join(tmpdir(), 'ng-kube-'));
const tokenFile = join(dir, 'token');
writeFileSync(tokenFile, 'sa-token\n');
after(() => rmSync(dir, { recursive: true, force: true }));

async function withKube(fn: (k: FakeKube) => Promise<void>): Promise<void> {
  const kube = await startFakeKube({ namespace: 'shop', token: 'sa-token' });
  try {
    await fn(kube);
  } finally {
    await kube.close();
  }
}

function kube(k: FakeKube, extra: Record<string, unknown> = {}) {
  return (logger: Parameters<typeof createDiscoverySource>[1]) =>
    createDiscoverySource(
      parseDiscoveryConfig({ type: 'kubernetes', apiServer: k.url, namespace: 'shop', service: 'web', tokenFile, retryMinMs: 20, retryMaxMs: 100, timeoutMs: 2000, ...extra }),
      logger,
    );
}

const web = (name: string, ...ips: string[]) => slice(name, 'web', ips.map((ip) => ({ ip, ready: true })));

test('list joins the slices of the service, then the watch follows added, changed and deleted slices', async () => {
  await withKube(async (k) => {
    k.upsert(web('web-a', '10.1.0.1', '10.1.0.2'));
    k.upsert(web('web-b', '10.1.0.3'));
    k.upsert(slice('other-a', 'other', [{ ip: '10.9.0.1' }]));
    const { source, rec } = started(kube(k));
    try {
      await until('first set', () => rec.sets.length === 1);
      assert.deepEqual(rec.latest(), ['10.1.0.1:8080/1', '10.1.0.2:8080/1', '10.1.0.3:8080/1']);
      await until('watching', () => k.watching() === 1);
      const list = k.lists()[0];
      assert.equal(list.url.searchParams.get('labelSelector'), 'kubernetes.io/service-name=web');
      assert.equal(list.headers.authorization, 'Bearer sa-token');
      const watch = k.watches()[0].url.searchParams;
      assert.equal(watch.get('resourceVersion'), String(k.rv));
      assert.equal(watch.get('allowWatchBookmarks'), 'true');

      k.upsert(web('web-b', '10.1.0.3', '10.1.0.4')); // MODIFIED
      await until('modified', () => rec.sets.length === 2);
      assert.deepEqual(rec.latest(), ['10.1.0.1:8080/1', '10.1.0.2:8080/1', '10.1.0.3:8080/1', '10.1.0.4:8080/1']);
      k.upsert(web('web-c', '10.1.0.5')); // ADDED
      await until('added', () => rec.sets.length === 3);
      k.remove('web-a'); // DELETED
      await until('deleted', () => rec.sets.length === 4);
      assert.deepEqual(rec.latest(), ['10.1.0.3:8080/1', '10.1.0.4:8080/1', '10.1.0.5:8080/1']);
      k.upsert(slice('other-a', 'other', [{ ip: '10.9.0.2' }])); // another service: not ours
      assert.equal(k.lists().length, 1, 'one list; everything else came through the watch');
      const s = source.status();
      assert.equal(s.source, 'kubernetes:shop/web');
      assert.equal(s.updates, 4);
      assert.equal(s.stale, false);
    } finally {
      await source.stop();
    }
  });
});

test('conditions: ready (nil = ready) endpoints; serving-and-terminating ones only when none is ready; none at all keeps the set', async () => {
  await withKube(async (k) => {
    k.upsert(
      slice('web-a', 'web', [
        { ip: '10.2.0.1', ready: true, serving: true, terminating: false },
        { ip: '10.2.0.2' }, // no conditions: ready
        { ip: '10.2.0.3', ready: false, serving: false },
        { ip: '10.2.0.4', ready: false, serving: true, terminating: true },
      ]),
    );
    const { source, rec } = started(kube(k));
    try {
      await until('first set', () => rec.sets.length === 1);
      assert.deepEqual(rec.latest(), ['10.2.0.1:8080/1', '10.2.0.2:8080/1']);
      // A rolling update of the last replicas: nothing ready, one pod still serving while it terminates.
      k.upsert(
        slice('web-a', 'web', [
          { ip: '10.2.0.4', ready: false, serving: true, terminating: true },
          { ip: '10.2.0.5', ready: false, serving: false, terminating: false },
        ]),
      );
      await until('terminating fallback', () => rec.sets.length === 2);
      assert.deepEqual(rec.latest(), ['10.2.0.4:8080/1']);
      k.upsert(slice('web-a', 'web', [{ ip: '10.2.0.5', ready: false, serving: false }]));
      await until('nothing usable seen', () => /no ready or serving endpoint/.test(source.status().lastError ?? ''));
      assert.equal(rec.sets.length, 2);
      assert.equal(source.status().nodes, 1);
      assert.equal(source.status().stale, true);
    } finally {
      await source.stop();
    }
  });
});

test('the port is chosen by name; zones are kept; a slice without that port contributes nothing', async () => {
  await withKube(async (k) => {
    const ports = [
      { name: 'metrics', port: 9100 },
      { name: 'http', port: 8081 },
    ];
    k.upsert(slice('web-a', 'web', [{ ip: '10.3.0.1', zone: 'z1' }], ports));
    k.upsert(slice('web-b', 'web', [{ ip: '10.3.0.2' }], [{ name: 'metrics', port: 9100 }]));
    const named = started(kube(k, { portName: 'http', weight: 2 }));
    const unnamed = started(kube(k));
    try {
      await until('named set', () => named.rec.sets.length === 1);
      assert.deepEqual(named.rec.latest(), ['10.3.0.1:8081/2']);
      assert.equal(named.rec.sets[0][0].zone, 'z1');
      assert.equal(named.source.status().source, 'kubernetes:shop/web:http');
      // Without portName only the one-port slice has a port to offer.
      await until('unnamed set', () => unnamed.rec.sets.length === 1);
      assert.deepEqual(unnamed.rec.latest(), ['10.3.0.2:9100/1']);
    } finally {
      await named.source.stop();
      await unnamed.source.stop();
    }
  });
});

test('410 Gone on the watch re-lists, and the re-list brings what changed meanwhile', async () => {
  await withKube(async (k) => {
    k.upsert(web('web-a', '10.4.0.1'));
    const { source, rec } = started(kube(k));
    try {
      await until('watching', () => rec.sets.length === 1 && k.watching() === 1);
      k.compact('status');
      k.dropWatches();
      k.upsert(web('web-a', '10.4.0.2')); // lost with the history: only a list can see it
      await until('re-listed', () => k.lists().length === 2);
      await until('set from the re-list', () => rec.sets.length === 2);
      assert.deepEqual(rec.latest(), ['10.4.0.2:8080/1']);
      await until('watching again', () => k.watching() === 1);
      assert.equal(source.status().stale, false);
    } finally {
      await source.stop();
    }
  });
});

test('an ERROR event with code 410 in the stream re-lists too', async () => {
  await withKube(async (k) => {
    k.upsert(web('web-a', '10.5.0.1'));
    const { source, rec } = started(kube(k));
    try {
      await until('watching', () => rec.sets.length === 1 && k.watching() === 1);
      k.compact('event');
      k.upsert(web('web-a', '10.5.0.2'));
      k.dropWatches(); // the resumed watch is answered 200 with an ERROR 410 event
      await until('re-listed', () => k.lists().length === 2);
      await until('set from the re-list', () => rec.sets.length >= 2 && rec.latest()[0] === '10.5.0.2:8080/1');
      // And on a watch that is already open:
      await until('watching again', () => k.watching() === 1);
      k.sendRaw(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' } }));
      await until('re-listed again', () => k.lists().length === 3);
      assert.equal(source.status().nodes, 1);
    } finally {
      await source.stop();
    }
  });
});

test('a watch dropped mid-stream resumes from the last resourceVersion (a bookmark moves it) without a re-list', async () => {
  await withKube(async (k) => {
    k.upsert(web('web-a', '10.6.0.1'));
    const { source, rec } = started(kube(k));
    try {
      await until('watching', () => rec.sets.length === 1 && k.watching() === 1);
      k.upsert(web('web-a', '10.6.0.2'));
      await until('change', () => rec.sets.length === 2);
      k.bookmark();
      const bookmarked = String(k.rv);
      await until('bookmark read', () => (source as KubernetesSource).resourceVersion === bookmarked);
      k.dropWatches();
      await until('resumed', () => k.watches().length === 2 && k.watching() === 1);
      assert.equal(k.watches()[1].url.searchParams.get('resourceVersion'), bookmarked);
      k.upsert(web('web-a', '10.6.0.3'));
      await until('change after resume', () => rec.sets.length === 3);
      assert.deepEqual(rec.latest(), ['10.6.0.3:8080/1']);
      assert.equal(k.lists().length, 1);
      assert.equal(source.status().stale, false, 'a resumed watch clears the error of the drop');
    } finally {
      await source.stop();
    }
  });
});

test('a garbage event drops the stream and re-lists; the set stays', async () => {
  await withKube(async (k) => {
    k.upsert(web('web-a', '10.7.0.1', '10.7.0.2'));
    const { source, rec } = started(kube(k));
    try {
      await until('watching', () => rec.sets.length === 1 && k.watching() === 1);
      k.sendRaw('{"type":"MODIFIED","object":{"metadata":{"na');
      await until('re-listed and watching', () => k.lists().length === 2 && k.watching() === 1);
      k.sendRaw('{"type":"MODIFIED","object":{"kind":"Pod"}}'); // valid JSON, not a slice
      await until('re-listed again', () => k.lists().length === 3);
      assert.equal(rec.sets.length, 1);
      assert.equal(source.status().nodes, 2);
      assert.ok(rec.logged('keeping the last good node set').some((l) => /not JSON/.test(String(l.reason))));
    } finally {
      await source.stop();
    }
  });
});

test('failing lists (500) and a rejected token (401) keep the last set and are retried', async () => {
  await withKube(async (k) => {
    k.upsert(web('web-a', '10.8.0.1'));
    k.failLists = 500;
    const { source, rec } = started(kube(k));
    try {
      await until('list failures', () => source.status().errors >= 2);
      assert.match(source.status().lastError!, /list answered 500: etcdserver: request timed out/);
      assert.equal(rec.sets.length, 0);
      k.failLists = null;
      await until('first set', () => rec.sets.length === 1);
      await until('watching', () => k.watching() === 1);
      writeFileSync(tokenFile, 'expired\n');
      k.compact('status');
      k.dropWatches();
      await until('refused token', () => /answered 401: Unauthorized/.test(source.status().lastError ?? ''));
      assert.equal(source.status().nodes, 1);
      writeFileSync(tokenFile, 'sa-token\n'); // rotated back: read again before the next list
      await until('recovered', () => source.status().stale === false && k.watching() === 1);
    } finally {
      writeFileSync(tokenFile, 'sa-token\n');
      await source.stop();
    }
  });
});

test('stop() closes the watch and schedules nothing', async () => {
  await withKube(async (k) => {
    k.upsert(web('web-a', '10.9.0.1'));
    const { source, rec } = started(kube(k));
    await until('watching', () => rec.sets.length === 1 && k.watching() === 1);
    await source.stop();
    await until('watch closed', () => k.watching() === 0);
    const n = k.requests.length;
    k.upsert(web('web-a', '10.9.0.2'));
    assert.equal(k.requests.length, n);
    assert.equal(rec.sets.length, 1);
  });
});

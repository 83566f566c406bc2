import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDiscoverySource, parseDiscoveryConfig } from '../../src/discovery/index.js';
import { startFakeConsul, type ConsulInstance, type FakeConsul } from '../helpers/fake-consul.js';
import { started, until } from '../helpers/discovery.js';

/**
 * The Consul source against a loopback server that speaks Consul's health API with blocking queries
 * (test/helpers/fake-consul.ts), including the ways Consul goes wrong: an index that goes backwards, an index of 0,
 * 500s, a query that hangs past wait, a body that is not JSON, an empty list, and an index that churns.
 */

const WEB: ConsulInstance[] = [
  { node: 'n1', nodeAddress: '127.0.0.1', port: 8001, weight: 3, zone: 'a' },
  { node: 'n2', nodeAddress: '127.0.0.2', address: '127.0.1.2', port: 8002 },
];

async function withConsul(fn: (c: FakeConsul) => Promise<void>, opts: { token?: string } = {}): Promise<void> {
  const consul = await startFakeConsul({ service: 'web', ...opts });
  try {
    await fn(consul);
  } finally {
    await consul.close();
  }
}

function consul(c: FakeConsul, extra: Record<string, unknown> = {}) {
  return (logger: Parameters<typeof createDiscoverySource>[1]) =>
    createDiscoverySource(
      parseDiscoveryConfig({ type: 'consul', address: c.address, service: 'web', waitSeconds: 2, minIntervalMs: 20, retryMinMs: 20, retryMaxMs: 100, timeoutMs: 1000, ...extra }),
      logger,
    );
}

const last = (c: FakeConsul) => c.requests.at(-1)!.url.searchParams;

test('healthy instances become nodes (weights, service or node address); a change arrives through the blocking query', async () => {
  await withConsul(async (c) => {
    c.set([...WEB, { node: 'n3', nodeAddress: '127.0.0.3', port: 8003, health: 'critical' }], 10);
    const { source, rec } = started(consul(c));
    try {
      await until('first set', () => rec.sets.length === 1);
      assert.deepEqual(rec.latest(), ['127.0.0.1:8001/3', '127.0.1.2:8002/1']);
      assert.equal(rec.sets[0].find((n) => n.port === 8001)?.zone, 'a');
      const first = c.requests[0].url.searchParams;
      assert.equal(first.get('passing'), 'true');
      assert.equal(first.has('index'), false, 'the first query does not block');
      await until('blocking on index 10', () => c.held() === 1);
      assert.equal(last(c).get('index'), '10');
      assert.equal(last(c).get('wait'), '2000ms');

      c.set([WEB[0]], 11);
      await until('change delivered', () => rec.sets.length === 2);
      assert.deepEqual(rec.latest(), ['127.0.0.1:8001/3']);
      await until('blocking on index 11', () => c.held() === 1 && last(c).get('index') === '11');
      assert.equal(source.status().source, 'consul:web');
      assert.equal(source.status().stale, false);
    } finally {
      await source.stop();
    }
  });
});

test('datacenter, tags and the ACL token are sent; a token file is read for every query', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ng-consul-'));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'secret-one\n');
  await withConsul(
    async (c) => {
      c.set([
        { node: 'n1', nodeAddress: '127.0.0.1', port: 8001, tags: ['v2', 'blue'], datacenter: 'east' },
        { node: 'n2', nodeAddress: '127.0.0.2', port: 8002, tags: ['v1'], datacenter: 'east' },
        { node: 'n3', nodeAddress: '127.0.0.3', port: 8003, tags: ['v2', 'blue'] },
      ]);
      const { source, rec } = started(consul(c, { datacenter: 'east', tags: ['v2', 'blue'], tokenFile }));
      try {
        await until('first set', () => rec.sets.length === 1);
        assert.deepEqual(rec.latest(), ['127.0.0.1:8001/1']);
        assert.equal(c.requests[0].headers['x-consul-token'], 'secret-one');
        assert.equal(c.requests[0].url.searchParams.get('dc'), 'east');
        assert.deepEqual(c.requests[0].url.searchParams.getAll('tag'), ['v2', 'blue']);
        assert.equal(source.status().source, 'consul:web@east');

        // The token rotates: the next query carries the new one.
        writeFileSync(tokenFile, 'secret-two\n');
        c.set([{ node: 'n4', nodeAddress: '127.0.0.4', port: 8004, tags: ['v2', 'blue'], datacenter: 'east' }]);
        await until('change seen', () => rec.sets.length === 2);
        // The query that was blocked when the file changed still carries the old token; the next one the new.
        await until('new token sent', () => c.requests.some((r) => r.headers['x-consul-token'] === 'secret-two'));
      } finally {
        await source.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    },
    { token: undefined },
  );
});

test('a wrong token: 403 keeps nothing it did not have and reports the reason', async () => {
  await withConsul(
    async (c) => {
      c.set(WEB);
      const { source, rec } = started(consul(c, { token: 'wrong' }));
      try {
        await until('refused', () => source.status().errors >= 1);
        assert.match(source.status().lastError!, /answered 403: ACL not found/);
        assert.equal(rec.sets.length, 0);
        assert.equal(source.status().stale, true);
      } finally {
        await source.stop();
      }
    },
    { token: 'right' },
  );
});

test('an index that goes backwards resets to 0 (one non-blocking query), then blocks on the new index', async () => {
  await withConsul(async (c) => {
    c.set(WEB, 500);
    const { source, rec } = started(consul(c));
    try {
      await until('blocking on 500', () => c.held() === 1 && last(c).get('index') === '500');
      // A snapshot restore: the data moves back to index 120.
      c.set([WEB[1]], 120);
      await until('restored set delivered', () => rec.sets.length === 2);
      await until('blocking on 120', () => c.held() === 1 && last(c).get('index') === '120');
      const indexes = c.requests.map((r) => r.url.searchParams.get('index'));
      // 500 answered with 120 -> the next query carries no index (0), answered at once with 120, then blocks on 120.
      assert.deepEqual(indexes.slice(-3), ['500', null, '120']);
      assert.deepEqual(rec.latest(), ['127.0.1.2:8002/1']);
    } finally {
      await source.stop();
    }
  });
});

test('an X-Consul-Index of 0 is raised to 1, so the next query still blocks', async () => {
  await withConsul(async (c) => {
    c.fault = 'zero-index';
    c.set(WEB, 1);
    const { source, rec } = started(consul(c));
    try {
      await until('first set', () => rec.sets.length === 1);
      await until('second query sent', () => c.requests.length >= 2);
      assert.equal(c.requests[1].url.searchParams.get('index'), '1');
      assert.equal(c.requests[1].url.searchParams.get('wait'), '2000ms');
    } finally {
      await source.stop();
    }
  });
});

test('an index that changes on every answer is paced: a burst of two, then one query per minIntervalMs', async () => {
  await withConsul(async (c) => {
    c.set(WEB);
    c.fault = 'churn';
    const interval = 500;
    const { source } = started(consul(c, { minIntervalMs: interval }));
    try {
      await until('eight queries', () => c.requests.length >= 8, 30000);
      await source.stop();
      // A token bucket holding at most 2 tokens, refilled one per interval, lets at most 2 + t / interval queries start
      // in any stretch of t ms: query j starts at least (j - i - 1) intervals after query i, for every i < j. That holds
      // however late a timer fires or an answer comes back (a late query only leaves fewer for later). The times here
      // are when Consul saw the queries, so query i may have been on its way a while (the first one also connected):
      // that delay, never more than `slack`, is taken off. A burst of three (queries 0, 1 and 2 together) or a rate
      // twice as high would still fail; load on the machine only spreads the queries further.
      const slack = interval / 2;
      const at = c.requests.slice(0, 8).map((r) => r.at - c.requests[0].at);
      for (let j = 2; j < 8; j++) {
        for (let i = 0; i < j - 1; i++) {
          assert.ok(at[j] - at[i] >= (j - i - 1) * interval - slack, `query ${j} came ${at[j] - at[i]} ms after query ${i} (${at.join(', ')})`);
        }
      }
    } finally {
      await source.stop();
    }
  });
});

test('500s keep the last set and report stale; the loop recovers when Consul does', async () => {
  await withConsul(async (c) => {
    c.set(WEB);
    const { source, rec } = started(consul(c));
    try {
      await until('first set, then blocking', () => rec.sets.length === 1 && c.held() === 1);
      c.fault = { status: 500 };
      c.set([WEB[0]]); // wakes the blocked query; the retry meets the 500s
      await until('errors counted', () => source.status().errors >= 3);
      const s = source.status();
      assert.match(s.lastError!, /answered 500: rpc error making call: No cluster leader/);
      assert.equal(s.stale, true);
      assert.equal(s.nodes, 1, 'the change delivered with the wake-up is in use; the 500s changed nothing');
      assert.equal(rec.logged('keeping the last good node set').length, 1);
      c.fault = null;
      c.set(WEB);
      await until('recovered', () => rec.sets.length === 3 && source.status().stale === false);
      assert.deepEqual(rec.latest(), ['127.0.0.1:8001/3', '127.0.1.2:8002/1']);
    } finally {
      await source.stop();
    }
  });
});

test('a query that hangs past wait is dropped as hung; the set stays', async () => {
  await withConsul(async (c) => {
    c.set(WEB);
    const { source, rec } = started(consul(c, { waitSeconds: 1, timeoutMs: 200 }));
    try {
      await until('first set', () => rec.sets.length === 1);
      c.fault = 'hang';
      c.set(WEB); // same nodes, new index: the next query is the one that hangs
      await until('hung query given up', () => /no complete answer within/.test(source.status().lastError ?? ''), 15000);
      assert.equal(source.status().nodes, 2);
      assert.equal(source.status().stale, true);
      c.fault = null;
      c.set([WEB[1]]);
      await until('recovered', () => rec.sets.length === 2, 15000);
      assert.deepEqual(rec.latest(), ['127.0.1.2:8002/1']);
    } finally {
      await source.stop();
    }
  });
});

test('a body that is not JSON keeps the last set and the index it was asked with', async () => {
  await withConsul(async (c) => {
    c.set(WEB, 40);
    const { source, rec } = started(consul(c));
    try {
      await until('blocking on 40', () => c.held() === 1);
      c.fault = 'garbage';
      c.set(WEB, 41);
      await until('refused', () => /not JSON/.test(source.status().lastError ?? ''));
      await until('asked again', () => c.requests.length >= 4);
      assert.equal(c.requests[3].url.searchParams.get('index'), '40', 'a broken answer does not move the index');
      assert.equal(rec.sets.length, 1);
      assert.equal(source.status().nodes, 2);
    } finally {
      await source.stop();
    }
  });
});

test('an empty list (every instance failing its checks) keeps the last set', async () => {
  await withConsul(async (c) => {
    c.set(WEB);
    const { source, rec } = started(consul(c));
    try {
      await until('first set', () => rec.sets.length === 1);
      c.set(WEB.map((i) => ({ ...i, health: 'critical' as const })));
      await until('empty seen', () => /no nodes/.test(source.status().lastError ?? ''));
      assert.equal(rec.sets.length, 1);
      assert.equal(source.status().nodes, 2);
      // It still blocks on the new index: an empty answer is a valid answer, only not one to serve.
      await until('blocking again', () => c.held() === 1 && last(c).get('index') === String(c.index));
    } finally {
      await source.stop();
    }
  });
});

test('stop() ends a blocked query at once and schedules nothing', async () => {
  await withConsul(async (c) => {
    c.set(WEB);
    const { source, rec } = started(consul(c, { waitSeconds: 600 }));
    await until('blocking', () => rec.sets.length === 1 && c.held() === 1);
    await source.stop();
    await until('connection closed', () => c.held() === 0);
    const n = c.requests.length;
    c.set([WEB[0]]);
    assert.equal(c.requests.length, n);
    assert.equal(rec.sets.length, 1);
  });
});

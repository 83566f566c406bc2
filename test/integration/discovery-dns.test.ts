import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createDiscoverySource, parseDiscoveryConfig } from '../../src/discovery/index.js';
import { startDnsmasq, type TestDnsmasq } from '../helpers/dnsmasq.js';
import { started, until } from '../helpers/discovery.js';

/**
 * The DNS source against a real dnsmasq on loopback: A, AAAA and SRV answers, changes followed (hosts file re-read on
 * SIGHUP; SRV records live on dnsmasq's command line, so changing them means a restart on the same port), and every
 * failure keeping the last set: NXDOMAIN, an empty answer, a server that is killed. TTL floor and ceiling are checked
 * through dnsmasq's query log.
 */

const servers: TestDnsmasq[] = [];
after(async () => {
  for (const s of servers) await s.stop();
});

async function dnsmasq(hosts: string, opts: { srv?: string[]; ttl?: number } = {}): Promise<TestDnsmasq> {
  const s = await startDnsmasq({ hosts, ...opts });
  servers.push(s);
  return s;
}

function dns(server: TestDnsmasq, extra: Record<string, unknown>) {
  return (logger: Parameters<typeof createDiscoverySource>[1]) =>
    createDiscoverySource(parseDiscoveryConfig({ type: 'dns', servers: [server.server], minTtlSeconds: 0.05, retrySeconds: 0.05, timeoutMs: 300, ...extra }), logger);
}

test('A records become nodes on the configured port, and a changed record set is followed', async () => {
  const ns = await dnsmasq('127.0.0.11 api.test\n127.0.0.12 api.test\n');
  const { source, rec } = started(dns(ns, { name: 'api.test', port: 8080 }));
  try {
    await until('first set', () => rec.sets.length === 1);
    assert.deepEqual(rec.latest(), ['127.0.0.11:8080/1', '127.0.0.12:8080/1']);
    await ns.setHosts('127.0.0.12 api.test\n127.0.0.13 api.test\n');
    await until('second set', () => rec.sets.length === 2);
    assert.deepEqual(rec.latest(), ['127.0.0.12:8080/1', '127.0.0.13:8080/1']);
    const s = source.status();
    assert.equal(s.source, 'dns:api.test/A');
    assert.equal(s.nodes, 2);
    assert.equal(s.updates, 2);
    assert.equal(s.stale, false);
    assert.equal(s.lastError, null);
  } finally {
    await source.stop();
  }
});

test('an unchanged answer is not handed on again, whatever the record order', async () => {
  const ns = await dnsmasq('127.0.0.11 same.test\n127.0.0.12 same.test\n127.0.0.13 same.test\n');
  const { source, rec } = started(dns(ns, { name: 'same.test', port: 80, maxTtlSeconds: 0.05 }));
  try {
    await until('first set', () => rec.sets.length === 1);
    // dnsmasq rotates the order of answers; each re-resolution is a fresh answer.
    await until('several re-resolutions', () => ns.queries('same.test', 'A') >= 6);
    assert.equal(rec.sets.length, 1);
    assert.equal(source.status().updates, 1);
  } finally {
    await source.stop();
  }
});

test('AAAA and A+AAAA', async () => {
  const ns = await dnsmasq('127.0.0.21 dual.test\n::1 dual.test\n');
  const v6 = started(dns(ns, { name: 'dual.test', recordType: 'AAAA', port: 9000 }));
  const both = started(dns(ns, { name: 'dual.test', recordType: 'A+AAAA', port: 9000, weight: 3 }));
  try {
    await until('AAAA set', () => v6.rec.sets.length === 1);
    await until('A+AAAA set', () => both.rec.sets.length === 1);
    assert.deepEqual(v6.rec.latest(), ['[::1]:9000/1']);
    assert.deepEqual(both.rec.latest(), ['127.0.0.21:9000/3', '[::1]:9000/3']);
  } finally {
    await v6.source.stop();
    await both.source.stop();
  }
});

test('NXDOMAIN and an empty answer keep the last set, count errors and log once per change of state', async () => {
  const ns = await dnsmasq('127.0.0.31 gone.test\n127.0.0.32 gone.test\n');
  const { source, rec } = started(dns(ns, { name: 'gone.test', port: 8080 }));
  try {
    await until('first set', () => rec.sets.length === 1);
    await ns.setHosts('127.0.0.99 other.test\n'); // gone.test is now NXDOMAIN
    await until('several failed resolutions', () => source.status().errors >= 3);
    let s = source.status();
    assert.match(s.lastError!, /NXDOMAIN/);
    assert.equal(s.stale, true);
    assert.equal(s.nodes, 2);
    assert.equal(rec.sets.length, 1, 'the empty answer must not reach the owner');
    assert.equal(rec.logged('keeping the last good node set').length, 1, 'one warning for one state, not one per attempt');

    await ns.setHosts('::1 gone.test\n'); // the name exists but has no A record: NOERROR with no answer
    await until('the empty answer is seen', () => /no A record/.test(source.status().lastError ?? ''));
    s = source.status();
    assert.equal(s.nodes, 2);
    assert.equal(rec.sets.length, 1);
    assert.equal(rec.logged('keeping the last good node set').length, 2);

    await ns.setHosts('127.0.0.33 gone.test\n');
    await until('recovered', () => rec.sets.length === 2);
    assert.deepEqual(rec.latest(), ['127.0.0.33:8080/1']);
    s = source.status();
    assert.equal(s.stale, false);
    assert.equal(s.lastError, null);
    assert.equal(rec.logged('answers again').length, 1);
  } finally {
    await source.stop();
  }
});

test('a killed server keeps the last set and reports stale; the set follows again when it is back', async () => {
  const ns = await dnsmasq('127.0.0.41 down.test\n');
  const { source, rec } = started(dns(ns, { name: 'down.test', port: 8080 }));
  try {
    await until('first set', () => rec.sets.length === 1);
    await ns.kill();
    await until('failures counted', () => source.status().errors >= 2);
    const s = source.status();
    assert.equal(s.stale, true);
    assert.equal(s.nodes, 1);
    assert.match(s.lastError!, /no answer within 300 ms|ECONNREFUSED/);
    assert.ok(s.lastSuccessAt !== null);
    assert.equal(rec.sets.length, 1);
    await ns.start({ hosts: '127.0.0.42 down.test\n' });
    await until('followed after restart', () => rec.sets.length === 2, 15000);
    assert.deepEqual(rec.latest(), ['127.0.0.42:8080/1']);
    assert.equal(source.status().stale, false);
  } finally {
    await source.stop();
  }
});

test('SRV: only the lowest priority group, port and weight from the records, targets resolved to addresses', async () => {
  const ns = await dnsmasq('127.0.0.51 a.test\n127.0.0.52 b.test\n127.0.0.53 c.test\n', {
    srv: ['_http._tcp.svc.test,a.test,8081,10,5', '_http._tcp.svc.test,b.test,8082,10,0', '_http._tcp.svc.test,c.test,8083,20,50'],
  });
  const { source, rec } = started(dns(ns, { name: '_http._tcp.svc.test', recordType: 'SRV' }));
  try {
    await until('first set', () => rec.sets.length === 1);
    // c.test is in the backup group (priority 20); weight 0 ("rarely") becomes the smallest live weight, 1.
    assert.deepEqual(rec.latest(), ['127.0.0.51:8081/5', '127.0.0.52:8082/1']);
    assert.equal(source.status().source, 'dns:_http._tcp.svc.test/SRV');

    // The primary group disappears: the backup group is what is left.
    await ns.kill();
    await ns.start({ srv: ['_http._tcp.svc.test,c.test,8083,20,50'] });
    await until('backup group in use', () => rec.sets.length === 2, 15000);
    assert.deepEqual(rec.latest(), ['127.0.0.53:8083/50']);

    // A target whose name no longer resolves is left out; when none resolves the last set stays.
    await ns.setHosts('127.0.0.51 a.test\n');
    await until('no target resolves', () => /no SRV target/.test(source.status().lastError ?? ''));
    assert.deepEqual(rec.latest(), ['127.0.0.53:8083/50']);
    assert.equal(source.status().stale, true);
  } finally {
    await source.stop();
  }
});

test('TTL ceiling: a record with a long TTL is still re-resolved every maxTtlSeconds', async () => {
  const ns = await dnsmasq('127.0.0.61 long.test\n', { ttl: 3600 });
  const { source, rec } = started(dns(ns, { name: 'long.test', port: 8080, maxTtlSeconds: 0.2 }));
  try {
    await until('first set', () => rec.sets.length === 1);
    await ns.setHosts('127.0.0.62 long.test\n');
    // Without the ceiling the next look would be an hour away.
    await until('change followed', () => rec.sets.length === 2);
    assert.deepEqual(rec.latest(), ['127.0.0.62:8080/1']);
  } finally {
    await source.stop();
  }
});

test('TTL floor: a record with a 1 s TTL is not re-resolved before minTtlSeconds', async () => {
  const ns = await dnsmasq('127.0.0.71 floor.test\n127.0.0.72 pace.test\n', { ttl: 1 });
  const floored = started(dns(ns, { name: 'floor.test', port: 8080, minTtlSeconds: 3600, maxTtlSeconds: 7200 }));
  // The pace source re-resolves every 0.1 s: it is the clock of this test.
  const pace = started(dns(ns, { name: 'pace.test', port: 8080, maxTtlSeconds: 0.1 }));
  try {
    await until('floored source resolved once', () => floored.rec.sets.length === 1);
    // 25 paced queries take 2.5 s or more, past the 1 s TTL twice over.
    await until('pace source re-resolved many times', () => ns.queries('pace.test', 'A') >= 25, 20000);
    assert.equal(ns.queries('floor.test', 'A'), 1);
  } finally {
    await floored.source.stop();
    await pace.source.stop();
  }
});

test('stop() leaves no timer or socket behind: nothing is queried after it', async () => {
  const ns = await dnsmasq('127.0.0.81 stop.test\n127.0.0.82 pace2.test\n');
  const { source, rec } = started(dns(ns, { name: 'stop.test', port: 8080, maxTtlSeconds: 0.05 }));
  const pace = started(dns(ns, { name: 'pace2.test', port: 8080, maxTtlSeconds: 0.05 }));
  try {
    await until('first set', () => rec.sets.length === 1);
    await source.stop();
    const after = ns.queries('stop.test');
    await until('pace source queried 10 more times', () => ns.queries('pace2.test', 'A') >= 10);
    assert.equal(ns.queries('stop.test'), after);
  } finally {
    await pace.source.stop();
  }
});

test('an answer too large for UDP (truncated) is asked again over TCP and comes whole', async () => {
  const hosts = Array.from({ length: 150 }, (_, i) => `127.0.${1 + (i >> 8)}.${i & 255} big.test`).join('\n') + '\n';
  const ns = await dnsmasq(hosts);
  const { source, rec } = started(dns(ns, { name: 'big.test', port: 8080 }));
  try {
    await until('first set', () => rec.sets.length === 1);
    // 150 A records are ~2.4 kB: past dnsmasq's 1232-byte EDNS limit for UDP.
    assert.equal(rec.sets[0].length, 150);
  } finally {
    await source.stop();
  }
});

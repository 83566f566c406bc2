import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Gateway } from '../../src/control/gateway.js';
import { writeConfig } from '../helpers/gateway.js';
import type { TestUpstream } from '../helpers/upstream.js';
import { startGraphqlUpstream } from '../helpers/graphql-upstream.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { send, type HttpResult } from '../helpers/http.js';
import { scrape } from '../helpers/prometheus.js';
import { eventually } from '../helpers/collector.js';

/**
 * persisted.store: redis with two gateway nodes (two Gateway instances, one worker each) and a real redis-server: a
 * hash registered on one node runs by hash alone on the other; with Redis stopped, hashes held in memory keep running,
 * an unknown hash gets the usual PersistedQueryNotFound (the client resends the query, which then runs), the outage
 * is logged once per worker and counted, and sharing resumes when Redis is back.
 */
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

let up: TestUpstream;
let redis: TestRedis;
const nodes: { gateway: Gateway; port: number; adminUrl: string; lines: { level: number; msg: string }[] }[] = [];

async function startNode(): Promise<(typeof nodes)[number]> {
  const lines: { level: number; msg: string }[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  const configFile = writeConfig(`
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
redis: { url: "redis://127.0.0.1:${redis.port}", commandTimeoutMs: 200 }
upstreams:
  gql: { nodes: [{ url: ${up.url} }] }
routes:
  - name: apq
    match: { prefix: /gq }
    upstream: gql
    policies:
      graphql: { persisted: { mode: apq, store: redis, ttlSeconds: 60 } }
`);
  const gateway = new Gateway({ configFile, workers: 1, logger: pino({ level: 'info' }, sink) });
  await gateway.start();
  return { gateway, port: gateway.port, adminUrl: `http://127.0.0.1:${gateway.admin!.port}`, lines };
}

before(async () => {
  up = await startGraphqlUpstream();
  redis = await startRedis();
  nodes.push(await startNode(), await startNode());
  // both workers connected before the first request
  for (const n of nodes) await eventually(async () => (await scrape(n.adminUrl)).sum('nanogate_graphql_apq_redis_connected_workers', { route: 'apq' }) === 1);
});
after(async () => {
  for (const n of nodes) await n.gateway.stop();
  await redis.stop();
  await up.close();
});

function post(node: number, body: unknown): Promise<HttpResult> {
  return send(nodes[node].port, { method: 'POST', path: '/gq', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}
const ext = (q: string) => ({ persistedQuery: { version: 1, sha256Hash: sha(q) } });
const notFound = (r: HttpResult) => r.status === 200 && JSON.parse(r.text).errors?.[0]?.extensions?.code === 'PERSISTED_QUERY_NOT_FOUND';

test('a hash registered on one node runs by hash alone on the other', async () => {
  const q = '{ me { id name } }';
  assert.ok(notFound(await post(1, { extensions: ext(q) })), 'unknown everywhere at first');
  const reg = await post(0, { query: q, extensions: ext(q) });
  assert.deepEqual(JSON.parse(reg.text).data, { me: { id: '1', name: 'user1' } });
  // the registration reaches Redis in the background: node 1 finds it there once written
  await eventually(async () => (await redis.command(`EXISTS nanogate:apq:${sha(q)}`)).startsWith(':1'));
  const other = await post(1, { extensions: ext(q) });
  assert.deepEqual(JSON.parse(other.text).data, { me: { id: '1', name: 'user1' } }, other.text);
  assert.equal(JSON.parse(up.received.at(-1)!.body.toString()).query, q, 'the upstream got the text');
  const s = await scrape(nodes[1].adminUrl);
  assert.equal(s.sum('nanogate_graphql_apq_redis_lookups_total', { route: 'apq', result: 'hit' }), 1);
  // a GET by hash on node 1 now comes from its own memory, without asking Redis again
  const g = await send(nodes[1].port, { path: `/gq?${new URLSearchParams({ extensions: JSON.stringify(ext(q)) })}` });
  assert.deepEqual(JSON.parse(g.text).data, { me: { id: '1', name: 'user1' } });
  assert.equal((await scrape(nodes[1].adminUrl)).sum('nanogate_graphql_apq_redis_lookups_total', { route: 'apq', result: 'hit' }), 1);
});

test('Redis down: hashes held in memory keep running, new ones register in memory, nothing fails; back: shared again', async () => {
  const held = '{ me { id } }';
  await post(0, { query: held, extensions: ext(held) });
  await redis.stop();
  for (const n of nodes) await eventually(async () => (await scrape(n.adminUrl)).sum('nanogate_graphql_apq_redis_connected_workers', { route: 'apq' }) === 0);
  const r = await post(0, { extensions: ext(held) });
  assert.deepEqual(JSON.parse(r.text).data, { me: { id: '1' } }, 'registered in memory: unaffected');
  // a hash node 1 has never seen: not found (not a failure), then the client's resend with the query runs
  assert.ok(notFound(await post(1, { extensions: ext(held) })));
  const resend = await post(1, { query: held, extensions: ext(held) });
  assert.equal(resend.status, 200);
  assert.deepEqual(JSON.parse((await post(1, { extensions: ext(held) })).text).data, { me: { id: '1' } });
  for (const n of nodes) {
    const s = await scrape(n.adminUrl);
    assert.ok(s.sum('nanogate_graphql_apq_redis_outages_total', { route: 'apq' }) >= 1);
    assert.equal(n.lines.filter((l) => /graphql apq: redis unreachable/.test(l.msg)).length, 1, 'one line per outage');
  }
  assert.ok((await scrape(nodes[1].adminUrl)).sum('nanogate_graphql_apq_redis_lookups_total', { route: 'apq', result: 'skipped' }) >= 1);

  await redis.start();
  for (const n of nodes) await eventually(async () => (await scrape(n.adminUrl)).sum('nanogate_graphql_apq_redis_connected_workers', { route: 'apq' }) === 1, 10_000);
  assert.ok(nodes[0].lines.some((l) => /reachable again/.test(l.msg)));
  const q = '{ user(id: "3") { name } }';
  await post(1, { query: q, extensions: ext(q) });
  await eventually(async () => (await redis.command(`EXISTS nanogate:apq:${sha(q)}`)).startsWith(':1'));
  assert.deepEqual(JSON.parse((await post(0, { extensions: ext(q) })).text).data, { user: { name: 'user3' } });
});

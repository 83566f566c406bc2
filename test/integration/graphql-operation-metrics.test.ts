import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import type { TestUpstream } from '../helpers/upstream.js';
import { startGraphqlUpstream } from '../helpers/graphql-upstream.js';
import { send } from '../helpers/http.js';
import { scrape } from '../helpers/prometheus.js';

/**
 * Operation metrics by name through a real gateway (two workers sharing the region) to a real GraphQL server:
 * requests, refusals by code and cost per operation name, with the label set bounded to operationMetrics names plus
 * _other however many names clients invent.
 */
let up: TestUpstream;
let gw: TestGateway;

before(async () => {
  up = await startGraphqlUpstream();
  gw = await startGateway(
    `
upstreams:
  gql: { nodes: [{ url: ${up.url} }] }
routes:
  - name: ops
    match: { prefix: /ops }
    upstream: gql
    policies:
      graphql: { operationMetrics: 5, limits: { depth: 2 } }
  - name: quiet
    match: { prefix: /quiet }
    upstream: gql
    policies:
      graphql: { operationMetrics: 0 }
`,
    { workers: 2 },
  );
});
after(async () => {
  await gw.stop();
  await up.close();
});

const post = (path: string, query: string) => send(gw.port, { method: 'POST', path, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }) });

test('requests, refusals by code and cost are counted per operation name', async () => {
  for (let i = 0; i < 3; i++) assert.equal((await post('/ops', 'query Users { users(first: 4) { id } }')).status, 200);
  assert.equal((await post('/ops', 'query Deep { me { friends { friends { id } } } }')).status, 400);
  assert.equal((await post('/ops', '{ me { id } }')).status, 200);
  const s = await scrape(gw.adminUrl);
  assert.equal(s.types.get('nanogate_graphql_operations_total'), 'counter');
  assert.equal(s.sum('nanogate_graphql_operations_total', { route: 'ops', operation: 'Users' }), 3);
  // users(first: 4) { id }: 4 x (1 + 0) = 4, three times
  assert.equal(s.sum('nanogate_graphql_operation_cost_total', { route: 'ops', operation: 'Users' }), 12);
  assert.equal(s.sum('nanogate_graphql_operation_errors_total', { route: 'ops', operation: 'Deep', code: 'NG_ERR_GRAPHQL_DEPTH' }), 1);
  assert.equal(s.sum('nanogate_graphql_operation_cost_total', { route: 'ops', operation: 'Deep' }), 0, 'a refused operation costs nothing');
  assert.equal(s.sum('nanogate_graphql_operations_total', { route: 'ops', operation: '_anonymous' }), 1);
  assert.equal(s.find('nanogate_graphql_operations_total', { route: 'quiet' }).length, 0);
});

test('200 distinct operation names do not grow the series beyond operationMetrics + 1 (_other)', async () => {
  const before = await scrape(gw.adminUrl);
  const total0 = before.sum('nanogate_graphql_operations_total', { route: 'ops' });
  for (let i = 0; i < 200; i++) assert.equal((await post('/ops', `query Op${i} { me { id } }`)).status, 200);
  const s = await scrape(gw.adminUrl);
  const named = s.find('nanogate_graphql_operations_total', { route: 'ops' }).map((x) => x.labels.operation);
  const own = named.filter((n) => n !== '_other' && n !== '_anonymous');
  assert.equal(own.length, 5, `5 names of their own: ${own.join(', ')}`);
  assert.ok(named.includes('_other'));
  assert.equal(new Set(s.find('nanogate_graphql_operation_cost_total', { route: 'ops' }).map((x) => x.labels.operation)).size, named.length);
  // every request is counted somewhere: Users, Deep and three Op names had the slots, the rest went to _other
  assert.equal(s.sum('nanogate_graphql_operations_total', { route: 'ops' }) - total0, 200);
  assert.equal(s.sum('nanogate_graphql_operations_total', { route: 'ops', operation: '_other' }), 197);
});

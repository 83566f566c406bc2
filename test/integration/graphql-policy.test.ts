import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import type { TestUpstream } from '../helpers/upstream.js';
import { startGraphqlUpstream, TEST_SDL } from '../helpers/graphql-upstream.js';
import { assertNothingInternal, assertProblem, send, type HttpResult } from '../helpers/http.js';
import { signToken } from '../helpers/idp.js';
import { eventually } from '../helpers/collector.js';

/**
 * The graphql policy through a real gateway to a real GraphQL server (graphql-js over node:http): every limit with
 * its code and measured value, fragments and variables, GET and both POST types, batches, malformed documents,
 * introspection per plan, field authorization with JWT consumers, automatic persisted queries, an allowlist,
 * cost-based rate limiting and the access log's operation fields. A refused request never reaches the upstream.
 */
const SECRET = 'a-shared-secret-of-at-least-32-bytes!';
const hs = { privateKey: new TextEncoder().encode(SECRET), alg: 'HS256' };
const ISS = 'https://issuer.test';
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const LISTED = '{ me { id name } }';

let up: TestUpstream;
let gw: TestGateway;
let logFile: string;
let gold: string;
let basic: string;

before(async () => {
  up = await startGraphqlUpstream();
  const dir = mkdtempSync(join(tmpdir(), 'nanogate-graphql-'));
  const sdl = join(dir, 'schema.graphql');
  writeFileSync(sdl, TEST_SDL);
  const list = join(dir, 'allowlist.json');
  writeFileSync(list, JSON.stringify({ format: 'apollo-persisted-query-manifest', version: 1, operations: [{ id: sha(LISTED), body: LISTED, name: 'Me', type: 'query' }] }));
  logFile = join(dir, 'access.log');
  gw = await startGateway(`
observability:
  accessLog: { destination: { type: file, path: ${logFile} } }
consumers:
  - { id: goldie, plan: gold, jwt: [{ issuer: "${ISS}", subject: g }], scopes: [users:email] }
  - { id: basil, plan: basic, jwt: [{ issuer: "${ISS}", subject: b }] }
upstreams:
  gql: { nodes: [{ url: ${up.url} }] }
routes:
  - name: schema
    match: { prefix: /gq }
    upstream: gql
    policies:
      auth: { methods: { jwt: { keys: [{ alg: HS256, secret: "${SECRET}" }] } }, anonymous: true }
      accessLog: { format: legacy }
      graphql:
        schema: ${sdl}
        limits: { depth: 4, aliases: 3, rootFields: 3, cost: 60 }
        cost: { fields: { Query.search: 5 } }
        introspection: { allowed: true, plans: [gold] }
        fieldAuth: { rules: { User.email: users:email } }
        maxTokens: 200
  - name: bare
    match: { prefix: /bare }
    upstream: gql
    policies:
      graphql:
        limits: { depth: 3 }
        persisted: { mode: apq }
  - name: listed
    match: { prefix: /listed }
    upstream: gql
    policies:
      graphql: { persisted: { mode: allowlist, allowlist: ${list} } }
  - name: priced
    match: { prefix: /priced }
    upstream: gql
    policies:
      graphql: { schema: ${sdl} }
      rateLimit:
        cost: graphql
        headers: { legacy: false }
        limits: [{ key: ip, rate: 1, per: hour, burst: 20 }]
`);
  gold = await signToken({ iss: ISS, sub: 'g' }, hs);
  basic = await signToken({ iss: ISS, sub: 'b' }, hs);
});
after(async () => {
  await gw.stop();
  await up.close();
});

function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<HttpResult> {
  return send(gw.port, { method: 'POST', path, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}
function get(path: string, params: Record<string, string>, headers: Record<string, string> = {}): Promise<HttpResult> {
  return send(gw.port, { path: `${path}?${new URLSearchParams(params)}`, headers });
}
/** Asserts a refusal and that the upstream saw nothing of it. */
async function refused(p: Promise<HttpResult>, status: number, code: string): Promise<Record<string, unknown>> {
  const before = up.received.length;
  const r = await p;
  const body = assertProblem(r, status, code);
  assert.equal(up.received.length, before, 'a refused operation never reaches the upstream');
  return body;
}

test('a query within every limit runs: GET, POST application/json and application/graphql', async () => {
  const q = '{ me { id name friends(first: 2) { name } } }';
  const a = await get('/gq', { query: q });
  assert.equal(a.status, 200, a.text);
  assert.deepEqual(JSON.parse(a.text).data.me.friends, [{ name: 'user1' }, { name: 'user2' }]);
  const b = await post('/gq', { query: 'query Who($id: ID!) { user(id: $id) { name } }', variables: { id: '7' }, operationName: 'Who' });
  assert.equal(JSON.parse(b.text).data.user.name, 'user7');
  const c = await send(gw.port, { method: 'POST', path: '/gq', headers: { 'content-type': 'application/graphql' }, body: '{ user(id: "3") { id } }' });
  assert.deepEqual(JSON.parse(c.text), { data: { user: { id: '3' } } });
});

test('each limit is refused with its own code, naming the limit, the measured value and the maximum', async () => {
  const depth = await refused(post('/gq', { query: '{ me { friends { friends { friends { id } } } } }' }), 400, 'NG_ERR_GRAPHQL_DEPTH');
  assert.deepEqual([depth.limit, depth.value, depth.max], ['depth', 5, 4]);
  const aliases = await refused(post('/gq', { query: '{ a: me { id } b: me { id } c: me { id } d: me { id } }' }), 400, 'NG_ERR_GRAPHQL_ALIASES');
  assert.deepEqual([aliases.limit, aliases.value, aliases.max], ['aliases', 4, 3]);
  const roots = await refused(post('/gq', { query: '{ me { id } users(first: 1) { id } user(id: "1") { id } search(term: "u", limit: 1) { id } }' }), 400, 'NG_ERR_GRAPHQL_ROOT_FIELDS');
  assert.deepEqual([roots.limit, roots.value, roots.max], ['rootFields', 4, 3]);
  // users(first: 20) { friends(first: 2) { id } }: 20 x (1 + 2 x (1 + 0)) = 60 passes; 21 does not
  assert.equal((await post('/gq', { query: '{ users(first: 20) { friends(first: 2) { id } } }' })).status, 200);
  const cost = await refused(post('/gq', { query: '{ users(first: 21) { friends(first: 2) { id } } }' }), 400, 'NG_ERR_GRAPHQL_COST');
  assert.deepEqual([cost.limit, cost.value, cost.max], ['cost', 63, 60]);
  // a configured field cost: search costs 5 per item, with the list size of its limit argument
  assert.equal((await post('/gq', { query: '{ search(term: "u", limit: 12) { id } }' })).status, 200, '12 x 5 = 60');
  const priced = await refused(post('/gq', { query: '{ search(term: "u", limit: 13) { id } }' }), 400, 'NG_ERR_GRAPHQL_COST');
  assert.equal(priced.value, 65);
});

test('depth and cost follow fragment spreads and inline fragments; list sizes come from variables; cycles are refused', async () => {
  const viaFragments = 'query { me { ...F } } fragment F on User { friends { ...G } } fragment G on User { friends { ... on User { friends { id } } } }';
  const d = await refused(post('/gq', { query: viaFragments }), 400, 'NG_ERR_GRAPHQL_DEPTH');
  assert.equal(d.value, 5);
  const q = 'query P($n: Int) { users(first: $n) { friends(first: 2) { id } } }';
  assert.equal((await post('/gq', { query: q, variables: { n: 20 } })).status, 200);
  const c = await refused(post('/gq', { query: q, variables: { n: 30 } }), 400, 'NG_ERR_GRAPHQL_COST');
  assert.equal(c.value, 90);
  // a variable left unset takes the default list size (10): 10 x 3 = 30
  assert.equal((await post('/gq', { query: q })).status, 200);
  const cycle = await refused(post('/gq', { query: '{ me { ...A } } fragment A on User { friends { ...B } } fragment B on User { friends { ...A } }' }), 400, 'NG_ERR_GRAPHQL_INVALID');
  assert.match(String(cycle.detail), /Cannot spread fragment "A" within itself/);
});

test('malformed requests: parser message without a stack, token limit, bad JSON, batches, unknown operation, mutation over GET', async () => {
  const syntax = await refused(post('/gq', { query: '{ me { id ' }), 400, 'NG_ERR_GRAPHQL_SYNTAX');
  assert.match(String(syntax.detail), /^Syntax Error: Expected Name, found <EOF>\. \(line 1, column 11\)$/);
  const tokens = await refused(post('/gq', { query: `{ ${'me { id } '.repeat(60)} }` }), 400, 'NG_ERR_GRAPHQL_TOO_MANY_TOKENS');
  assert.match(String(tokens.detail), /more than 200 tokens/);
  await refused(send(gw.port, { method: 'POST', path: '/gq', headers: { 'content-type': 'application/json' }, body: '{"query": "{ me { id } }"' }), 400, 'NG_ERR_GRAPHQL_BAD_REQUEST');
  await refused(post('/gq', { query: '{ me { id } }', variables: [1] }), 400, 'NG_ERR_GRAPHQL_BAD_REQUEST');
  await refused(send(gw.port, { method: 'POST', path: '/gq', headers: { 'content-type': 'text/plain' }, body: '{ me { id } }' }), 400, 'NG_ERR_GRAPHQL_BAD_REQUEST');
  const batch = await refused(post('/gq', [{ query: '{ me { id } }' }, { query: '{ me { name } }' }]), 400, 'NG_ERR_GRAPHQL_BATCH');
  assert.match(String(batch.detail), /batch of 2 operations/);
  await refused(post('/gq', { query: 'query A { me { id } } query B { me { name } }', operationName: 'C' }), 400, 'NG_ERR_GRAPHQL_BAD_REQUEST');
  await refused(post('/gq', { query: 'query A { me { id } } query B { me { name } }' }), 400, 'NG_ERR_GRAPHQL_BAD_REQUEST');
  await refused(get('/gq', { query: 'mutation { rename(name: "x") { id } }' }), 405, 'NG_ERR_GRAPHQL_MUTATION_GET');
  assert.equal((await post('/gq', { query: 'mutation { rename(name: "x") { name } }' })).status, 200);
  // the schema's own validation: an unknown field
  const unknown = await refused(post('/gq', { query: '{ me { password } }' }), 400, 'NG_ERR_GRAPHQL_INVALID');
  assertNothingInternal(JSON.stringify(unknown));
});

test('introspection: allowed for a consumer on the gold plan, refused for basic and anonymous callers', async () => {
  const q = '{ __schema { queryType { name } } }';
  const ok = await post('/gq', { query: q }, { authorization: `Bearer ${gold}` });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(JSON.parse(ok.text).data.__schema.queryType.name, 'Query');
  await refused(post('/gq', { query: q }, { authorization: `Bearer ${basic}` }), 403, 'NG_ERR_GRAPHQL_INTROSPECTION');
  await refused(post('/gq', { query: q }), 403, 'NG_ERR_GRAPHQL_INTROSPECTION');
  // __typename is no introspection
  assert.equal((await post('/gq', { query: '{ me { __typename } }' })).status, 200);
});

test('field authorization: User.email needs the users:email scope, wherever the field is reached', async () => {
  const q = '{ me { name friends(first: 1) { ...E } } } fragment E on User { email }';
  const ok = await post('/gq', { query: q }, { authorization: `Bearer ${gold}` });
  assert.equal(JSON.parse(ok.text).data.me.friends[0].email, 'user1@example.test');
  const no = await refused(post('/gq', { query: q }, { authorization: `Bearer ${basic}` }), 403, 'NG_ERR_GRAPHQL_FIELD_FORBIDDEN');
  assert.equal(no.fields, 'User.email');
  await refused(get('/gq', { query: '{ user(id: "2") { email } }' }), 403, 'NG_ERR_GRAPHQL_FIELD_FORBIDDEN');
});

test('automatic persisted queries: not found, registered with the query, then run by hash alone; a wrong hash is refused', async () => {
  const q = '{ user(id: "9") { name } }';
  const ext = { persistedQuery: { version: 1, sha256Hash: sha(q) } };
  const miss = await post('/bare', { extensions: ext });
  assert.equal(miss.status, 200);
  assert.deepEqual(JSON.parse(miss.text), { errors: [{ message: 'PersistedQueryNotFound', extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' } }] });
  const full = await post('/bare', { query: q, extensions: ext });
  assert.equal(JSON.parse(full.text).data.user.name, 'user9');
  const byHash = await post('/bare', { extensions: ext });
  assert.equal(JSON.parse(byHash.text).data.user.name, 'user9', 'the gateway filled in the query for an upstream without APQ');
  assert.equal(JSON.parse(up.received.at(-1)!.body.toString()).query, q);
  const viaGet = await get('/bare', { extensions: JSON.stringify(ext) });
  assert.equal(JSON.parse(viaGet.text).data.user.name, 'user9');
  await refused(post('/bare', { query: '{ me { id } }', extensions: ext }), 400, 'NG_ERR_GRAPHQL_PERSISTED_HASH');
  await refused(post('/bare', { extensions: { persistedQuery: { version: 1, sha256Hash: 'abc' } } }), 400, 'NG_ERR_GRAPHQL_PERSISTED_HASH');
  // a query over the limits is not registered: its hash stays unknown
  const deep = '{ me { friends { friends { id } } } }';
  await refused(post('/bare', { query: deep, extensions: { persistedQuery: { version: 1, sha256Hash: sha(deep) } } }), 400, 'NG_ERR_GRAPHQL_DEPTH');
  const after = await post('/bare', { extensions: { persistedQuery: { version: 1, sha256Hash: sha(deep) } } });
  assert.equal(JSON.parse(after.text).errors[0].message, 'PersistedQueryNotFound');
});

test('allowlist: only the listed operation runs, by hash or by its text', async () => {
  const byHash = await post('/listed', { extensions: { persistedQuery: { version: 1, sha256Hash: sha(LISTED) } } });
  assert.equal(JSON.parse(byHash.text).data.me.name, 'user1');
  assert.equal((await post('/listed', { query: LISTED })).status, 200);
  await refused(post('/listed', { query: '{ me { id } }' }), 403, 'NG_ERR_GRAPHQL_NOT_ALLOWLISTED');
  await refused(post('/listed', { extensions: { persistedQuery: { version: 1, sha256Hash: sha('{ me { id } }') } } }), 403, 'NG_ERR_GRAPHQL_NOT_ALLOWLISTED');
});

test('rate limit by cost: a POST and a GET each take their operation cost from a bucket of 20', async () => {
  // users(first: 4) { id }: 4 x (1 + 0) = 4 tokens; and a cost-0 query still takes one
  const q = '{ users(first: 4) { id } }';
  const first = await post('/priced', { query: q });
  assert.equal(first.status, 200);
  assert.equal(first.headers['ratelimit-remaining'], '16');
  const second = await get('/priced', { query: q });
  assert.equal(second.headers['ratelimit-remaining'], '12');
  const one = await post('/priced', { query: '{ me { id } }' });
  assert.equal(one.headers['ratelimit-remaining'], '11', 'me { id } costs 1 (one object field)');
  const big = await refused(post('/priced', { query: '{ users(first: 12) { id } }' }), 429, 'NG_ERR_RATE_LIMITED');
  assert.equal(big.limit, 'limits[0]');
  // a refused operation took nothing: 11 tokens are left for one of cost 11
  const fits = await post('/priced', { query: '{ users(first: 11) { id } }' });
  assert.equal(fits.status, 200);
  assert.equal(fits.headers['ratelimit-remaining'], '0');
});

test('the access log line names the operation, its type, depth, cost and fields', async () => {
  const r = await post('/gq', { query: 'query Friends { me { name friends(first: 2) { id } } }', operationName: 'Friends' });
  const id = r.headers['x-request-id'] as string;
  const find = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((l) => l.reqId === id) : undefined);
  await eventually(() => find() !== undefined);
  assert.deepEqual(find().graphql, { operation: 'Friends', type: 'query', depth: 3, cost: 3, fieldCount: 4, fields: ['Query.me', 'User.name', 'User.friends', 'User.id'] });
});

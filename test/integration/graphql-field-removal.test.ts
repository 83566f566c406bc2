import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import type { TestUpstream } from '../helpers/upstream.js';
import { startGraphqlUpstream, TEST_SDL } from '../helpers/graphql-upstream.js';
import { assertProblem, send, type HttpResult } from '../helpers/http.js';
import { signToken } from '../helpers/idp.js';

/**
 * fieldAuth.mode: remove, through a real gateway to a real GraphQL server (graphql-js over node:http): the
 * unauthorized fields are taken out of the query the upstream executes (so its data never holds them), the response
 * gets one GraphQL error per removed field (path, message, extensions.code) next to the upstream's own errors, fragments
 * and variables left unused are dropped so that the upstream's validation passes, and an operation with nothing left
 * is still refused.
 */
const SECRET = 'a-shared-secret-of-at-least-32-bytes!';
const hs = { privateKey: new TextEncoder().encode(SECRET), alg: 'HS256' };
const ISS = 'https://issuer.test';

let up: TestUpstream;
let gw: TestGateway;
let gold: string;

before(async () => {
  up = await startGraphqlUpstream();
  const dir = mkdtempSync(join(tmpdir(), 'nanogate-graphql-remove-'));
  const sdl = join(dir, 'schema.graphql');
  writeFileSync(sdl, TEST_SDL);
  gw = await startGateway(`
consumers:
  - { id: goldie, plan: gold, jwt: [{ issuer: "${ISS}", subject: g }], scopes: [users:email] }
upstreams:
  gql: { nodes: [{ url: ${up.url} }] }
routes:
  - name: schema
    match: { prefix: /gq }
    upstream: gql
    policies:
      auth: { methods: { jwt: { keys: [{ alg: HS256, secret: "${SECRET}" }] } }, anonymous: true }
      graphql:
        schema: ${sdl}
        persisted: { mode: apq }
        fieldAuth: { mode: remove, rules: { User.email: users:email, Mutation.rename: users:write } }
  - name: bare
    match: { prefix: /bare }
    upstream: gql
    policies:
      graphql:
        fieldAuth: { mode: remove, rules: { "*.email": users:email } }
`);
  gold = await signToken({ iss: ISS, sub: 'g' }, hs);
});
after(async () => {
  await gw.stop();
  await up.close();
});

function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<HttpResult> {
  return send(gw.port, { method: 'POST', path, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}
function lastQuery(): string {
  const r = up.received[up.received.length - 1];
  if (r.method === 'GET') return new URL(r.url, 'http://x').searchParams.get('query')!;
  return JSON.parse(r.body.toString('utf8')).query;
}

test('an anonymous caller gets the data without User.email and one error per removed field, wherever it was reached', async () => {
  const q = 'query Me($n: Int) { me { id name email friends(first: $n) { ...E } } } fragment E on User { id email }';
  const r = await post('/gq', { query: q, variables: { n: 2 }, operationName: 'Me' });
  assert.equal(r.status, 200, r.text);
  const out = JSON.parse(r.text);
  assert.deepEqual(out.data, { me: { id: '1', name: 'user1', friends: [{ id: '1' }, { id: '2' }] } });
  assert.deepEqual(
    out.errors.map((e: { path: string[] }) => e.path),
    [
      ['me', 'email'],
      ['me', 'friends', 'email'],
    ],
  );
  for (const e of out.errors) {
    assert.equal(e.extensions.code, 'NG_ERR_GRAPHQL_FIELD_FORBIDDEN');
    assert.equal(e.extensions.field, 'User.email');
    assert.match(e.message, /may not read User\.email/);
  }
  assert.equal(r.headers['graphql-fields-removed'], '2');
  assert.doesNotMatch(lastQuery(), /email/, 'the upstream never saw the field');
  assert.match(r.text, /^\{"data"/, 'the upstream body is kept in its order, errors appended');
});

test('a caller with the scope gets everything, untouched; a GET loses the field the same way', async () => {
  const q = '{ me { name email } }';
  const ok = await post('/gq', { query: q }, { authorization: `Bearer ${gold}` });
  assert.equal(JSON.parse(ok.text).data.me.email, 'user1@example.test');
  assert.equal(ok.headers['graphql-fields-removed'], undefined);
  assert.equal(lastQuery(), q, 'an allowed query goes up byte for byte');
  const g = await send(gw.port, { path: `/gq?${new URLSearchParams({ query: '{ users(first: 2) { id email } }' })}` });
  const out = JSON.parse(g.text);
  assert.deepEqual(out.data, { users: [{ id: '1' }, { id: '2' }] });
  assert.deepEqual(out.errors[0].path, ['users', 'email']);
  assert.equal(new URL(up.received[up.received.length - 1].url, 'http://x').searchParams.getAll('query').length, 1);
});

test('a selection left empty goes with its parent, and an unused fragment and variable are dropped for the upstream', async () => {
  // friends selects only email through a fragment: friends, the fragment and $n all go; the upstream validates the rest
  const q = 'query Q($n: Int) { me { name friends(first: $n) { ...OnlyEmail } } } fragment OnlyEmail on User { email }';
  const r = await post('/gq', { query: q, variables: { n: 1 } });
  const out = JSON.parse(r.text);
  assert.equal(out.errors.length, 1, r.text);
  assert.deepEqual(out.data, { me: { name: 'user1' } });
  assert.deepEqual(out.errors[0].path, ['me', 'friends', 'email']);
  assert.doesNotMatch(lastQuery(), /OnlyEmail|\$n/);
});

test('the upstream errors stay, ours are added after them', async () => {
  // no schema on /bare: the gateway lets the unknown field through, the upstream's validation refuses it
  const r = await post('/bare', { query: '{ me { email name } nope }' });
  const out = JSON.parse(r.text);
  assert.equal(out.errors.length, 2, r.text);
  assert.match(out.errors[0].message, /nope/);
  assert.equal(out.errors[1].extensions.code, 'NG_ERR_GRAPHQL_FIELD_FORBIDDEN');
  const mutation = await post('/gq', { query: 'mutation { rename(name: "x") { name } }' });
  // the only root field is removed: nothing is left to run, the operation is refused as in refuse mode
  const p = assertProblem(mutation, 403, 'NG_ERR_GRAPHQL_FIELD_FORBIDDEN');
  assert.equal(p.fields, 'Mutation.rename');
});

test('without a schema, *.email is removed at any depth; an APQ hash registered with the query still runs by hash', async () => {
  const q = '{ users(first: 1) { id email friends(first: 1) { email name } } }';
  const r = await post('/bare', { query: q });
  const out = JSON.parse(r.text);
  assert.deepEqual(out.data, { users: [{ id: '1', friends: [{ name: 'user1' }] }] });
  assert.equal(out.errors.length, 2);
  const hash = createHash('sha256').update('{ me { id email } }').digest('hex');
  const ext = { persistedQuery: { version: 1, sha256Hash: hash } };
  const reg = await post('/gq', { query: '{ me { id email } }', extensions: ext });
  assert.deepEqual(JSON.parse(reg.text).data, { me: { id: '1' } });
  const byHash = await post('/gq', { extensions: ext }, { authorization: `Bearer ${gold}` });
  assert.deepEqual(JSON.parse(byHash.text).data, { me: { id: '1', email: 'user1@example.test' } }, 'the stored text is the full query');
});

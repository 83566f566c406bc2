import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { writeConfig } from '../helpers/gateway.js';

/** GraphQL configs that cannot work are refused by `nanogate validate` with the path and the reason. */
const dir = mkdtempSync(join(tmpdir(), 'nanogate-graphql-config-'));
const sdl = join(dir, 'schema.graphql');
writeFileSync(sdl, 'type Query { me: User } type User { id: ID!, email: String }');
const broken = join(dir, 'broken.graphql');
writeFileSync(broken, 'type Query { me: Nope }');
const wrongHash = join(dir, 'wrong.json');
writeFileSync(wrongHash, JSON.stringify({ ['0'.repeat(64)]: '{ me { id } }' }));

const base = (policies: string) => `
upstreams:
  app: { nodes: [{ url: "http://127.0.0.1:9" }] }
routes:
  - name: r
    match: { prefix: / }
    upstream: app
    policies:
      ${policies}
`;

const CASES: [string, string, RegExp][] = [
  ['a schema file that does not exist', `graphql: { schema: ${join(dir, 'none.graphql')} }`, /routes\[0\]\.policies\.graphql\.schema: cannot read the schema/],
  ['a schema that is not valid SDL', `graphql: { schema: ${broken} }`, /graphql\.schema: .* is not a valid GraphQL SDL: Unknown type "Nope"/],
  ['a nested field rule without a schema', 'graphql: { fieldAuth: { rules: { User.email: s } } }', /graphql\.fieldAuth\.rules\["User\.email"\]: .*cannot tell without a schema/],
  ['a field rule naming a field the schema lacks', `graphql: { schema: ${sdl}, fieldAuth: { rules: { User.phone: s } } }`, /fieldAuth\.rules\["User\.phone"\]: the schema's User has no field phone/],
  ['a field cost naming a field the schema lacks', `graphql: { schema: ${sdl}, cost: { fields: { Query.you: 3 } } }`, /graphql\.cost\.fields\["Query\.you"\]: the schema has no field Query\.you/],
  ['an allowlist mode without a list', 'graphql: { persisted: { mode: allowlist } }', /graphql\.persisted\.allowlist: mode: allowlist needs the allowlist file/],
  ['an allowlist whose hash is not its query', `graphql: { persisted: { mode: allowlist, allowlist: ${wrongHash} } }`, /persisted\.allowlist: .*the hash is not the SHA-256 of its query/],
  ['introspection plans while introspection is off', 'graphql: { introspection: { plans: [gold] } }', /graphql\.introspection\.plans: plans narrow an allowed introspection/],
  ['an APQ Redis store without a redis: section', 'graphql: { persisted: { mode: apq, store: redis } }', /graphql\.persisted\.store: store: redis, but the config has no top-level redis: section/],
  ['a Redis store outside apq mode', 'graphql: { persisted: { store: redis } }', /graphql\.persisted\.store: store: redis shares automatic persisted queries: it needs mode: apq/],
  ['an unknown field authorization mode', 'graphql: { fieldAuth: { mode: hide } }', /graphql\/fieldAuth\/mode|graphql\.fieldAuth\.mode/],
  ['cost-based rate limits with a sliding window', 'rateLimit: { cost: graphql, limits: [{ key: ip, rate: 10, algorithm: slidingWindow }] }', /rateLimit\.limits\[0\]\.algorithm: cost: graphql .*tokenBucket/],
];

for (const [what, policies, expected] of CASES) {
  test(`nanogate validate refuses ${what}, naming the path`, async () => {
    const r = await runCli(['validate', writeConfig(base(policies))]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, expected);
  });
}

test('a complete graphql config validates', async () => {
  const r = await runCli(['validate', writeConfig(base(`graphql: { schema: ${sdl}, limits: { depth: 5, cost: 100 }, fieldAuth: { rules: { User.email: s } }, persisted: { mode: apq } }`))]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
});

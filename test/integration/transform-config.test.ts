import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../helpers/cli.js';
import { startGateway, writeConfig } from '../helpers/gateway.js';
import { startUpstream } from '../helpers/upstream.js';
import { send } from '../helpers/http.js';

/**
 * Transform configs that cannot work are refused by `nanogate validate` with the path and the reason, and a reload
 * to one keeps the running config serving.
 */
const base = (policies: string) => `
upstreams:
  app: { nodes: [{ url: "http://127.0.0.1:9" }] }
routes:
  - name: r
    match: { prefix: / }
    upstream: app
    policies:
${policies
  .trim()
  .split('\n')
  .map((l) => '      ' + l)
  .join('\n')}
`;

const CASES: [string, string, RegExp][] = [
  ['an unknown mask type', 'transform: { response: { body: { mask: { detect: [crd] } } } }', /routes\[0\]\.policies\.transform\.response\.body\.mask\.detect\[0\]: must be one of "card", "iban", "email", "phone"/],
  ['an unknown mask style', 'transform: { response: { body: { mask: { detect: [{ type: card, style: half }] } } } }', /mask\.detect\[0\]/],
  ['a path that cannot be parsed', 'transform: { response: { body: { operations: [{ remove: [ok, "a..b"] }] } } }', /routes\[0\]\.policies\.transform\.response\.body\.operations\[0\]\.remove\[1\]: cannot parse the path "a\.\.b": empty key/],
  ['a rename across wildcards', 'transform: { request: { body: { operations: [{ rename: { from: "items[*].a", to: b } }] } } }', /transform\.request\.body\.operations\[0\]\.rename\.to: .*must start like/],
  ['a scope rule with a bad path', 'transform: { response: { body: { scopes: [{ path: "x[", anyOf: [s] }] } } }', /transform\.response\.body\.scopes\[0\]\.path: cannot parse the path "x\["/],
  ['an invalid pattern', 'transform: { response: { body: { mask: { patterns: [{ name: ssn, regex: "(" }] } } } }', /transform\.response\.body\.mask\.patterns\[0\]\.regex: invalid pattern "ssn"/],
  ['a pattern matching nothing at all', 'transform: { response: { body: { mask: { patterns: [{ name: any, regex: "x*" }] } } } }', /patterns\[0\]\.regex: .*matches the empty string/],
  ['a bad path in a version mapping', 'transform: { versions: { header: v, mappings: { "1": { response: [{ keep: ["x["] }] } } } }', /transform\.versions\.mappings\.1\.response\[0\]\.keep\[0\]: cannot parse the path/],
  ['versions without a source', 'transform: { versions: { mappings: { "1": { response: [] } } } }', /transform\.versions: name the header or the query parameter/],
  ['an unknown template variable', 'transform: { request: { query: { add: { a: "$${consumer.name}" } } } }', /transform\.request\.query\.add\.a: "\$\{consumer\.name\}" is not a variable/],
  ['an unknown header template variable', 'headers: { response: { add: { x-a: "$${client.port}" } } }', /headers\.response\.add\.x-a: "\$\{client\.port\}" is not a variable/],
];

for (const [what, policies, expected] of CASES) {
  test(`nanogate validate refuses ${what}, naming the path`, async () => {
    const file = writeConfig(base(policies));
    const r = await runCli(['validate', file]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, expected);
  });
}

test('a valid transform config validates', async () => {
  const file = writeConfig(base('transform: { response: { body: { mask: { detect: [card, iban, email, phone], keys: [password] } } } }'));
  const r = await runCli(['validate', file]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
});

test('a reload to a broken transform config is refused and the running one keeps serving', async () => {
  const up = await startUpstream((_q, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"card":"4111111111111111"}'));
  const good = `upstreams: { app: { nodes: [{ url: ${up.url} }] } }\nroutes: [{ name: r, match: { prefix: / }, upstream: app, policies: { transform: { response: { body: { mask: { detect: [card] } } } } } }]\n`;
  const gw = await startGateway(good);
  try {
    assert.equal((await send(gw.port, { path: '/' })).text, '{"card":"[redacted]"}');
    gw.rewrite(good.replace('detect: [card]', 'detect: [card], fields: ["a..b"]'));
    await assert.rejects(gw.gateway.reload(), /mask\.fields\[0\]\.path: cannot parse the path/);
    assert.equal((await send(gw.port, { path: '/' })).text, '{"card":"[redacted]"}');
  } finally {
    await gw.stop();
    await up.close();
  }
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { runCli } from '../helpers/cli.js';
import { assertProblem, send } from '../helpers/http.js';
import { signToken } from '../helpers/idp.js';
import { importAndStart, type ImportedGateway } from '../helpers/imported-gateway.js';

// test/fixtures/import/apisix.yaml through `nanogate import apisix`, then a real gateway on the result.
const ALICE_KEY = 'alice-key-0123456789abcdef';
const JWT_SECRET = new TextEncoder().encode('mobile-app-secret-of-32-bytes-long!!');

let t: ImportedGateway;
let aliceAccepted = 0;

before(async () => {
  t = await importAndStart('apisix', 'apisix.yaml', {
    'users-1.internal:8080': 'users1',
    'users-2.internal:8080': 'users2',
    'orders.internal:9000': 'orders',
    'static.internal:8081': 'static',
  });
});
after(() => t?.stop());

const jwt = (claims: Record<string, unknown>, secret = JWT_SECRET) =>
  signToken({ iss: 'mobile-app-key', sub: 'mobile_app', ...claims }, { privateKey: secret, alg: 'HS256' });

test('the import exits 0, lists what it could not convert, and the result validates', async () => {
  assert.equal(t.imported.code, 0);
  const err = t.imported.stderr;
  assert.match(err, /routes\[5\]\.vars: route "users-v3": vars operator ">=" is not supported/);
  assert.match(err, /routes\[6\]: route "reports" is left out, not served unguarded: .*plugin "basic-auth"/);
  assert.match(err, /routes\[4\]\.plugins\.serverless-pre-function: plugin "serverless-pre-function" has no nanogate counterpart/);
  assert.match(err, /consumers\[1\]\.plugins\.key-auth: the key has 7 characters/);
  assert.match(err, /consumers\[2\]\.plugins\.jwt-auth: .*tokens must carry iss "mobile-app-key" and sub "mobile_app"/);
  assert.match(err, /5 route\(s\), 4 upstream\(s\), 3 consumer\(s\) converted; 5 warning\(s\)/);
  assert.equal(t.validated.code, 0, t.validated.stderr);
  assert.match(t.validated.stdout, /ok \(5 routes, 4 upstreams\)/);
});

test('a file without #END is named; a file that is not an APISIX config is refused with exit 1', async () => {
  const cut = t.source.replace(/\.yaml$/, '-noend.yaml');
  writeFileSync(cut, readFileSync(t.source, 'utf8').replace(/^#END\s*$/m, ''));
  const res = await runCli(['import', 'apisix', cut]);
  assert.equal(res.code, 0);
  assert.match(res.stderr, /#END: the file has no #END line/);
  const notApisix = t.source.replace(/\.yaml$/, '-other.yaml');
  writeFileSync(notApisix, 'listen: { port: 8080 }\n');
  const refused = await runCli(['import', 'apisix', notApisix]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /not an APISIX standalone config/);
  assert.equal(refused.stdout, '');
});

test('key-auth and the client Host (pass_host: pass) on a load-balanced upstream; the path is kept', async () => {
  assertProblem(await send(t.gw.port, { path: '/users/42' }), 401, 'NG_ERR_AUTH_MISSING');
  for (let i = 0; i < 2; i++) {
    const res = await send(t.gw.port, { path: `/users/${i}?apikey=${ALICE_KEY}`, headers: { host: 'users.example.com' } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['x-frame-options'], 'DENY', 'the global rule');
    aliceAccepted++;
  }
  assert.equal(t.got('users1').length, 1);
  assert.equal(t.got('users2').length, 1);
  for (const r of [...t.got('users1'), ...t.got('users2')]) {
    assert.match(r.url, /^\/users\/[01]$/, 'the key is taken out of the query (hide_credentials)');
    assert.equal(r.headers.host, 'users.example.com');
    assert.equal(r.headers['x-consumer-username'], 'alice');
  }
});

test('limit-count 5 per 60 s per consumer: the sixth request is refused', async () => {
  let refused = null;
  for (let i = 0; i < 10 && refused === null; i++) {
    const res = await send(t.gw.port, { path: '/users/x', headers: { apikey: ALICE_KEY } });
    if (res.status === 200) aliceAccepted++;
    else refused = res;
  }
  assert.ok(refused);
  assertProblem(refused, 429, 'NG_ERR_RATE_LIMITED');
  assert.equal(aliceAccepted, 5);
});

test('jwt-auth from the service, the regex_uri prefix swap and proxy-rewrite headers', async () => {
  const host = { host: 'api.example.com' };
  assertProblem(await send(t.gw.port, { path: '/api/orders/7', headers: host }), 401, 'NG_ERR_AUTH_MISSING');
  const res = await send(t.gw.port, { path: '/api/orders/7', headers: { ...host, authorization: `Bearer ${await jwt({})}`, 'x-debug': '1' } });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.headers['x-frame-options'], 'DENY', 'the global rule still applies next to the route\'s headers');
  const r = t.got('orders').at(-1)!;
  assert.equal(r.url, '/v2/7');
  assert.equal(r.headers.host, `127.0.0.1:${t.upstreams.orders.port}`, 'pass_host: node');
  assert.equal(r.headers['x-consumer-username'], 'mobile_app');
  assert.equal(r.headers['x-gateway'], 'nanogate');
  assert.equal(r.headers['x-debug'], undefined);
  const forged = await jwt({}, new TextEncoder().encode('another-secret-that-is-32-bytes-long'));
  assertProblem(await send(t.gw.port, { path: '/api/orders/7', headers: { ...host, authorization: `Bearer ${forged}` } }), 401, 'NG_ERR_AUTH_BAD_SIGNATURE');
});

test('cors, response-rewrite and the stripped prefix of the assets route', async () => {
  const res = await send(t.gw.port, { path: '/assets/css/site.css', headers: { origin: 'https://app.example.com' } });
  assert.equal(res.status, 200);
  assert.equal(res.headers['access-control-allow-origin'], 'https://app.example.com');
  assert.equal(res.headers['x-served-by'], 'nanogate');
  assert.equal(res.headers['x-frame-options'], 'DENY');
  assert.equal(t.got('static').at(-1)!.url, '/css/site.css');
  const pre = await send(t.gw.port, { method: 'OPTIONS', path: '/assets/a', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'GET' } });
  assert.equal(pre.status, 204);
});

test('ip-restriction refuses loopback; routes left out are not served', async () => {
  assertProblem(await send(t.gw.port, { path: '/internal/x' }), 403, 'NG_ERR_ACCESS_IP_DENIED');
  assertProblem(await send(t.gw.port, { path: '/reports/x' }), 404, 'NG_ERR_ROUTE_NOT_FOUND');
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { assertProblem, send } from '../helpers/http.js';
import { signToken } from '../helpers/idp.js';
import { importAndStart, type ImportedGateway } from '../helpers/imported-gateway.js';

// test/fixtures/import/kong.yaml through `nanogate import kong`, then a real gateway on the result: the same
// requests reach the same upstreams with the same paths, credentials and limits, and what could not be converted
// is named on stderr.
const ALICE_KEY = 'alice-key-0123456789abcdef';
const JWT_SECRET = new TextEncoder().encode('mobile-app-secret-of-32-bytes-long!!');
const ISS = 'https://mobile.example.com';

let t: ImportedGateway;
let aliceAccepted = 0;

before(async () => {
  t = await importAndStart('kong', 'kong.yaml', {
    'users-1.internal:8080': 'users1',
    'users-2.internal:8080': 'users2',
    'orders.internal:9000': 'orders',
    'static.internal:8081': 'static',
  });
});
after(() => t?.stop());

const jwt = (claims: Record<string, unknown>, secret = JWT_SECRET) => signToken({ iss: ISS, sub: 'mobile-app', ...claims }, { privateKey: secret, alg: 'HS256' });

test('the import exits 0, lists what it could not convert, and the result validates', async () => {
  assert.equal(t.imported.code, 0);
  const err = t.imported.stderr;
  assert.match(err, /services\[0\]\.routes\[1\]\.paths\[0\]: route "users-legacy": regex path "~\/v1\/users\/\\d\+\$"/);
  assert.match(err, /services\[3\]\.routes\[1\]: route "reports" is left out, not served unguarded: .*plugin "basic-auth"/);
  assert.match(err, /plugins\[1\]: plugin "correlation-id" has no nanogate counterpart/);
  assert.match(err, /services\[2\]\.routes\[0\]\.plugins\[2\]: plugin "proxy-cache" has no nanogate counterpart/);
  assert.match(err, /consumers\[1\]\.keyauth_credentials\[0\]: the key has 7 characters/);
  assert.match(err, /4 route\(s\), 4 upstream\(s\), 3 consumer\(s\) converted; 8 warning\(s\)/);
  assert.doesNotMatch(t.config, new RegExp(ALICE_KEY), 'API keys are written as digests');
  assert.equal(t.validated.code, 0, t.validated.stderr);
  assert.match(t.validated.stdout, /ok \(4 routes, 4 upstreams\)/);
});

test('--strict fails on the same warnings; usage errors exit 2', async () => {
  const strict = await runCli(['import', 'kong', t.source, '--strict']);
  assert.equal(strict.code, 1);
  assert.match(strict.stderr, /failed \(strict\): 8 warning\(s\)/);
  assert.equal((await runCli(['import', 'nginx', t.source])).code, 2);
  assert.equal((await runCli(['import', 'kong'])).code, 2);
  const missing = await runCli(['import', 'kong', '/nonexistent/kong.yaml']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /\/nonexistent\/kong\.yaml: cannot read: ENOENT/);
});

test('key-auth: a consumer key reaches both targets of the upstream with the path kept (strip_path: false)', async () => {
  assertProblem(await send(t.gw.port, { path: '/users/42' }), 401, 'NG_ERR_AUTH_MISSING');
  assertProblem(await send(t.gw.port, { path: '/users/42', headers: { apikey: 'not-a-known-key-0000' } }), 401, 'NG_ERR_AUTH_UNKNOWN_KEY');
  for (let i = 0; i < 2; i++) {
    const res = await send(t.gw.port, { path: `/users/${i}`, headers: { apikey: ALICE_KEY } });
    assert.equal(res.status, 200, res.text);
    aliceAccepted++;
  }
  const got = [...t.got('users1'), ...t.got('users2')];
  assert.equal(t.got('users1').length, 1, 'round robin over equal weights');
  assert.equal(t.got('users2').length, 1);
  assert.deepEqual(got.map((r) => r.url).sort(), ['/users/0', '/users/1']);
  for (const r of got) {
    assert.equal(r.headers['x-consumer-username'], 'alice');
    assert.equal(r.headers.apikey, undefined, 'hide_credentials');
  }
});

test('rate-limiting minute: 5 per consumer: the sixth request in the minute is refused', async () => {
  let refused = null;
  for (let i = 0; i < 10 && refused === null; i++) {
    const res = await send(t.gw.port, { path: '/users', headers: { apikey: ALICE_KEY } });
    if (res.status === 200) aliceAccepted++;
    else refused = res;
  }
  assert.ok(refused, 'a request was refused');
  assertProblem(refused, 429, 'NG_ERR_RATE_LIMITED');
  assert.equal(aliceAccepted, 5);
});

test('jwt on a host: tokens of the consumer pass, the path is the service path plus the rest (strip_path)', async () => {
  const host = { host: 'api.example.com' };
  assertProblem(await send(t.gw.port, { path: '/orders/7', headers: host }), 401, 'NG_ERR_AUTH_MISSING');
  const ok = await send(t.gw.port, { path: '/orders/7', headers: { ...host, authorization: `Bearer ${await jwt({})}`, 'x-debug': '1' } });
  assert.equal(ok.status, 200, ok.text);
  const r = t.got('orders').at(-1)!;
  assert.equal(r.url, '/v2/7');
  assert.equal(r.headers['x-consumer-username'], 'mobile-app');
  assert.equal(r.headers['x-gateway'], 'nanogate', 'request-transformer add');
  assert.equal(r.headers['x-debug'], undefined, 'request-transformer remove');
  const forged = await jwt({}, new TextEncoder().encode('another-secret-that-is-32-bytes-long'));
  assertProblem(await send(t.gw.port, { path: '/orders/7', headers: { ...host, authorization: `Bearer ${forged}` } }), 401, 'NG_ERR_AUTH_BAD_SIGNATURE');
  const stranger = await jwt({ sub: 'someone-else' });
  assertProblem(await send(t.gw.port, { path: '/orders/7', headers: { ...host, authorization: `Bearer ${stranger}` } }), 401, 'NG_ERR_AUTH_UNKNOWN_CONSUMER');
  assert.equal((await send(t.gw.port, { path: '/orders/7', headers: { authorization: `Bearer ${await jwt({})}` } })).status, 404, 'other hosts do not match');
});

test('cors and response-transformer on a stripped prefix; the preflight is answered by the gateway', async () => {
  const res = await send(t.gw.port, { path: '/assets/app.js', headers: { origin: 'https://app.example.com' } });
  assert.equal(res.status, 200);
  assert.equal(res.headers['x-served-by'], 'nanogate');
  assert.equal(res.headers['access-control-allow-origin'], 'https://app.example.com');
  assert.equal(t.got('static').at(-1)!.url, '/app.js');
  const before = t.got('static').length;
  const pre = await send(t.gw.port, {
    method: 'OPTIONS',
    path: '/assets/app.js',
    headers: { origin: 'https://app.example.com', 'access-control-request-method': 'GET' },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers['access-control-max-age'], '3600');
  assert.equal(t.got('static').length, before, 'the preflight is not forwarded');
  const other = await send(t.gw.port, { path: '/assets/app.js', headers: { origin: 'https://evil.example' } });
  assert.equal(other.headers['access-control-allow-origin'], undefined);
});

test('ip-restriction refuses loopback; the left-out and regex routes are not served', async () => {
  assertProblem(await send(t.gw.port, { path: '/internal/stats' }), 403, 'NG_ERR_ACCESS_IP_DENIED');
  assertProblem(await send(t.gw.port, { path: '/reports/daily' }), 404, 'NG_ERR_ROUTE_NOT_FOUND');
  assertProblem(await send(t.gw.port, { path: '/v1/users/1' }), 404, 'NG_ERR_ROUTE_NOT_FOUND');
});

test('a result that does not validate is written with the compile errors, and the import exits 1', async () => {
  // two services whose routes take the same requests: Kong picks one, nanogate refuses to guess
  const dir = mkdtempSync(join(tmpdir(), 'nanogate-import-'));
  const file = join(dir, 'kong.yaml');
  writeFileSync(
    file,
    ['_format_version: "3.0"', 'services:', '  - { name: a, url: "http://127.0.0.1:1", routes: [{ name: ra, paths: [/x] }] }', '  - { name: b, url: "http://127.0.0.1:2", routes: [{ name: rb, paths: [/x] }] }', ''].join('\n'),
  );
  const res = await runCli(['import', 'kong', file]);
  assert.equal(res.code, 1);
  assert.match(res.stdout, /name: ra[\s\S]*name: rb/);
  assert.match(res.stderr, /the converted config does not validate; fix these before starting it:\n {2}.*routes\[1\]/);
});

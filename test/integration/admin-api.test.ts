import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect } from 'node:net';
import { startAdminGateway, admin, type AdminGateway } from '../helpers/admin.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { send } from '../helpers/http.js';
import { tokenFingerprint } from '../../src/control/audit.js';

const BIN = fileURLToPath(new URL('../../../bin/nanogate.js', import.meta.url));
const TOKEN = 'admin-test-token-0123456789';
const OTHER = 'rotated-token-abcdefghijklmnop';

let ups: TestUpstream[];
let gw: AdminGateway;
/** upstream 3 holds requests to /pair/slow until released */
let releaseSlow: (() => void)[] = [];

function config(extra = '', token = TOKEN, routes?: string): string {
  return `
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0, token: ${token}, auditLog: '{{dir}}/audit.log', history: 3 }
reload: { watch: false }
upstreams:
  pair: { nodes: [{ url: ${ups[0].url} }, { url: ${ups[1].url} }] }
  single: { nodes: [{ url: ${ups[2].url} }] }
routes:
${routes ?? `  - { name: r-pair, match: { prefix: /pair }, upstream: pair }
  - { name: r-single, match: { prefix: /single }, upstream: single }`}
${extra}`;
}

const call = (method: string, path: string, opts: { token?: string | null; body?: string; contentType?: string } = {}) =>
  admin(gw.adminUrl, method, path, { token: TOKEN, ...opts });

/** n requests on fresh connections (spread over both workers); returns the x-upstream values or statuses. */
async function hits(path: string, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await send(gw.port, { path });
    out.push(r.status === 200 ? String(r.headers['x-upstream']) : `${r.status} ${JSON.parse(r.text).code}`);
  }
  return out;
}

function auditLines(): any[] {
  return readFileSync(join(gw.dir, 'audit.log'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

before(async () => {
  ups = [];
  for (const id of ['0', '1', '2']) {
    ups.push(
      await startUpstream((req, res) => {
        const answer = () => {
          res.writeHead(200, { 'x-upstream': id, 'content-type': 'text/plain' });
          res.end(id);
        };
        if (req.url === '/pair/slow') releaseSlow.push(answer);
        else answer();
      }),
    );
  }
  gw = await startAdminGateway(config(), { workers: 2 });
});

after(async () => {
  for (const r of releaseSlow) r();
  await gw.stop();
  for (const u of ups) await u.close();
});

const PROTECTED: [string, string, string?][] = [
  ['GET', '/status'],
  ['GET', '/config'],
  ['PUT', '/config', 'x: 1'],
  ['GET', '/config/history'],
  ['POST', '/config/rollback', '{"version":1}'],
  ['POST', '/reload'],
  ['GET', '/routes'],
  ['GET', '/routes/r-pair'],
  ['POST', '/routes/r-pair/disable'],
  ['POST', '/routes/r-pair/enable'],
  ['GET', '/upstreams'],
  ['GET', '/upstreams/pair'],
  ['POST', '/upstreams/pair/nodes/0/drain'],
  ['POST', '/upstreams/pair/nodes/0/undrain'],
  ['GET', '/no-such-endpoint'],
];

test('every endpoint but /health and /ready refuses a missing or wrong token with 401 NG_ERR_ADMIN_UNAUTHORIZED', async () => {
  assert.equal((await call('GET', '/health', { token: null })).status, 200);
  assert.equal((await call('GET', '/ready', { token: null })).status, 200);
  for (const [method, path, body] of PROTECTED) {
    for (const token of [null, 'wrong-token-wrong-token', TOKEN.slice(0, -1)]) {
      const r = await call(method, path, { token, body });
      assert.equal(r.status, 401, `${method} ${path} with ${token}`);
      assert.equal(r.body.code, 'NG_ERR_ADMIN_UNAUTHORIZED');
      assert.equal(r.headers.get('content-type'), 'application/problem+json');
      assert.match(r.headers.get('www-authenticate')!, /^Bearer /);
    }
  }
  // Nothing changed: the route still serves, the version is still 1.
  assert.deepEqual(await hits('/single', 1), ['2']);
  assert.equal((await call('GET', '/config')).body.version, 1);
  // Refused changes are audited, with a fingerprint at most, never the token given.
  const refused = auditLines().filter((l) => l.result === 'unauthorized');
  assert.ok(refused.some((l) => l.action === 'POST /routes/r-pair/disable' && l.who === 'no-token'));
  assert.ok(refused.some((l) => l.who === tokenFingerprint('wrong-token-wrong-token')));
  assert.doesNotMatch(readFileSync(join(gw.dir, 'audit.log'), 'utf8'), /wrong-token-wrong-token|admin-test-token/);
});

test('with the token: status, config, history; the bearer scheme is case-insensitive', async () => {
  const status = await call('GET', '/status');
  assert.equal(status.status, 200);
  assert.equal(status.body.version, 1);
  assert.equal(status.body.workers.length, 2);
  const lower = await fetch(`${gw.adminUrl}/status`, { headers: { authorization: `bearer ${TOKEN}` } });
  assert.equal(lower.status, 200);
  const cfg = await call('GET', '/config');
  assert.equal(cfg.status, 200);
  assert.equal(cfg.body.version, 1);
  assert.equal(cfg.body.config.admin.token, '[redacted]');
  assert.equal(cfg.body.config.routes[0].name, 'r-pair');
  const hist = await call('GET', '/config/history');
  assert.equal(hist.body.history[0].version, 1);
  assert.equal(hist.body.history[0].action, 'start');
  assert.deepEqual(hist.body.kept, [1]);
});

test('unknown endpoints answer 404 NG_ERR_ADMIN_NOT_FOUND; a wrong method 405 with Allow', async () => {
  const r = await call('GET', '/nothing/here');
  assert.equal(r.status, 404);
  assert.equal(r.body.code, 'NG_ERR_ADMIN_NOT_FOUND');
  const m = await call('DELETE', '/config');
  assert.equal(m.status, 405);
  assert.equal(m.body.code, 'NG_ERR_ADMIN_METHOD_NOT_ALLOWED');
  assert.equal(m.headers.get('allow'), 'GET, PUT');
  const g = await call('GET', '/routes/r-pair/disable');
  assert.equal(g.status, 405);
  assert.equal(g.headers.get('allow'), 'POST');
});

test('a disabled route answers 503 NG_ERR_ROUTE_DISABLED on every worker until enabled; others keep serving', async () => {
  const d = await call('POST', '/routes/r-pair/disable');
  assert.equal(d.status, 200);
  assert.equal(d.body.disabled, true);
  const after = await hits('/pair/x', 8);
  assert.deepEqual(after, Array(8).fill('503 NG_ERR_ROUTE_DISABLED'));
  const direct = await send(gw.port, { path: '/pair/x' });
  assert.equal(direct.headers['content-type'], 'application/problem+json');
  assert.deepEqual(await hits('/single', 2), ['2', '2']);
  const routes = await call('GET', '/routes');
  assert.deepEqual(routes.body.routes.map((r: any) => [r.name, r.disabled]), [['r-pair', true], ['r-single', false]]);
  assert.equal((await call('GET', '/routes/r-pair')).body.disabled, true);
  const e = await call('POST', '/routes/r-pair/enable');
  assert.equal(e.status, 200);
  assert.ok((await hits('/pair/x', 4)).every((v) => v === '0' || v === '1'));
  const unknown = await call('POST', '/routes/nope/disable');
  assert.equal(unknown.status, 404);
  assert.equal(unknown.body.code, 'NG_ERR_ADMIN_UNKNOWN_ROUTE');
  assert.equal((await call('GET', '/routes/nope')).body.code, 'NG_ERR_ADMIN_UNKNOWN_ROUTE');
});

test('a drained node gets no new requests; undrain puts it back; bad targets are refused', async () => {
  assert.equal((await call('POST', '/upstreams/pair/nodes/0/drain')).status, 200);
  assert.deepEqual(await hits('/pair/d', 10), Array(10).fill('1'));
  const ups1 = await call('GET', '/upstreams');
  assert.deepEqual(ups1.body.upstreams[0].nodes.map((n: any) => n.drained), [true, false]);
  assert.equal((await call('POST', '/upstreams/pair/nodes/0/undrain')).status, 200);
  const both = new Set(await hits('/pair/d', 10));
  assert.deepEqual([...both].sort(), ['0', '1']);

  // Every node drained: nothing to send to.
  await call('POST', '/upstreams/single/nodes/0/drain');
  assert.deepEqual(await hits('/single', 2), Array(2).fill('503 NG_ERR_UPSTREAM_UNAVAILABLE'));
  await call('POST', '/upstreams/single/nodes/0/undrain');
  assert.deepEqual(await hits('/single', 1), ['2']);

  const cases: [string, number, string][] = [
    ['/upstreams/nope/nodes/0/drain', 404, 'NG_ERR_ADMIN_UNKNOWN_UPSTREAM'],
    ['/upstreams/pair/nodes/2/drain', 404, 'NG_ERR_ADMIN_UNKNOWN_NODE'],
    ['/upstreams/pair/nodes/-1/drain', 400, 'NG_ERR_ADMIN_BAD_REQUEST'],
    ['/upstreams/pair/nodes/01/drain', 400, 'NG_ERR_ADMIN_BAD_REQUEST'],
    ['/upstreams/pair/nodes/x/undrain', 400, 'NG_ERR_ADMIN_BAD_REQUEST'],
    ['/upstreams/pair/nodes/%E0%A4%A/drain', 400, 'NG_ERR_ADMIN_BAD_REQUEST'],
  ];
  for (const [path, status, code] of cases) {
    const r = await call('POST', path);
    assert.equal(r.status, status, path);
    assert.equal(r.body.code, code, path);
  }
  assert.equal((await call('GET', '/upstreams/nope')).body.code, 'NG_ERR_ADMIN_UNKNOWN_UPSTREAM');
});

test('draining a node lets its in-flight request finish; GET /upstreams shows it in flight', async () => {
  // Node 0 only, so the slow request lands there.
  await call('POST', '/upstreams/pair/nodes/1/drain');
  const slow = send(gw.port, { path: '/pair/slow' });
  // bounded: the slow request reaches node 0 well within the test's own time, or the test fails here
  const until = Date.now() + 10_000;
  while (releaseSlow.length === 0) {
    assert.ok(Date.now() < until, 'the slow request never reached node 0');
    await new Promise((r) => setTimeout(r, 10));
  }
  await call('POST', '/upstreams/pair/nodes/1/undrain');
  await call('POST', '/upstreams/pair/nodes/0/drain');
  const view = await call('GET', '/upstreams/pair');
  assert.equal(view.status, 200);
  assert.equal(view.body.workersMissing, 0);
  assert.deepEqual(view.body.nodes.map((n: any) => [n.index, n.drained, n.inFlight]), [[0, true, 1], [1, false, 0]]);
  assert.deepEqual(await hits('/pair/y', 4), Array(4).fill('1'));
  releaseSlow.shift()!();
  const r = await slow;
  assert.equal(r.status, 200);
  assert.equal(r.text, '0');
  await call('POST', '/upstreams/pair/nodes/0/undrain');
});

test('PUT /config applies YAML or JSON to every worker; the version and history follow', async () => {
  const next = config('', TOKEN, `  - { name: r-pair, match: { prefix: /pair }, upstream: pair }
  - { name: r-single, match: { prefix: /single }, upstream: single }
  - { name: r-new, match: { prefix: /new }, upstream: single }`).replaceAll('{{dir}}', gw.dir);
  const r = await call('PUT', '/config', { body: next, contentType: 'application/yaml' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.version, 2);
  assert.equal(r.body.previous, 1);
  assert.deepEqual(await hits('/new', 4), Array(4).fill('2'));

  const cfg = (await call('GET', '/config')).body.config;
  cfg.admin.token = TOKEN;
  cfg.routes = cfg.routes.filter((x: any) => x.name !== 'r-new');
  const j = await call('PUT', '/config', { body: JSON.stringify(cfg), contentType: 'application/x-www-form-urlencoded' });
  assert.equal(j.status, 200, JSON.stringify(j.body));
  assert.equal(j.body.version, 3);
  assert.deepEqual(await hits('/new', 2), Array(2).fill('404 NG_ERR_ROUTE_NOT_FOUND'));
  const hist = (await call('GET', '/config/history')).body;
  assert.deepEqual(hist.history.map((h: any) => [h.version, h.action, h.who]), [
    [1, 'start', 'control-plane'],
    [2, 'apply', tokenFingerprint(TOKEN)],
    [3, 'apply', tokenFingerprint(TOKEN)],
  ]);
});

test('an invalid config is refused with the very lines `nanogate validate` prints, and nothing changes', async () => {
  const bad = config(
    '',
    TOKEN,
    `  - { name: r-pair, match: { prefix: /pair }, upstream: pairs }
  - { name: r-pair, match: { prefix: /other }, upstream: single }
  - { name: r-single, match: { prefix: /single, path: /single }, upstream: single }`,
  ).replaceAll('{{dir}}', gw.dir);
  const file = join(gw.dir, 'bad.yaml');
  writeFileSync(file, bad);
  const cli = spawnSync(process.execPath, [BIN, 'validate', file], { encoding: 'utf8' });
  assert.equal(cli.status, 1);
  const expected = cli.stderr.trim().split('\n');
  assert.ok(expected.length >= 3, cli.stderr);
  const before = (await call('GET', '/config')).body.version;
  const r = await call('PUT', `/config?source=${encodeURIComponent(file)}`, { body: bad });
  assert.equal(r.status, 422);
  assert.equal(r.body.code, 'NG_ERR_ADMIN_CONFIG_INVALID');
  assert.equal(r.headers.get('content-type'), 'application/problem+json');
  assert.deepEqual(r.body.errors, expected);
  assert.equal((await call('GET', '/config')).body.version, before);
  assert.ok((await hits('/pair/z', 2)).every((v) => v === '0' || v === '1'));

  // Schema errors and YAML syntax errors come back the same way.
  const syntax = await call('PUT', '/config', { body: 'listen: [1,\n' });
  assert.equal(syntax.status, 422);
  assert.match(syntax.body.errors[0], /^PUT \/config: /);
  const unknownKey = await call('PUT', '/config', { body: bad.replace('reload:', 'relaod:') });
  assert.equal(unknownKey.status, 422);
  assert.ok(unknownKey.body.errors.some((e: string) => e.includes('unknown key "relaod"')));
  // What a running gateway cannot change.
  const port = await call('PUT', '/config', { body: config().replaceAll('{{dir}}', gw.dir).replace('port: 0 }', 'port: 1 }') });
  assert.equal(port.status, 422);
  assert.deepEqual(port.body.errors, ['PUT /config: listen.port: cannot change while the gateway runs (restart it to change it)']);
  // Not YAML or JSON, too large, bad source name.
  const form = await call('PUT', '/config', { body: '--x\r\n\r\nx: 1\r\n--x--', contentType: 'multipart/form-data; boundary=x' });
  assert.equal(form.status, 415);
  assert.equal(form.body.code, 'NG_ERR_ADMIN_UNSUPPORTED_MEDIA_TYPE');
  const src = await call('PUT', '/config?source=%0Aevil', { body: 'x: 1' });
  assert.equal(src.status, 400);
  assert.equal(src.body.code, 'NG_ERR_ADMIN_BAD_REQUEST');
  const big = await rawPut('/config', 64 * 1024 * 1024);
  assert.match(big, /^HTTP\/1\.1 413 /);
  assert.match(big, /NG_ERR_ADMIN_BODY_TOO_LARGE/);
  assert.equal((await call('GET', '/config')).body.version, before);
});

/** A PUT that announces `length` bytes and sends none, over a raw socket. */
function rawPut(path: string, length: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(Number(new URL(gw.adminUrl).port), '127.0.0.1');
    let out = '';
    s.on('data', (d) => {
      out += d.toString('latin1');
      if (out.includes('}')) {
        s.destroy();
        resolve(out);
      }
    });
    s.on('error', reject);
    s.write(`PUT ${path} HTTP/1.1\r\nhost: admin\r\nauthorization: Bearer ${TOKEN}\r\ncontent-length: ${length}\r\n\r\n`);
  });
}

test('rollback re-applies a kept version as a new version; bad input is refused', async () => {
  const before = (await call('GET', '/config')).body.version;
  const add = config('', TOKEN, `  - { name: r-pair, match: { prefix: /pair }, upstream: pair }
  - { name: r-single, match: { prefix: /single }, upstream: single }
  - { name: r-tmp, match: { prefix: /tmp }, upstream: single }`).replaceAll('{{dir}}', gw.dir);
  const v = (await call('PUT', '/config', { body: add })).body.version;
  assert.equal(v, before + 1);
  assert.deepEqual(await hits('/tmp', 1), ['2']);
  const old = await call('GET', `/config?version=${before}`);
  assert.equal(old.status, 200);
  assert.equal(old.body.version, before);
  const r = await call('POST', '/config/rollback', { body: JSON.stringify({ version: before }) });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.version, v + 1);
  assert.deepEqual(await hits('/tmp', 1), ['404 NG_ERR_ROUTE_NOT_FOUND']);
  const last = (await call('GET', '/config/history')).body;
  assert.deepEqual(
    { version: last.history.at(-1).version, action: last.history.at(-1).action, rollbackOf: last.history.at(-1).rollbackOf },
    { version: v + 1, action: 'rollback', rollbackOf: before },
  );
  // history: 3 keeps only the last three versions.
  assert.deepEqual(last.kept, [v - 1, v, v + 1]);

  const bad: [string, number, string][] = [
    ['{', 400, 'NG_ERR_ADMIN_BAD_REQUEST'],
    ['{"version":"1"}', 400, 'NG_ERR_ADMIN_BAD_REQUEST'],
    ['{"version":0}', 400, 'NG_ERR_ADMIN_BAD_REQUEST'],
    ['[]', 400, 'NG_ERR_ADMIN_BAD_REQUEST'],
    ['null', 400, 'NG_ERR_ADMIN_BAD_REQUEST'],
    ['{"version":1}', 404, 'NG_ERR_ADMIN_UNKNOWN_VERSION'],
    ['{"version":999}', 404, 'NG_ERR_ADMIN_UNKNOWN_VERSION'],
  ];
  for (const [body, status, code] of bad) {
    const x = await call('POST', '/config/rollback', { body });
    assert.equal(x.status, status, body);
    assert.equal(x.body.code, code, body);
  }
  assert.equal((await call('GET', '/config?version=1')).body.code, 'NG_ERR_ADMIN_UNKNOWN_VERSION');
  assert.equal((await call('GET', '/config?version=x')).body.code, 'NG_ERR_ADMIN_BAD_REQUEST');
  assert.equal((await call('GET', '/config')).body.version, v + 1);
});

test('disabled routes and drained nodes survive a reload by name, even when ids and positions change', async () => {
  await call('POST', '/routes/r-single/disable');
  await call('POST', '/upstreams/pair/nodes/0/drain');
  // r-single moves from id 1 to id 2; a new route takes id 1; node 0 of "pair" becomes node 1.
  gw.write(
    config('', TOKEN, `  - { name: r-pair, match: { prefix: /pair }, upstream: pair }
  - { name: r-first, match: { prefix: /first }, upstream: single }
  - { name: r-single, match: { prefix: /single }, upstream: single }`).replace(
      `pair: { nodes: [{ url: ${ups[0].url} }, { url: ${ups[1].url} }] }`,
      `pair: { nodes: [{ url: ${ups[1].url} }, { url: ${ups[0].url} }] }`,
    ),
  );
  const r = await call('POST', '/reload');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(await hits('/single', 3), Array(3).fill('503 NG_ERR_ROUTE_DISABLED'));
  assert.deepEqual(await hits('/first', 3), Array(3).fill('2'));
  assert.deepEqual(await hits('/pair/q', 6), Array(6).fill('1'));
  const view = (await call('GET', '/upstreams/pair')).body;
  assert.deepEqual(view.nodes.map((n: any) => [n.url, n.drained]), [[ups[1].url, false], [ups[0].url, true]]);
  await call('POST', '/routes/r-single/enable');
  await call('POST', '/upstreams/pair/nodes/1/undrain');
  assert.deepEqual(await hits('/single', 1), ['2']);

  // A refused reload (bad file) keeps the old config serving.
  gw.write('routes: [ { name: broken');
  const refused = await call('POST', '/reload');
  assert.equal(refused.status, 422);
  assert.equal(refused.body.code, 'NG_ERR_ADMIN_CONFIG_INVALID');
  assert.match(refused.body.errors[0], new RegExp(`^${gw.configFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
  assert.deepEqual(await hits('/first', 1), ['2']);
});

test('the audit log records who did what and the result, as JSON lines', async () => {
  const lines = auditLines();
  const who = tokenFingerprint(TOKEN);
  const pick = (action: string, result: string) => lines.find((l) => l.action === action && l.result === result);
  for (const [action, result] of [
    ['route.disable', 'ok'],
    ['route.enable', 'ok'],
    ['route.disable', 'refused'],
    ['node.drain', 'ok'],
    ['node.undrain', 'ok'],
    ['config.apply', 'ok'],
    ['config.apply', 'refused'],
    ['config.rollback', 'ok'],
    ['config.rollback', 'refused'],
    ['reload', 'ok'],
    ['reload', 'refused'],
  ]) {
    const l = pick(action, result);
    assert.ok(l, `no audit entry for ${action} ${result}`);
    assert.equal(l.who, who);
    assert.equal(l.from, '127.0.0.1');
    assert.equal(l.audit, true);
    assert.ok(!Number.isNaN(Date.parse(l.time)), l.time);
  }
  assert.equal(pick('route.disable', 'ok').target, 'r-pair');
  assert.match(pick('config.apply', 'refused').error, /unknown upstream "pairs"/);
  assert.equal(typeof pick('config.apply', 'ok').version, 'number');
  assert.doesNotMatch(readFileSync(join(gw.dir, 'audit.log'), 'utf8'), new RegExp(TOKEN));
});

test('a config can rotate the admin token: the new one works at once, the old one no longer does', async () => {
  const r = await call('PUT', '/config', { body: config('', OTHER).replaceAll('{{dir}}', gw.dir) });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal((await call('GET', '/status')).status, 401);
  assert.equal((await call('GET', '/status', { token: OTHER })).status, 200);
  const back = await call('PUT', '/config', { token: OTHER, body: config().replaceAll('{{dir}}', gw.dir) });
  assert.equal(back.status, 200);
  assert.equal(auditLines().at(-1).who, tokenFingerprint(OTHER));
});

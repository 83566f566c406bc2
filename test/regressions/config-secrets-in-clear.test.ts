import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Gateway } from '../../src/control/gateway.js';
import { ConfigSchema } from '../../src/config/schema.js';
import { admin } from '../helpers/admin.js';

/**
 * GET /config and GET /config?version=N once returned JWT HMAC secrets in clear: only keys named `token` and
 * `passphrase` were redacted. Now every field the schema marks secret is, wherever the control plane shows or writes
 * a config. This test walks the schema for every secret field, runs a gateway whose configs set each of them to a
 * unique marker (a valid config to start and reload, one that compile refuses, one that validation refuses), and
 * looks for the markers in every admin API answer, the audit log and every log line of the control plane.
 *
 * A new secret field fails the coverage check below until the fixture sets it too.
 */

const MARK = /SeCrEt\d\d/g;
let n = 0;
/** A unique marker, base64url and at least 32 bytes long so that it fits HMAC secrets and oct JWKs. */
const mark = () => `SeCrEt${String(++n).padStart(2, '0')}${'q'.repeat(40)}`;

let dir: string;
let deadPort: number;
let gateway: Gateway;
let adminUrl: string;
let token: string;
const logs: string[] = [];
const answers: { what: string; text: string }[] = [];
const fixtures: unknown[] = [];

/** Policies with every secret the auth, headers and transform policies have; `keys` or `jwksUrl` (the two exclude each other). */
function policies(jwt: 'keys' | 'jwksUrl', privateJwk = false) {
  const jwtMethod =
    jwt === 'keys'
      ? {
          keys: [
            { kid: 'hs', alg: 'HS256', secret: mark() },
            privateJwk
              ? { kid: 'rsa', alg: 'RS256', jwk: { kty: 'RSA', n: 'sXch', e: 'AQAB', d: mark(), p: mark(), q: mark(), dp: mark(), dq: mark(), qi: mark(), oth: [{ r: mark() }] } }
              : { kid: 'oct', alg: 'HS256', jwk: { kty: 'oct', k: mark() } },
          ],
        }
      : { jwksUrl: `http://jwks:${mark()}@127.0.0.1:${deadPort}/jwks` };
  return {
    auth: {
      methods: {
        jwt: jwtMethod,
        introspection: { url: `http://idp:${mark()}@127.0.0.1:${deadPort}/introspect`, clientId: 'gateway', clientSecret: mark() },
      },
    },
    headers: { request: { set: { authorization: `Bearer ${mark()}` }, add: { 'x-api-key': mark() } } },
    transform: { request: { body: { mask: { style: 'hash', hashKey: mark() } } }, response: { body: { mask: { style: 'hash', hashKey: mark() } } } },
  };
}

/** A complete config; `refusedByCompile` adds secrets that only a refused config can hold (private JWK members). */
function config(refusedByCompile = false, globalJwt: 'keys' | 'jwksUrl' = 'keys') {
  return {
    listen: {
      host: '127.0.0.1',
      port: 0,
      tls: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem'), passphrase: TLS_PASS, servers: [{ hostnames: ['sni.test'], cert: join(dir, 'sni.pem'), key: join(dir, 'sni-key.pem'), passphrase: SNI_PASS }] },
    },
    admin: { host: '127.0.0.1', port: 0, token, auditLog: join(dir, 'audit.log') },
    reload: { watch: false },
    workers: 1,
    upstreams: {
      // An empty user name is accepted (the gateway sends no userinfo upstream); a user name is refused by compile,
      // and that message quotes the URL.
      app: { nodes: [{ url: `http://${refusedByCompile ? 'user' : ''}:${mark()}@127.0.0.1:${deadPort}` }] },
      // a client certificate for mTLS to an upstream, its key encrypted
      secure: { nodes: [{ url: `https://127.0.0.1:${deadPort}` }], tls: { cert: join(dir, 'client.pem'), key: join(dir, 'client-key.pem'), passphrase: CLIENT_PASS } },
      // a discovery source's credentials (its agent is not there: the static node serves)
      registry: { nodes: [{ url: `http://127.0.0.1:${deadPort}` }], discovery: { type: 'consul', address: `http://127.0.0.1:${deadPort}`, service: 'app', token: mark() } },
    },
    routes: [
      { name: 'with-keys', match: { prefix: '/a' }, upstream: 'app', policies: policies('keys', refusedByCompile) },
      { name: 'with-jwks', match: { prefix: '/b' }, upstream: 'app', policies: policies('jwksUrl') },
      // an aggregate call's headers (often the upstream's credential)
      { name: 'composed', match: { path: '/d' }, aggregate: { calls: [{ name: 'part', upstream: 'app', path: '/x', headers: { authorization: `Bearer ${mark()}` } }] } },
      // the affinity cookie's HMAC key
      { name: 'split', match: { prefix: '/c' }, upstream: 'app', traffic: { versions: [{ name: 'only', upstream: 'app', weight: 100 }], affinity: { cookie: 'ng-version', secret: mark() } } },
    ],
    policies: policies(globalJwt, refusedByCompile),
    consumers: [{ id: 'c1', keys: [{ key: mark() }] }],
    consumerRegistry: { url: `http://registry:${mark()}@127.0.0.1:${deadPort}/consumers`, headers: { authorization: `Bearer ${mark()}` }, intervalSeconds: 3600 },
    redis: { url: `redis://app:${mark()}@127.0.0.1:${deadPort}/0`, password: mark(), connectTimeoutMs: 100 },
    observability: {
      accessLog: { destination: { type: 'http', url: `http://logs:${mark()}@127.0.0.1:${deadPort}/logs`, headers: { authorization: `Bearer ${mark()}` } } },
      tracing: { endpoint: `http://traces:${mark()}@127.0.0.1:${deadPort}/v1/traces`, headers: { 'x-api-key': mark() } },
    },
  };
}

let TLS_PASS: string;
let SNI_PASS: string;
let CLIENT_PASS: string;

/** Schema paths (objects by key, records as *, arrays as []) of every field marked secret. */
function secretPaths(schema: any, path = '', out = new Set<string>()): Set<string> {
  if (schema === null || typeof schema !== 'object') return out;
  if (schema.secret === true || schema.secret === 'url') return out.add(path);
  for (const [k, v] of Object.entries<any>(schema.properties ?? {})) secretPaths(v, path ? `${path}.${k}` : k, out);
  for (const v of Object.values<any>(schema.patternProperties ?? {})) secretPaths(v, `${path}.*`, out);
  for (const it of schema.items ? [schema.items].flat() : []) secretPaths(it, `${path}[]`, out);
  for (const b of [...(schema.anyOf ?? []), ...(schema.oneOf ?? [])]) secretPaths(b, path, out);
  return out;
}

/** Schema paths at which `value` holds a marker, found by walking value and schema together. */
function markedPaths(value: unknown, schema: any, path = '', out = new Set<string>()): Set<string> {
  if (schema === null || typeof schema !== 'object') return out;
  if (schema.secret === true || schema.secret === 'url') {
    if (JSON.stringify(value).match(MARK)) out.add(path);
    return out;
  }
  for (const b of [...(schema.anyOf ?? []), ...(schema.oneOf ?? [])]) markedPaths(value, b, path, out);
  if (Array.isArray(value)) for (const x of value) for (const it of schema.items ? [schema.items].flat() : []) markedPaths(x, it, `${path}[]`, out);
  else if (value !== null && typeof value === 'object') {
    for (const [k, x] of Object.entries(value)) {
      const sub = schema.properties?.[k];
      if (sub) markedPaths(x, sub, path ? `${path}.${k}` : k, out);
      else for (const v of Object.values<any>(schema.patternProperties ?? {})) markedPaths(x, v, `${path}.*`, out);
    }
  }
  return out;
}

async function call(method: string, path: string, body?: unknown) {
  const r = await admin(adminUrl, method, path, { token, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  answers.push({ what: `${method} ${path} -> ${r.status}`, text: typeof r.body === 'string' ? r.body : JSON.stringify(r.body) });
  return r;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nanogate-secrets-'));
  deadPort = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
  token = mark();
  TLS_PASS = mark();
  // A TLS key encrypted with the passphrase, so that the worker really uses it.
  SNI_PASS = mark();
  CLIENT_PASS = mark();
  for (const [name, pass] of [['', TLS_PASS], ['sni-', SNI_PASS], ['client-', CLIENT_PASS]]) {
    const cert = name === '' ? 'cert.pem' : `${name.slice(0, -1)}.pem`;
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-keyout', join(dir, `${name}key.pem`), '-out', join(dir, cert), '-days', '1', '-subj', '/CN=localhost', '-passout', `pass:${pass}`], { stdio: 'ignore' });
  }
  const start = config();
  fixtures.push(start);
  writeFileSync(join(dir, 'gateway.json'), JSON.stringify(start));
  const sink = new Writable({
    write(chunk, _enc, done) {
      logs.push(String(chunk));
      done();
    },
  });
  gateway = new Gateway({ configFile: join(dir, 'gateway.json'), workers: 1, logger: pino({ level: 'trace' }, sink) });
  await gateway.start();
  adminUrl = `http://127.0.0.1:${gateway.admin!.port}`;
});

after(async () => {
  await gateway?.stop();
});

test('no secret of any config appears in the admin API, the audit log or the control-plane log', async () => {
  // Start (above), then every kind of change: a file reload, a valid PUT, a PUT that compile refuses, a PUT that
  // validation refuses, a rollback; and every read.
  assert.equal((await call('POST', '/reload')).status, 200);
  const next = config(false, 'jwksUrl');
  fixtures.push(next);
  assert.equal((await call('PUT', '/config?source=next', { ...next, admin: { ...next.admin, token } })).status, 200);
  const refused = config(true);
  fixtures.push(refused);
  const r = await call('PUT', '/config', { ...refused, admin: { ...refused.admin, token } });
  assert.equal(r.status, 422, 'private JWK members and a URL with a user name are refused');
  assert.ok(r.body.errors.some((e: string) => e.includes('upstreams.app.nodes[0].url')), JSON.stringify(r.body.errors));
  const invalid = { ...config(), admin: { host: '127.0.0.1', port: 0, token }, consumers: [{ id: 'c2', keys: [{ key: `${mark()} with a space` }] }] };
  fixtures.push(invalid);
  assert.equal((await call('PUT', '/config', invalid)).status, 422);
  assert.equal((await call('POST', '/config/rollback', { version: 1 })).status, 200);
  await gateway.reload({ who: 'SIGHUP' });
  for (const path of ['/config', '/config?version=1', '/config?version=2', '/config?version=3', '/config/history', '/status', '/upstreams', '/routes', '/routes/split/traffic']) {
    assert.equal((await call('GET', path)).status, 200, path);
  }

  // The fixture sets every secret field of the schema (so a new one cannot be left out of this test)…
  const wanted = secretPaths(ConfigSchema);
  const covered = new Set<string>();
  for (const f of fixtures) for (const p of markedPaths(f, ConfigSchema)) covered.add(p);
  assert.deepEqual([...wanted].filter((p) => !covered.has(p)), [], 'set these secret fields in the fixture');

  // …and none of the markers comes back anywhere.
  const current = (await call('GET', '/config')).body.config;
  assert.equal(current.admin.token, '[redacted]');
  assert.equal(current.policies.auth.methods.jwt.keys[0].secret, '[redacted]');
  assert.equal(current.policies.auth.methods.jwt.keys[0].kid, 'hs', 'what is not secret stays readable');
  const leaks: string[] = [];
  for (const a of answers) for (const m of a.text.match(MARK) ?? []) leaks.push(`${a.what}: ${m}`);
  const audit = readFileSync(join(dir, 'audit.log'), 'utf8');
  assert.ok(audit.split('\n').filter(Boolean).length >= 6, 'the changes were audited');
  for (const m of audit.match(MARK) ?? []) leaks.push(`audit log: ${m}`);
  assert.ok(logs.length > 5, 'the control plane logged');
  for (const line of logs) for (const m of line.match(MARK) ?? []) leaks.push(`log: ${line.slice(0, 200)}`);
  assert.deepEqual(leaks, []);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { ImportError, ImportReport, type Obj } from '../../src/import/common.js';
import { convertKong } from '../../src/import/kong.js';
import { convertApisix } from '../../src/import/apisix.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

// The converters' rules that the fixtures do not reach: what is refused for safety, and how paths, weights and
// shared limits come out.

type Out = { upstreams: Record<string, Obj>; routes: Obj[]; consumers: Obj[]; policies?: Obj };
const kong = (doc: Obj) => {
  const report = new ImportReport();
  return { out: convertKong({ _format_version: '3.0', ...doc }, report) as Out, issues: report.issues };
};
const apisix = (doc: Obj, text = '#END\n') => {
  const report = new ImportReport();
  return { out: convertApisix(doc, text, report) as Out, issues: report.issues };
};

test('kong: a jwt route is left out when consumers have their own keys (one could sign as another)', () => {
  const { out, issues } = kong({
    consumers: [
      { username: 'a', jwt_secrets: [{ key: 'iss-a', secret: 'a'.repeat(32) }] },
      { username: 'b', jwt_secrets: [{ key: 'iss-b', secret: 'b'.repeat(32) }] },
    ],
    services: [{ name: 's', url: 'http://10.0.0.1:8080', routes: [{ name: 'r', paths: ['/x'], plugins: [{ name: 'jwt' }] }] }],
  });
  assert.equal(out.routes.length, 0);
  const issue = issues.find((i) => i.path === 'services[0].routes[0]');
  assert.match(issue!.reason, /left out.*consumers "a" and "b" have different jwt keys/);
});

test('kong: an access plugin that cannot be converted globally stops the import', () => {
  assert.throws(() => kong({ plugins: [{ name: 'basic-auth' }], services: [] }), (e: unknown) => e instanceof ImportError && /basic-auth/.test(e.message));
  assert.throws(() => convertKong({ _format_version: '2.1' }, new ImportReport()), /_format_version is "2.1"/);
});

test('kong: strip_path with a service path, several paths, scaled weights, a service-wide rate limit', () => {
  const { out, issues } = kong({
    upstreams: [{ name: 'up', targets: [{ target: '10.0.0.1:80', weight: 65535 }, { target: '10.0.0.2', weight: 6553 }, { target: '10.0.0.3:81', weight: 0 }] }],
    services: [
      {
        name: 'svc',
        host: 'up',
        path: '/base',
        plugins: [{ name: 'rate-limiting', config: { second: 3, hour: 100, limit_by: 'ip' } }],
        routes: [
          { name: 'r', paths: ['/a', '/b/'] },
          { name: 'keep', paths: ['/c'], strip_path: false },
        ],
      },
    ],
  });
  assert.deepEqual(out.upstreams.up.nodes, [
    { url: 'http://10.0.0.1:80', weight: 1000 },
    { url: 'http://10.0.0.2:8000', weight: 100 }, // Kong's default target port
    { url: 'http://10.0.0.3:81', weight: 0 },
  ]);
  assert.ok(issues.some((i) => /scaled/.test(i.reason)));
  assert.deepEqual(
    out.routes.map((r) => [r.name, (r.match as Obj).prefix, r.rewrite]),
    [['r-1', '/a', '/base/*'], ['r-2', '/b', '/base/*'], ['keep', '/c', '/base/c/*']],
  );
  const limits = out.routes.map((r) => ((r.policies as Obj).rateLimit as { limits: Obj[] }).limits);
  for (const l of limits) assert.deepEqual(l.map((x) => x.name), ['svc-second', 'svc-hour'], 'one bucket per window for the whole service');
});

test('kong: acl becomes authorize on roles; acl deny lists keep the route out', () => {
  const consumers = [{ username: 'ops', keyauth_credentials: [{ key: 'k'.repeat(20) }], acls: [{ group: 'admins' }] }];
  const service = (acl: Obj) => [{ name: 's', url: 'http://10.0.0.1', routes: [{ name: 'r', paths: ['/admin'], plugins: [{ name: 'key-auth' }, { name: 'acl', config: acl }] }] }];
  const allow = kong({ consumers, services: service({ allow: ['admins'] }) });
  assert.deepEqual((allow.out.routes[0].policies as Obj).authorize, { subscription: false, roles: { anyOf: ['admins'] } });
  assert.deepEqual(allow.out.consumers[0].roles, ['admins']);
  const deny = kong({ consumers, services: service({ deny: ['guests'] }) });
  assert.equal(deny.out.routes.length, 0);
});

test('kong: global plugins go to the top level; a route repeats a policy only where it differs', () => {
  const { out } = kong({
    plugins: [{ name: 'cors', config: { origins: ['https://a.example'] } }],
    services: [
      {
        name: 's',
        url: 'http://10.0.0.1',
        routes: [
          { name: 'plain', paths: ['/p'] },
          { name: 'own', paths: ['/o'], plugins: [{ name: 'cors', config: { origins: ['https://b.example'] } }] },
        ],
      },
    ],
  });
  assert.deepEqual(out.policies, { cors: { origins: ['https://a.example'] } });
  assert.equal(out.routes[0].policies, undefined);
  assert.deepEqual((out.routes[1].policies as Obj).cors, { origins: ['https://b.example'] });
});

test('apisix: uri forms, vars on headers and args, and an unsupported time window', () => {
  const { out, issues } = apisix({
    upstreams: [{ id: 1, nodes: { '10.0.0.1:80': 1 } }],
    routes: [
      { id: 1, uri: '/users/:id', upstream_id: 1 },
      { id: 2, uri: '/files*', upstream_id: 1 },
      { id: 3, uri: '/beta/*', upstream_id: 1, vars: [['http_x_beta', '==', '1'], ['arg_v', '~~', '^[0-9]+$']] },
      { id: 4, uri: '/slow', upstream_id: 1, plugins: { 'limit-count': { count: 10, time_window: 10 } } },
    ],
  });
  assert.deepEqual(out.routes.map((r) => r.match), [
    { path: '/users/:id' },
    { prefix: '/files' },
    { prefix: '/beta', headers: { 'x-beta': '1' }, query: { v: { regex: '^[0-9]+$' } } },
    { path: '/slow' },
  ]);
  assert.ok(issues.some((i) => i.path === 'routes[1].uri' && /matches by text/.test(i.reason)));
  assert.ok(issues.some((i) => i.path === 'routes[3].plugins.limit-count' && /10 per 10 s/.test(i.reason)));
  assert.equal(out.routes[3].policies, undefined);
});

test('apisix: a global limit-count keeps one bucket on routes with their own limits', () => {
  const { out } = apisix({
    upstreams: [{ id: 1, nodes: { '10.0.0.1:80': 1 } }],
    global_rules: [{ id: 1, plugins: { 'limit-count': { count: 100, time_window: 60, rejected_code: 429 } } }],
    routes: [
      { id: 1, uri: '/a', upstream_id: 1 },
      { id: 2, uri: '/b', upstream_id: 1, plugins: { 'limit-count': { count: 5, time_window: 1, rejected_code: 429 } } },
    ],
  });
  const global = (out.policies!.rateLimit as { limits: Obj[] }).limits;
  assert.deepEqual(global, [{ key: 'ip', algorithm: 'slidingWindow', rate: 100, per: 'minute', name: 'global-1' }]);
  assert.equal(out.routes[0].policies, undefined);
  assert.deepEqual(((out.routes[1].policies as Obj).rateLimit as { limits: Obj[] }).limits, [global[0], { key: 'ip', algorithm: 'slidingWindow', rate: 5, per: 'second' }]);
});

test('each command refuses the other product\'s file', () => {
  assert.throws(() => convertApisix({ _format_version: '3.0', services: [] }, '#END\n', new ImportReport()), /use nanogate import kong/);
  assert.throws(() => convertKong({ routes: [], upstreams: [] }, new ImportReport()), /_format_version is missing/);
});

test('kong: header conditions, consistent hashing with a fallback, health-check intervals', () => {
  const { out, issues } = kong({
    upstreams: [
      {
        name: 'up',
        algorithm: 'consistent-hashing',
        hash_on: 'header',
        hash_on_header: 'X-User',
        hash_fallback: 'ip',
        healthchecks: { active: { http_path: '/ping', healthy: { interval: 0 }, unhealthy: { interval: 2, timeouts: 4 } } },
        targets: [{ target: '10.0.0.1:8080' }],
      },
    ],
    services: [{ name: 's', host: 'up', routes: [{ name: 'r', paths: ['/'], headers: { 'x-beta': ['1'], 'x-tier': ['~*^gold'] }, strip_path: true }] }],
  });
  const up = out.upstreams.up;
  assert.equal(up.balancer, 'consistent-hash');
  assert.deepEqual(up.balancing, { consistentHash: { hashOn: ['header:x-user', 'ip'] } });
  assert.deepEqual(up.healthCheck, { type: 'http', intervalMs: 2000, path: '/ping', expectedStatuses: [200, 302], healthyThreshold: 1, unhealthyThreshold: 4 });
  assert.ok(issues.some((i) => i.path === 'upstreams[0].healthchecks.active' && /only unhealthy nodes are probed/.test(i.reason)));
  assert.deepEqual(out.routes[0].match, { prefix: '/', headers: { 'x-beta': '1', 'x-tier': { regex: '^gold' } } });
  assert.equal(out.routes[0].stripPrefix, undefined, 'stripping "/" changes nothing');
});

test('kong: a route with an unconvertible access plugin on its service is left out, other routes stay', () => {
  const { out, issues } = kong({
    services: [
      { name: 'locked', url: 'http://10.0.0.1', plugins: [{ name: 'oauth2' }], routes: [{ name: 'a', paths: ['/a'] }] },
      { name: 'open', url: 'http://10.0.0.2', plugins: [{ name: 'zipkin' }], routes: [{ name: 'b', paths: ['/b'] }] },
    ],
  });
  assert.deepEqual(out.routes.map((r) => r.name), ['b']);
  assert.ok(issues.some((i) => i.path === 'services[0].routes[0]' && /left out.*services\[0\]\.plugins\[0\]: plugin "oauth2"/.test(i.reason)));
  assert.ok(issues.some((i) => i.path === 'services[1].plugins[0]' && /"zipkin" has no nanogate counterpart; not converted/.test(i.reason)));
});

test('apisix: routes of one service share the upstream declared inline on it', () => {
  const { out } = apisix({
    services: [{ id: 1, name: 'shop', upstream: { nodes: { '10.0.0.1:80': 1 } } }],
    routes: [
      { id: 1, uri: '/a', service_id: 1 },
      { id: 2, uri: '/b', service_id: 1 },
    ],
  });
  assert.deepEqual(Object.keys(out.upstreams), ['shop']);
  assert.deepEqual(out.routes.map((r) => r.upstream), ['shop', 'shop']);
});

// The side-by-side in each migration guide is what the importer writes for the guide's own excerpt.
for (const [guide, convert] of [
  ['docs/migrating-from-kong.md', (doc: unknown, text: string) => convertKong(doc, new ImportReport(), text)],
  ['docs/migrating-from-apisix.md', (doc: unknown, text: string) => convertApisix(doc, text, new ImportReport())],
] as const) {
  test(`${guide}: the nanogate side of "One config side by side" is the import of its other side`, () => {
    const text = readFileSync(join(ROOT, guide), 'utf8');
    const section = text.slice(text.indexOf('## One config side by side'));
    const [source, converted] = [...section.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]);
    const out = convert(parse(source), source) as Obj;
    const expected = parse(converted) as Obj;
    for (const k of Object.keys(out)) {
      const v = out[k];
      if ((Array.isArray(v) && !v.length) || (isObjLike(v) && !Object.keys(v).length)) delete out[k];
    }
    assert.deepEqual(out, expected);
  });
}

function isObjLike(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

test('request body limits: Kong request-size-limiting and APISIX client-control, global and per route', () => {
  const k = kong({
    plugins: [{ name: 'request-size-limiting', config: { allowed_payload_size: 8 } }],
    services: [
      {
        name: 's',
        url: 'http://10.0.0.1',
        routes: [
          { name: 'default', paths: ['/a'] },
          { name: 'upload', paths: ['/u'], plugins: [{ name: 'request-size-limiting', config: { allowed_payload_size: 512, size_unit: 'kilobytes' } }] },
        ],
      },
    ],
  });
  assert.deepEqual((k.out as Obj).limits, { maxBodyBytes: 8 * 1048576 });
  assert.deepEqual(k.out.routes.map((r) => r.maxBodyBytes), [undefined, 512 * 1024]);
  const a = apisix({
    upstreams: [{ id: 1, nodes: { '10.0.0.1:80': 1 } }],
    routes: [{ id: 1, uri: '/u', upstream_id: 1, plugins: { 'client-control': { max_body_size: 1024 } } }],
  });
  assert.equal(a.out.routes[0].maxBodyBytes, 1024);
});

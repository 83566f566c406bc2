import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/load.js';
import { compileConfig } from '../../src/config/compile.js';
import { Runtime } from '../../src/worker/runtime.js';

/**
 * Routing priority, case by case, on the compiled router (Runtime.match over compileConfig's plan). The random
 * conformance suite (test/conformance/router.test.ts) covers the same rules broadly; these name each rule.
 */

function runtime(routes: string): Runtime {
  const text = `upstreams:\n  u: { nodes: [{ url: "http://127.0.0.1:9" }] }\nroutes:\n${routes}\n`;
  return new Runtime(compileConfig(loadConfigText(text, 't.yaml', {}), 't.yaml').plan, null);
}

interface Req {
  method?: string;
  host?: string;
  headers?: Record<string, string>;
  query?: string;
}

/** The name of the route chosen for `path`, or null; the host goes through as the handler passes it. */
function route(rt: Runtime, path: string, req: Req = {}): string | null {
  const names = Object.keys(req.headers ?? {});
  const r = rt.match(rt.hostRouting ? (req.host ?? 'localhost') : '', path, {
    method: req.method ?? 'GET',
    headerNames: names,
    headerValues: names.map((n) => req.headers![n]),
    headerCount: names.length,
    query: req.query ?? '',
  });
  return r === null ? null : r.plan.name;
}

test('a static segment beats a param, which beats a wildcard', () => {
  const rt = runtime(`
  - { name: wild, match: { path: /u/* }, upstream: u }
  - { name: param, match: { path: /u/:id }, upstream: u }
  - { name: static, match: { path: /u/me }, upstream: u }
  - { name: deep-param, match: { path: /u/:id/posts }, upstream: u }
`);
  assert.equal(route(rt, '/u/me'), 'static');
  assert.equal(route(rt, '/u/42'), 'param');
  assert.equal(route(rt, '/u/me2'), 'param');
  assert.equal(route(rt, '/u/42/posts'), 'deep-param');
  assert.equal(route(rt, '/u/me/posts'), 'deep-param', 'backtracks from the static branch to the param one');
  assert.equal(route(rt, '/u/42/comments'), 'wild');
  assert.equal(route(rt, '/u/'), 'wild', 'a wildcard takes an empty rest, a param does not');
  assert.equal(route(rt, '/u'), null);
});

test('the earlier segment decides: a static first segment beats a param one whatever follows', () => {
  const rt = runtime(`
  - { name: param-first, match: { path: /:a/b/c }, upstream: u }
  - { name: static-first, match: { path: /x/* }, upstream: u }
`);
  assert.equal(route(rt, '/x/b/c'), 'static-first');
  assert.equal(route(rt, '/y/b/c'), 'param-first');
});

test('the longest prefix wins, and a prefix matches whole segments only', () => {
  const rt = runtime(`
  - { name: root, match: { prefix: / }, upstream: u }
  - { name: api, match: { prefix: /api }, upstream: u }
  - { name: v1, match: { prefix: /api/v1 }, upstream: u }
`);
  assert.equal(route(rt, '/api/v1/users'), 'v1');
  assert.equal(route(rt, '/api/v1'), 'v1');
  assert.equal(route(rt, '/api/v10'), 'api');
  assert.equal(route(rt, '/api'), 'api');
  assert.equal(route(rt, '/apix'), 'root');
  assert.equal(route(rt, '/'), 'root');
});

test('an exact path beats a prefix on the same path; a path wildcard beats a prefix below it', () => {
  const rt = runtime(`
  - { name: prefix, match: { prefix: /docs }, upstream: u }
  - { name: exact, match: { path: /docs }, upstream: u }
  - { name: wild, match: { path: /docs/* }, upstream: u }
`);
  assert.equal(route(rt, '/docs'), 'exact');
  assert.equal(route(rt, '/docs/a/b'), 'wild');
});

test('an exact host beats *.suffix (longest first), which beats routes without hosts', () => {
  const rt = runtime(`
  - { name: any, match: { prefix: / }, upstream: u }
  - { name: wild, match: { prefix: /, hosts: ["*.example.com"] }, upstream: u }
  - { name: wild-b, match: { prefix: /, hosts: ["*.b.example.com"] }, upstream: u }
  - { name: exact, match: { prefix: /, hosts: [api.example.com] }, upstream: u }
`);
  assert.equal(route(rt, '/x', { host: 'api.example.com' }), 'exact');
  assert.equal(route(rt, '/x', { host: 'www.example.com' }), 'wild');
  assert.equal(route(rt, '/x', { host: 'a.b.example.com' }), 'wild-b');
  assert.equal(route(rt, '/x', { host: 'deep.a.b.example.com' }), 'wild-b');
  assert.equal(route(rt, '/x', { host: 'example.com' }), 'any', '*.example.com needs a label before the suffix');
  assert.equal(route(rt, '/x', { host: 'notexample.com' }), 'any');
});

test('a host route that does not match the path falls back to less specific hosts', () => {
  const rt = runtime(`
  - { name: api-users, match: { path: /users, hosts: [api.example.com] }, upstream: u }
  - { name: any, match: { prefix: / }, upstream: u }
`);
  assert.equal(route(rt, '/users', { host: 'api.example.com' }), 'api-users');
  assert.equal(route(rt, '/other', { host: 'api.example.com' }), 'any');
});

test('method lists filter, HEAD is served by GET routes, and a path that matches another method reports it', () => {
  const rt = runtime(`
  - { name: read, match: { path: /m, methods: [GET] }, upstream: u }
  - { name: write, match: { path: /m, methods: [POST, PUT] }, upstream: u }
`);
  assert.equal(route(rt, '/m', { method: 'GET' }), 'read');
  assert.equal(route(rt, '/m', { method: 'HEAD' }), 'read');
  assert.equal(route(rt, '/m', { method: 'PUT' }), 'write');
  assert.equal(route(rt, '/m', { method: 'DELETE' }), null);
  assert.equal(rt.allowedMethods(), 'GET, POST, PUT');
  assert.equal(route(rt, '/n', { method: 'DELETE' }), null);
  assert.equal(rt.allowedMethods(), '', 'no path match: nothing to allow (404, not 405)');
});

test('header predicates: exact, prefix, regex and present', () => {
  const rt = runtime(`
  - { name: exact, match: { path: /h, headers: { X-Version: "2" } }, upstream: u }
  - { name: prefix, match: { path: /h, headers: { x-client: { prefix: "mobile-" } } }, upstream: u, priority: 1 }
  - { name: regex, match: { path: /h, headers: { x-tenant: { regex: "^t[0-9]+$" } } }, upstream: u, priority: 2 }
  - { name: present, match: { path: /h, headers: { x-debug: { present: true } } }, upstream: u, priority: 3 }
  - { name: absent, match: { path: /h, headers: { x-debug: { present: false } } }, upstream: u, priority: 3 }
`);
  assert.equal(route(rt, '/h', { headers: { 'x-debug': '' } }), 'present');
  assert.equal(route(rt, '/h', { headers: { 'x-tenant': 't42' } }), 'absent', 'without x-debug the present:false route wins by priority');
  const noAbsent = runtime(`
  - { name: exact, match: { path: /h, headers: { X-Version: "2" } }, upstream: u }
  - { name: prefix, match: { path: /h, headers: { x-client: { prefix: "mobile-" } } }, upstream: u, priority: 1 }
  - { name: regex, match: { path: /h, headers: { x-tenant: { regex: "^t[0-9]+$" } } }, upstream: u, priority: 2 }
`);
  assert.equal(route(noAbsent, '/h', { headers: { 'x-version': '2' } }), 'exact');
  assert.equal(route(noAbsent, '/h', { headers: { 'x-version': '20' } }), null);
  assert.equal(route(noAbsent, '/h', { headers: { 'x-client': 'mobile-ios' } }), 'prefix');
  assert.equal(route(noAbsent, '/h', { headers: { 'x-client': 'desktop' } }), null);
  assert.equal(route(noAbsent, '/h', { headers: { 'x-tenant': 't42' } }), 'regex');
  assert.equal(route(noAbsent, '/h', { headers: { 'x-tenant': 'tx' } }), null);
  assert.equal(route(noAbsent, '/h', { headers: { 'x-tenant': 't1', 'x-version': '2' } }), 'regex', 'priority decides when several accept');
});

test('query predicates: exact, prefix, regex and present, on decoded values', () => {
  const rt = runtime(`
  - { name: exact, match: { path: /q, query: { v: "a b" } }, upstream: u, priority: 3 }
  - { name: prefix, match: { path: /q, query: { lang: { prefix: "en" } } }, upstream: u, priority: 2 }
  - { name: regex, match: { path: /q, query: { id: { regex: "^[0-9]+$" } } }, upstream: u, priority: 1 }
  - { name: present, match: { path: /q, query: { debug: { present: true } } }, upstream: u }
`);
  assert.equal(route(rt, '/q', { query: 'v=a%20b' }), 'exact');
  assert.equal(route(rt, '/q', { query: 'v=a+b' }), 'exact');
  assert.equal(route(rt, '/q', { query: 'lang=en-GB' }), 'prefix');
  assert.equal(route(rt, '/q', { query: 'id=123' }), 'regex');
  assert.equal(route(rt, '/q', { query: 'id=12a' }), null);
  assert.equal(route(rt, '/q', { query: 'debug' }), 'present');
  assert.equal(route(rt, '/q', { query: 'x=1' }), null);
});

test('priority breaks ties between routes on the same path, whatever the declaration order', () => {
  for (const order of [['low', 'high'], ['high', 'low']]) {
    const rt = runtime(
      order
        .map((n) => `  - { name: ${n}, match: { path: /p, ${n === 'high' ? 'methods: [GET] ' : ''}}, upstream: u, priority: ${n === 'high' ? 10 : 0} }`)
        .join('\n'),
    );
    assert.equal(route(rt, '/p'), 'high');
    assert.equal(route(rt, '/p', { method: 'POST' }), 'low');
  }
});

test('more conditions rank before fewer on the same path', () => {
  const rt = runtime(`
  - { name: plain, match: { path: /c }, upstream: u }
  - { name: beta, match: { path: /c, headers: { x-beta: "1" } }, upstream: u }
`);
  assert.equal(route(rt, '/c', { headers: { 'x-beta': '1' } }), 'beta');
  assert.equal(route(rt, '/c'), 'plain');
});

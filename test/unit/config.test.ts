import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/load.js';
import { compileConfig } from '../../src/config/compile.js';
import { ConfigError } from '../../src/config/errors.js';
import { Runtime } from '../../src/worker/runtime.js';

/**
 * The config front door: YAML and JSON, ${VAR} interpolation, schema errors with did-you-mean hints, and the
 * compile checks (unknown upstream, ambiguous routes, shadowed routes). Messages are asserted whole where the format
 * `FILE: path: reason (hint)` is the contract.
 */

const FILE = 'gw.yaml';
const UPSTREAMS = `
upstreams:
  users: { nodes: [{ url: "http://127.0.0.1:9001" }] }
`;

function load(text: string, env: NodeJS.ProcessEnv = {}) {
  return loadConfigText(text, FILE, env);
}

function compile(text: string, env: NodeJS.ProcessEnv = {}) {
  return compileConfig(load(text, env), FILE);
}

/** The ConfigError a call throws; fails the test when it does not throw one. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  assert.fail('expected a ConfigError');
}

function lines(err: ConfigError): string[] {
  return err.message.split('\n');
}

// ------------------------------------------------------------------------------------------------ formats

test('a YAML config and the same config as JSON load to the same values, defaults filled in', () => {
  const yaml = `
workers: 2
upstreams:
  users:
    nodes:
      - url: http://127.0.0.1:9001
routes:
  - name: user
    match: { path: /users/:id, methods: [GET] }
    upstream: users
`;
  const json = JSON.stringify({
    workers: 2,
    upstreams: { users: { nodes: [{ url: 'http://127.0.0.1:9001' }] } },
    routes: [{ name: 'user', match: { path: '/users/:id', methods: ['GET'] }, upstream: 'users' }],
  });
  const a = load(yaml);
  const b = loadConfigText(json, 'gw.json', {});
  assert.deepEqual(a, b);
  assert.equal(a.workers, 2);
  assert.equal(a.listen.port, 8080);
  assert.equal(a.limits.maxUrlLength, 8192);
  assert.equal(a.upstreams.users.balancer, 'round-robin');
  assert.equal(a.routes[0].priority, 0);
  assert.equal(a.routes[0].hostHeader, 'upstream');
  // and both compile to a plan with the route
  assert.equal(compileConfig(b, 'gw.json').plan.routes[0].name, 'user');
});

test('a YAML syntax error names the file and the line', () => {
  const err = configError(() => load('upstreams:\n  users: { nodes: [\n'));
  assert.match(err.message, /^gw\.yaml: line \d+, column \d+: /);
});

test('a JSON syntax error names the line too', () => {
  const err = configError(() => loadConfigText('{"routes": [}', 'gw.json', {}));
  assert.match(err.message, /^gw\.json: line 1, column \d+: /);
});

// ------------------------------------------------------------------------------------------------ interpolation

test('${VAR} is replaced from the environment and a number stays a number', () => {
  const c = load(`listen: { host: "\${NG_HOST}", port: \${NG_PORT} }\n${UPSTREAMS}`, { NG_HOST: '127.0.0.2', NG_PORT: '9090' });
  assert.equal(c.listen.host, '127.0.0.2');
  assert.equal(c.listen.port, 9090);
});

test('${VAR:-default} uses the default when the variable is unset or empty, and the variable when set', () => {
  const text = `listen: { port: \${NG_PORT:-8181} }\nproxy: { via: "\${NG_VIA:-edge}" }\n${UPSTREAMS}`;
  assert.equal(load(text, {}).listen.port, 8181);
  assert.equal(load(text, { NG_PORT: '' }).listen.port, 8181);
  assert.equal(load(text, { NG_PORT: '7070', NG_VIA: 'gw-1' }).listen.port, 7070);
  assert.equal(load(text, { NG_PORT: '7070', NG_VIA: 'gw-1' }).proxy.via, 'gw-1');
});

test('an unset ${VAR} without a default is an error naming the variable and its line', () => {
  const err = configError(() => load(`workers: 1\nlisten:\n  port: \${NG_TEST_UNSET}\n`, {}));
  assert.equal(err.file, FILE);
  assert.equal(err.issues.length, 1);
  assert.match(lines(err)[0], /^gw\.yaml: line 3: environment variable NG_TEST_UNSET is not set/);
  assert.match(lines(err)[0], /\$\{NG_TEST_UNSET:-default\}/, 'the hint shows how to give a default');
});

test('every unset variable is reported, not only the first', () => {
  const err = configError(() => load('listen: { host: "${NG_A}", port: ${NG_B} }\n', {}));
  assert.equal(err.issues.length, 2);
  assert.match(err.message, /NG_A is not set/);
  assert.match(err.message, /NG_B is not set/);
});

// ------------------------------------------------------------------------------------------------ schema errors

// Unknown keys at every level get refused with a hint naming the key that was meant.
const TYPOS: Array<{ where: string; text: string; line: string }> = [
  { where: 'top level', text: `listne: { port: 1 }\n${UPSTREAMS}`, line: 'gw.yaml: listne: unknown key "listne" (did you mean "listen"?)' },
  { where: 'limits', text: `limits: { maxUrlLenght: 100 }\n${UPSTREAMS}`, line: 'gw.yaml: limits.maxUrlLenght: unknown key "maxUrlLenght" (did you mean "maxUrlLength"?)' },
  {
    where: 'a route',
    text: `${UPSTREAMS}routes:\n  - { name: a, match: { path: /a }, upstream: users, prority: 2 }\n`,
    line: 'gw.yaml: routes[0].prority: unknown key "prority" (did you mean "priority"?)',
  },
  {
    where: 'a route match',
    text: `${UPSTREAMS}routes:\n  - { name: a, match: { path: /a, metods: [GET] }, upstream: users }\n`,
    line: 'gw.yaml: routes[0].match.metods: unknown key "metods" (did you mean "methods"?)',
  },
  {
    where: 'route timeouts',
    text: `${UPSTREAMS}routes:\n  - { name: a, match: { path: /a }, upstream: users, timeouts: { readMS: 5 } }\n`,
    line: 'gw.yaml: routes[0].timeouts.readMS: unknown key "readMS" (did you mean "readMs"?)',
  },
  {
    where: 'an upstream',
    text: 'upstreams:\n  users: { nodes: [{ url: "http://127.0.0.1:9001" }], balancr: round-robin }\n',
    line: 'gw.yaml: upstreams.users.balancr: unknown key "balancr" (did you mean "balancer"?)',
  },
  {
    where: 'an upstream node',
    text: 'upstreams:\n  users: { nodes: [{ url: "http://127.0.0.1:9001", wieght: 2 }] }\n',
    line: 'gw.yaml: upstreams.users.nodes[0].wieght: unknown key "wieght" (did you mean "weight"?)',
  },
  {
    where: 'a header predicate',
    text: `${UPSTREAMS}routes:\n  - { name: a, match: { path: /a, headers: { x-v: { exakt: "1" } } }, upstream: users }\n`,
    line: 'gw.yaml: routes[0].match.headers.x-v.exakt: unknown key "exakt" (did you mean "exact"?)',
  },
];
for (const t of TYPOS) {
  test(`an unknown key in ${t.where} is refused with a did-you-mean hint`, () => {
    const err = configError(() => load(t.text));
    assert.ok(lines(err).includes(t.line), `expected the line\n  ${t.line}\ngot\n  ${lines(err).join('\n  ')}`);
  });
}

test('a value of the wrong type names its path', () => {
  const err = configError(() => load(`listen: { port: "eighty" }\n${UPSTREAMS}`));
  assert.equal(err.issues[0].path, 'listen.port');
  assert.match(lines(err)[0], /^gw\.yaml: listen\.port: /);
});

test('an enum value names the allowed values', () => {
  const err = configError(() => load('upstreams:\n  users: { nodes: [{ url: "http://127.0.0.1:9001" }], balancer: random }\n'));
  assert.ok(lines(err).includes('gw.yaml: upstreams.users.balancer: must be one of "round-robin", "least-request", "consistent-hash", "peak-ewma", "least-connections"'), err.message);
});

// ------------------------------------------------------------------------------------------------ compile errors

test('an unknown upstream names file, path and reason, with a suggestion', () => {
  const err = configError(() =>
    compile(`${UPSTREAMS}routes:
  - { name: a, match: { path: /a }, upstream: users }
  - { name: b, match: { path: /b }, upstream: userz }
`),
  );
  assert.deepEqual(lines(err), ['gw.yaml: routes[1].upstream: unknown upstream "userz" (did you mean "users"?)']);
});

test('every compile problem is reported at once', () => {
  const err = configError(() =>
    compile(`${UPSTREAMS}proxy: { trustedProxies: [not-an-ip] }
routes:
  - { name: a, match: { path: /a }, upstream: userz }
  - { name: a, match: { path: /b }, upstream: users }
  - { name: c, match: { path: /c/:x }, upstream: users, rewrite: /d/:y }
`),
  );
  const paths = err.issues.map((i) => i.path).sort();
  assert.deepEqual(paths, ['proxy.trustedProxies[0]', 'routes[0].upstream', 'routes[1].name', 'routes[2].rewrite']);
  for (const line of lines(err)) assert.match(line, /^gw\.yaml: (routes|proxy)/);
});

test('a route needs exactly one of path and prefix', () => {
  const err = configError(() => compile(`${UPSTREAMS}routes:\n  - { name: a, match: { path: /a, prefix: /b }, upstream: users }\n`));
  assert.deepEqual(err.issues.map((i) => i.path), ['routes[0].match']);
});

test('an admin API off loopback without a token is refused', () => {
  const err = configError(() => compile(`admin: { host: 0.0.0.0 }\n${UPSTREAMS}`));
  assert.deepEqual(err.issues.map((i) => i.path), ['admin.token']);
});

// ------------------------------------------------------------------------------------------------ ambiguity

const AMBIGUOUS: Array<{ why: string; routes: string }> = [
  { why: 'the same path', routes: '  - { name: a, match: { path: /x }, upstream: users }\n  - { name: b, match: { path: /x }, upstream: users }' },
  { why: 'the same path with differently named params', routes: '  - { name: a, match: { path: /u/:id }, upstream: users }\n  - { name: b, match: { path: /u/:name }, upstream: users }' },
  { why: 'prefixes that differ by a trailing slash', routes: '  - { name: a, match: { prefix: /api }, upstream: users }\n  - { name: b, match: { prefix: /api/ }, upstream: users }' },
  { why: 'overlapping methods', routes: '  - { name: a, match: { path: /x, methods: [GET, POST] }, upstream: users }\n  - { name: b, match: { path: /x, methods: [POST, PUT] }, upstream: users }' },
  {
    why: 'the same host',
    routes: '  - { name: a, match: { path: /x, hosts: [api.example.com] }, upstream: users }\n  - { name: b, match: { path: /x, hosts: [API.example.com] }, upstream: users }',
  },
];
for (const a of AMBIGUOUS) {
  test(`two routes on ${a.why} with no rule to choose are refused`, () => {
    const err = configError(() => compile(`${UPSTREAMS}routes:\n${a.routes}\n`));
    assert.deepEqual([...new Set(err.issues.map((i) => i.path))], ['routes[1]'], err.message);
    assert.match(lines(err)[0], /^gw\.yaml: routes\[1\]: route "b" matches the same requests as routes\[0\] \("a"\) with no rule to choose between them/);
  });
}

test('an ambiguous pair of prefix routes is reported once, not once per pattern a prefix expands to', () => {
  const err = configError(() => compile(`${UPSTREAMS}routes:\n${AMBIGUOUS[2].routes}\n`));
  assert.equal(lines(err).length, 1, err.message);
});

test('routes told apart by method, header value, query value, priority or host are accepted', () => {
  const { plan, warnings } = compile(`${UPSTREAMS}routes:
  - { name: get, match: { path: /x, methods: [GET] }, upstream: users }
  - { name: post, match: { path: /x, methods: [POST] }, upstream: users }
  - { name: v1, match: { path: /y, headers: { x-version: "1" } }, upstream: users }
  - { name: v2, match: { path: /y, headers: { x-version: "2" } }, upstream: users }
  - { name: q1, match: { path: /q, query: { v: "1" } }, upstream: users }
  - { name: q2, match: { path: /q, query: { v: "2" } }, upstream: users }
  - { name: hi, match: { path: /z, methods: [GET] }, upstream: users, priority: 5 }
  - { name: lo, match: { path: /z }, upstream: users, priority: 1 }
  - { name: h1, match: { path: /h, hosts: [a.example.com] }, upstream: users }
  - { name: h2, match: { path: /h, hosts: [b.example.com] }, upstream: users }
`);
  assert.equal(plan.routes.length, 10);
  assert.equal(warnings.length, 0, warnings.join('\n'));
});

test('a GET route and a HEAD route on one path: refused as ambiguous, or HEAD goes to the HEAD route', () => {
  // A GET route also serves HEAD (RFC 9110 9.3.2), so both routes take HEAD requests. Declaration order must not
  // silently decide which one wins, and the explicit HEAD route must not be dead without a word.
  for (const order of [['get', 'head'], ['head', 'get']]) {
    const routes = order
      .map((n) => `  - { name: ${n}, match: { path: /x, methods: [${n.toUpperCase()}] }, upstream: users }`)
      .join('\n');
    let result: ReturnType<typeof compile>;
    try {
      result = compile(`${UPSTREAMS}routes:\n${routes}\n`);
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /with no rule to choose/);
      continue;
    }
    const rt = new Runtime(result.plan, null);
    const route = rt.match('', '/x', { method: 'HEAD', headerNames: [], headerValues: [], headerCount: 0, query: '' });
    assert.equal(route?.plan.name, 'head', `declared ${order.join(' then ')}: HEAD went to "${route?.plan.name}"`);
  }
});

// ------------------------------------------------------------------------------------------------ shadowing

test('a route that can never match is reported as a warning, and the config still compiles', () => {
  const { plan, warnings } = compile(`${UPSTREAMS}routes:
  - { name: catch-all, match: { path: /x }, upstream: users, priority: 1 }
  - { name: get-x, match: { path: /x, methods: [GET] }, upstream: users }
`);
  assert.equal(plan.routes.length, 2);
  assert.deepEqual(warnings, ['routes[1]: route "get-x" can never match: routes[0] ("catch-all") takes every request it would']);
});

test('a route shadowed on only part of what it matches is not reported', () => {
  // the prefix route still serves /api/... even though /api itself goes to the exact route
  const { warnings } = compile(`${UPSTREAMS}routes:
  - { name: exact, match: { path: /api }, upstream: users, priority: 1 }
  - { name: prefix, match: { prefix: /api }, upstream: users }
`);
  assert.deepEqual(warnings, []);
});

test('a route with a header condition behind one without is reported only when it cannot win', () => {
  // more conditions rank first, so "v1" is reachable; with a higher priority, the plain route takes everything
  assert.deepEqual(
    compile(`${UPSTREAMS}routes:\n  - { name: plain, match: { path: /x }, upstream: users }\n  - { name: v1, match: { path: /x, headers: { x-v: "1" } }, upstream: users }\n`).warnings,
    [],
  );
  assert.equal(
    compile(`${UPSTREAMS}routes:\n  - { name: plain, match: { path: /x }, upstream: users, priority: 9 }\n  - { name: v1, match: { path: /x, headers: { x-v: "1" } }, upstream: users }\n`).warnings.length,
    1,
  );
});

test('${VAR} in a YAML comment does not have to be set', () => {
  const text = 'workers: 2 # set ${UNSET_IN_COMMENT} to change\n# secret: ${ALSO_UNSET}\nadmin: { host: 127.0.0.1, port: ${ADMIN_PORT:-9911} }\n';
  const config = loadConfigText(text, 'gw.yaml', {});
  assert.equal(config.workers, 2);
  assert.equal(config.admin.port, 9911);
  assert.throws(() => loadConfigText('workers: ${UNSET_HERE}\n', 'gw.yaml', {}), /line 1: environment variable UNSET_HERE is not set/);
});

test('a value outside a union names every allowed form', () => {
  assert.throws(() => loadConfigText('workers: many\n', 'gw.yaml', {}), /^ConfigError: gw\.yaml: workers: must be one of "auto", an integer$|gw\.yaml: workers: must be one of "auto", an integer/);
});

test('a fixed fallback may leave out headers and body: no headers, an empty body', () => {
  const config = loadConfigText(
    `
upstreams:
  app: { nodes: [{ url: http://127.0.0.1:9 }] }
routes:
  - { name: r, match: { prefix: / }, upstream: app, fallback: { status: 503 } }
`,
    'fallback.yaml',
  );
  const { plan } = compileConfig(config, 'fallback.yaml');
  assert.deepEqual(plan.routes[0].fallback, { kind: 'static', status: 503, headers: [], body: '' });
});

test('pipelining: auto by default (probe, then batches of 32), 1 is off, N is trusted without a probe, anything else is refused', () => {
  const auto = compile(`${UPSTREAMS}routes: [{ name: r, match: { prefix: / }, upstream: users }]\n`).plan.upstreams[0];
  assert.deepEqual([auto.pipelining, auto.pipeliningProbe, auto.pipeliningMaxWaitMs, auto.pipeliningSlowNodeMs, auto.probePath], [32, true, 20, 5, '/']);
  const up = (extra: string) => compile(`upstreams:\n  users: { nodes: [{ url: "http://127.0.0.1:9001" }]${extra} }\nroutes: [{ name: r, match: { prefix: / }, upstream: users }]\n`).plan.upstreams[0];
  assert.deepEqual([up(', pipelining: 1').pipelining, up(', pipelining: 1').pipeliningProbe], [1, false]);
  assert.deepEqual([up(', pipelining: 8').pipelining, up(', pipelining: 8').pipeliningProbe], [8, false]);
  assert.equal(up(', healthCheck: { path: /healthz }').probePath, '/healthz', 'the probe asks the health check path');
  const err = configError(() => load('upstreams:\n  users: { nodes: [{ url: "http://127.0.0.1:9001" }], pipelining: sometimes }\n'));
  assert.ok(lines(err).includes('gw.yaml: upstreams.users.pipelining: must be one of "auto", an integer'), err.message);
  const bounds = configError(() => load('upstreams:\n  users: { nodes: [{ url: "http://127.0.0.1:9001" }], pipeliningBounds: { maxWait: 5 } }\n'));
  assert.match(bounds.message, /upstreams\.users\.pipeliningBounds/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeConfig, startGateway } from '../helpers/gateway.js';
import { startUpstream } from '../helpers/upstream.js';
import { admin } from '../helpers/admin.js';
import { runCli } from '../helpers/cli.js';
import { closeAll, send } from '../helpers/http.js';

/** `nanogate validate` refuses a malformed `traffic:` with the path of each problem; a live apply keeps the old split. */

const T = { timeout: 60_000 };

const UPSTREAMS = `
upstreams:
  v1: { nodes: [{ url: http://127.0.0.1:9 }] }
  v2: { nodes: [{ url: http://127.0.0.1:9 }] }
`;

function route(name: string, traffic: string): string {
  return `  - name: ${name}
    match: { prefix: /${name} }
    upstream: v1
    traffic:
${traffic
  .trim()
  .split('\n')
  .map((l) => '      ' + l.trim().replace(/^- /, '  - ').replace(/^\|/, ''))
  .join('\n')}
`;
}

async function validate(yaml: string): Promise<string[]> {
  const r = await runCli(['validate', writeConfig(yaml)]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  return (r.stdout + r.stderr).split('\n').filter((l) => l.includes('routes['));
}

test('compile problems: sum, unknown upstream, duplicate names, decimals, unknown version, sticky name, secret, auth, aggregate', T, async () => {
  const yaml = `${UPSTREAMS}
routes:
${route('sum', `
versions:
- { name: stable, upstream: v1, weight: 90 }
- { name: canary, upstream: v3, weight: 5 }
`)}
${route('dup', `
versions:
- { name: stable, upstream: v1, weight: 90.05 }
- { name: stable, upstream: v2, weight: 9.95 }
`)}
${route('rules', `
versions:
- { name: stable, upstream: v1, weight: 100 }
- { name: canary, upstream: v2, weight: 0 }
sticky: { by: header }
targeting:
- { version: canry, header: { name: x-v, value: "2" } }
- { version: canary, consumer: { plans: [beta] } }
affinity: { cookie: ng, secret: too-short }
`)}
${route('sticky-cookie', `
versions: [{ name: only, upstream: v1, weight: 100 }]
sticky: { by: cookie }
`)}
${route('sticky-consumer', `
versions: [{ name: only, upstream: v1, weight: 100 }]
sticky: { by: consumer }
`)}
  - name: composed
    match: { path: /composed }
    aggregate: { calls: [{ name: part, upstream: v1, path: /x }] }
    traffic: { versions: [{ name: only, upstream: v1, weight: 100 }] }
`;
  const lines = await validate(yaml);
  const expect: [string, RegExp][] = [
    ['routes[0].traffic.versions:', /the weights add to 95, not 100/],
    ['routes[0].traffic.versions[1].upstream:', /unknown upstream "v3"/],
    ['routes[1].traffic.versions[1].name:', /duplicate version name "stable"/],
    ['routes[1].traffic.versions[0].weight:', /90.05 has more than one decimal/],
    ['routes[2].traffic.sticky.name:', /sticky by header needs the header name/],
    ['routes[2].traffic.targeting[0].version:', /unknown version "canry".*canary/],
    ['routes[2].traffic.targeting[1].consumer:', /needs an auth policy/],
    ['routes[2].traffic.affinity.secret:', /shorter than 16 bytes/],
    ['routes[3].traffic.sticky.name:', /sticky by cookie needs the cookie name/],
    ['routes[4].traffic.sticky.by:', /sticky by consumer needs an auth policy/],
    ['routes[5].traffic:', /an aggregate route .* a traffic split does not apply/],
  ];
  for (const [path, reason] of expect) {
    const line = lines.find((l) => l.includes(`: ${path} `));
    assert.ok(line, `no problem reported at ${path}:\n${lines.join('\n')}`);
    assert.match(line, reason);
  }
  assert.ok(!lines.some((l) => l.includes('secret') && l.includes('too-short')), 'the secret is not echoed');
});

test('schema problems: affinity without a secret, a weight out of range, an empty version list', T, async () => {
  const lines = await validate(`${UPSTREAMS}
routes:
${route('a', `
versions: [{ name: only, upstream: v1, weight: 100 }]
affinity: { cookie: ng }
`)}
${route('b', `
versions: [{ name: only, upstream: v1, weight: 120 }]
`)}
${route('c', `
versions: []
`)}
`);
  assert.ok(lines.some((l) => /routes\[0\]\.traffic\.affinity: .*"secret"/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /routes\[1\]\.traffic\.versions\[0\]\.weight: .*100/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /routes\[2\]\.traffic\.versions: /.test(l)), lines.join('\n'));
});

test('a refused traffic config on a live gateway leaves the running split serving', T, async () => {
  const stable = await startUpstream((_q, res) => res.writeHead(200, { 'x-served-by': 'stable' }).end());
  const canary = await startUpstream((_q, res) => res.writeHead(200, { 'x-served-by': 'canary' }).end());
  const good = (w: number) => `
upstreams:
  v1: { nodes: [{ url: ${stable.url} }] }
  v2: { nodes: [{ url: ${canary.url} }] }
routes:
  - name: r
    match: { prefix: / }
    upstream: v1
    traffic:
      versions:
        - { name: stable, upstream: v1, weight: ${100 - w} }
        - { name: canary, upstream: v2, weight: ${w} }
`;
  const gw = await startGateway(good(0));
  try {
    const r = await admin(gw.adminUrl, 'PUT', '/config', { body: `listen: { host: 127.0.0.1, port: 0 }\nadmin: { host: 127.0.0.1, port: 0 }\n${good(100).replace('weight: 100 }', 'weight: 60 }')}` });
    assert.equal(r.status, 422, JSON.stringify(r.body));
    assert.ok(r.body.errors.some((e: string) => e.includes('routes[0].traffic.versions: the weights add to 60')), JSON.stringify(r.body.errors));
    for (let i = 0; i < 5; i++) assert.equal((await send(gw.port, { path: '/x' })).headers['x-served-by'], 'stable');
    const view = await admin(gw.adminUrl, 'GET', '/routes/r/traffic');
    assert.deepEqual(view.body.versions.map((v: { weight: number }) => v.weight), [100, 0]);
  } finally {
    await closeAll(() => gw.stop(), () => stable.close(), () => canary.close());
  }
});

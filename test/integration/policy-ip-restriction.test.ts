import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { loadConfigText } from '../../src/config/load.js';
import { compileConfig } from '../../src/config/compile.js';
import { ConfigError } from '../../src/config/errors.js';

/**
 * ipRestriction against a real gateway and upstream on loopback. Clients here are all 127.0.0.1; addresses behind
 * a proxy come through X-Forwarded-For, which counts only from a peer in proxy.trustedProxies.
 */

let up: TestUpstream;
let direct: TestGateway; // no trusted proxies: X-Forwarded-For from clients is ignored
let proxied: TestGateway; // 127.0.0.1 is a trusted proxy

const ROUTES = `
upstreams:
  app: { nodes: [{ url: UPSTREAM }] }
policies:
  ipRestriction: { deny: [192.0.2.0/24] }
routes:
  - { name: deny-loopback, match: { prefix: /deny-loopback }, upstream: app, policies: { ipRestriction: { deny: [127.0.0.0/8] } } }
  - { name: allow-other, match: { prefix: /allow-other }, upstream: app, policies: { ipRestriction: { allow: [10.0.0.0/8] } } }
  - { name: allow-loopback, match: { prefix: /allow-loopback }, upstream: app, policies: { ipRestriction: { allow: [10.0.0.0/8, 127.0.0.1/32] } } }
  - name: deny-wins
    match: { prefix: /deny-wins }
    upstream: app
    policies: { ipRestriction: { allow: [127.0.0.0/8], deny: [127.0.0.1] } }
  - name: doc-net
    match: { prefix: /doc-net }
    upstream: app
    policies: { ipRestriction: { allow: [203.0.113.0/24, "2001:db8:aaaa::/48"], deny: [203.0.113.66, "2001:db8:aaaa:bad::/64"] } }
  - { name: v6-deny, match: { prefix: /v6-deny }, upstream: app, policies: { ipRestriction: { deny: ["2001:db8::/32", "::ffff:198.51.100.0/120"] } } }
  - { name: unrestricted, match: { prefix: /unrestricted }, upstream: app, policies: { ipRestriction: {} } }
  - { name: global, match: { prefix: /global }, upstream: app }
`;

before(async () => {
  up = await startUpstream();
  const yaml = ROUTES.replace('UPSTREAM', up.url);
  direct = await startGateway(yaml);
  proxied = await startGateway(`proxy: { trustedProxies: [127.0.0.1/32] }\n${yaml}`);
});
after(async () => {
  await direct.stop();
  await proxied.stop();
  await up.close();
});

async function call(gw: TestGateway, path: string, xff?: string): Promise<{ status: number; code: string | undefined; type: string | null }> {
  const res = await fetch(`${gw.url}${path}`, { headers: xff === undefined ? {} : { 'x-forwarded-for': xff } });
  const text = await res.text();
  const type = res.headers.get('content-type');
  return { status: res.status, code: type === 'application/problem+json' ? JSON.parse(text).code : undefined, type };
}

function assertDenied(r: { status: number; code: string | undefined }, what: string): void {
  assert.equal(r.status, 403, what);
  assert.equal(r.code, 'NG_ERR_ACCESS_IP_DENIED', what);
}

test('a direct peer in the deny list gets 403 NG_ERR_ACCESS_IP_DENIED and the upstream sees nothing', async () => {
  const before = up.received.length;
  assertDenied(await call(direct, '/deny-loopback/x'), 'denied');
  assert.equal(up.received.length, before);
});

test('a non-empty allow list admits only its blocks', async () => {
  assertDenied(await call(direct, '/allow-other'), '127.0.0.1 is not in 10.0.0.0/8');
  assert.equal((await call(direct, '/allow-loopback')).status, 200);
});

test('deny wins over allow', async () => {
  assertDenied(await call(direct, '/deny-wins'), 'allowed by /8 and denied by /32');
});

test('a global entry applies to routes without their own, and an empty route entry switches it off', async () => {
  // the global deny list names 192.0.2.0/24, which a direct loopback client is not in
  assert.equal((await call(direct, '/global')).status, 200);
  assertDenied(await call(proxied, '/global', '192.0.2.10'), 'global deny behind a trusted proxy');
  assert.equal((await call(proxied, '/unrestricted', '192.0.2.10')).status, 200);
});

test('without trusted proxies, a client-sent X-Forwarded-For neither helps nor reaches the upstream as sent', async () => {
  assertDenied(await call(direct, '/doc-net', '203.0.113.9'), 'XFF from an untrusted peer is ignored');
  assert.equal((await call(direct, '/deny-loopback', '203.0.113.9')).status, 403);
  await call(direct, '/allow-loopback', '203.0.113.9');
  assert.equal(up.received.at(-1)!.headers['x-forwarded-for'], '127.0.0.1');
});

test('behind a trusted proxy the right-most untrusted X-Forwarded-For hop is the client', async () => {
  assert.equal((await call(proxied, '/doc-net', '203.0.113.9')).status, 200);
  assertDenied(await call(proxied, '/doc-net', '198.51.100.1'), 'not in the allow list');
  assertDenied(await call(proxied, '/doc-net', '203.0.113.66'), 'in the deny list');
  // a client cannot escape by prepending a hop: the proxy appended the address it saw, which is checked
  assertDenied(await call(proxied, '/doc-net', '203.0.113.9, 198.51.100.1'), 'spoofed left-most hop');
  assert.equal((await call(proxied, '/doc-net', '198.51.100.1, 203.0.113.9')).status, 200);
  // trusted hops (127.0.0.1) at the right are skipped
  assert.equal((await call(proxied, '/doc-net', '203.0.113.9, 127.0.0.1')).status, 200);
  assertDenied(await call(proxied, '/doc-net', '198.51.100.1,127.0.0.1 , 127.0.0.1'), 'skips trusted hops, spaces or not');
  // the peer's own address is appended for the upstream
  await call(proxied, '/doc-net', '203.0.113.9');
  assert.equal(up.received.at(-1)!.headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
});

test('behind a trusted proxy, repeated X-Forwarded-For fields count as one list', async () => {
  const res = await fetch(`${proxied.url}/doc-net`, { headers: [['x-forwarded-for', '198.51.100.1'], ['x-forwarded-for', '203.0.113.9']] });
  await res.text();
  assert.equal(res.status, 200);
  const res2 = await fetch(`${proxied.url}/doc-net`, { headers: [['x-forwarded-for', '203.0.113.9'], ['x-forwarded-for', '198.51.100.1']] });
  await res2.text();
  assert.equal(res2.status, 403);
});

test('IPv6 X-Forwarded-For hops: allow and deny blocks, compressed and full forms, mapped IPv4', async () => {
  assert.equal((await call(proxied, '/doc-net', '2001:db8:aaaa::1')).status, 200);
  assert.equal((await call(proxied, '/doc-net', '2001:0DB8:AAAA:0001:0000:0000:0000:0001')).status, 200);
  assertDenied(await call(proxied, '/doc-net', '2001:db8:aaaa:bad::1'), 'in the denied /64');
  assertDenied(await call(proxied, '/doc-net', '2001:db8:aaab::1'), 'outside the allowed /48');
  assertDenied(await call(proxied, '/v6-deny', '2001:db8:ffff::1'), 'in 2001:db8::/32');
  assert.equal((await call(proxied, '/v6-deny', '2001:db9::1')).status, 200);
  assert.equal((await call(proxied, '/v6-deny', '::1')).status, 200);
  // IPv4-mapped forms are IPv4: ::ffff:198.51.100.0/120 is 198.51.100.0/24
  assertDenied(await call(proxied, '/v6-deny', '198.51.100.7'), 'mapped block, plain IPv4 client');
  assertDenied(await call(proxied, '/v6-deny', '::ffff:198.51.100.7'), 'mapped block, mapped client');
  assert.equal((await call(proxied, '/doc-net', '::ffff:203.0.113.9')).status, 200);
});

test('an X-Forwarded-For hop that is not an address is refused (fail closed)', async () => {
  assertDenied(await call(proxied, '/doc-net', 'unknown'), 'garbage hop');
  assertDenied(await call(proxied, '/v6-deny', '203.0.113.9, not-an-ip'), 'garbage right-most hop with only a deny list');
});

test('an invalid block is a config error naming its path', () => {
  const text = `
upstreams: { app: { nodes: [{ url: "http://127.0.0.1:9" }] } }
routes:
  - { name: r, match: { prefix: / }, upstream: app, policies: { ipRestriction: { allow: [10.0.0.0/8, 10.0.0.0/33] } } }
`;
  assert.throws(
    () => compileConfig(loadConfigText(text, 'gw.yaml', {}), 'gw.yaml'),
    (err: unknown) => err instanceof ConfigError && /routes\[0\]\.policies\.ipRestriction\.allow\[1\]/.test(err.message) && /10\.0\.0\.0\/33/.test(err.message),
  );
});

test('Forwarded and X-Real-IP reach the upstream only from a trusted proxy, like X-Forwarded-For', async () => {
  const claims = { forwarded: 'for=203.0.113.9;proto=https', 'x-real-ip': '203.0.113.9', 'x-other': 'kept' };
  await (await fetch(`${direct.url}/allow-loopback/claims`, { headers: claims })).text();
  let seen = up.received.at(-1)!.headers;
  assert.equal(seen['forwarded'], undefined, 'an untrusted client cannot claim an address');
  assert.equal(seen['x-real-ip'], undefined);
  assert.equal(seen['x-other'], 'kept');
  await (await fetch(`${proxied.url}/unrestricted/claims`, { headers: claims })).text();
  seen = up.received.at(-1)!.headers;
  assert.equal(seen['forwarded'], 'for=203.0.113.9;proto=https');
  assert.equal(seen['x-real-ip'], '203.0.113.9');
});

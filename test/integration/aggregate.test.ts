import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { startGateway, writeConfig, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, startRawUpstream, closedPort, type TestUpstream } from '../helpers/upstream.js';
import { assertProblem, assertNothingInternal, closeAll, send } from '../helpers/http.js';
import { runCli } from '../helpers/cli.js';

/**
 * Aggregate routes (src/aggregate/): one client request fans out to several real upstream servers in parallel,
 * the JSON answers are merged by the declared shape, and failed parts (error status, timeout, refused connection,
 * invalid JSON, too large) become error entries or fail the whole answer.
 */

/** when each request arrived and when its answer was sent, per upstream (to see that calls overlap) */
const spans: { name: string; start: number; end: number }[] = [];

/**
 * While set, the named upstreams hold each request until all of them have one (or `ms` passed): calls sent in
 * parallel overlap whatever the machine's speed, calls sent one after the other do not.
 */
let meeting: { arrive(name: string): Promise<void> } | null = null;

function meetingOf(names: string[], ms: number): { arrive(name: string): Promise<void> } {
  const arrived = new Set<string>();
  let open!: () => void;
  const all = new Promise<void>((r) => (open = r));
  const timer = setTimeout(open, ms);
  return {
    arrive(name) {
      arrived.add(name);
      if (names.every((n) => arrived.has(n))) {
        clearTimeout(timer);
        open();
      }
      return all;
    },
  };
}

function jsonAfter(name: string, delayMs: number, value: (req: IncomingMessage) => unknown) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const start = performance.now();
    const answer = () => {
      spans.push({ name, start, end: performance.now() });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(value(req)));
    };
    if (meeting) void meeting.arrive(name).then(answer);
    else setTimeout(answer, delayMs);
  };
}

let users: TestUpstream;
let orders: TestUpstream;
let flaky: TestUpstream;
let slow: TestUpstream;
let notJson: TestUpstream;
let big: TestUpstream;
let hangs: Awaited<ReturnType<typeof startRawUpstream>>;
let dead: number;
let gw: TestGateway;

before(async () => {
  users = await startUpstream(jsonAfter('users', 150, (req) => ({ id: req.url!.split('?')[0].split('/').pop(), name: 'Ada', consumer: req.headers['x-consumer'] ?? null, lang: req.headers['accept-language'] ?? null })));
  orders = await startUpstream(jsonAfter('orders', 150, (req) => ({ data: { items: [{ id: 1 }, { id: 2 }] }, url: req.url })));
  flaky = await startUpstream((_req, res) => void res.writeHead(500, { 'content-type': 'application/json' }).end('{"oops":true}'));
  slow = await startUpstream(jsonAfter('slow', 1500, () => ({ late: true })));
  notJson = await startUpstream((_req, res) => void res.writeHead(200, { 'content-type': 'text/html' }).end('<html>hi</html>'));
  big = await startUpstream((_req, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ blob: 'x'.repeat(5000) })));
  hangs = await startRawUpstream(() => {
    /* reads the request and never answers */
  });
  dead = await closedPort();
  gw = await startGateway(
    `
upstreams:
  users: { nodes: [{ url: ${users.url} }] }
  orders: { nodes: [{ url: ${orders.url} }] }
  flaky: { nodes: [{ url: ${flaky.url} }] }
  slow: { nodes: [{ url: ${slow.url} }] }
  notjson: { nodes: [{ url: ${notJson.url} }] }
  big: { nodes: [{ url: ${big.url} }] }
  hangs: { nodes: [{ url: ${hangs.url} }] }
  dead: { nodes: [{ url: http://127.0.0.1:${dead} }] }
  pair: { nodes: [{ url: http://127.0.0.1:${dead} }, { url: ${users.url} }] }
consumers:
  - { id: alice, plan: gold, keys: [{ key: aggregate-key-alice-0123456789 }] }
routes:
  - name: balanced
    match: { path: /balanced }
    aggregate:
      calls:
        - { name: profile, upstream: pair, path: /users/5 }
  - name: mine
    match: { path: /mine }
    policies:
      auth: { methods: { apiKey: { header: X-Api-Key } } }
    aggregate:
      calls:
        - { name: profile, upstream: users, path: "/users/\${consumer.id}", headers: { x-consumer: "\${consumer.plan}" } }
  - name: dashboard
    match: { path: /dashboard/:user }
    aggregate:
      calls:
        - { name: profile, upstream: users, path: "/users/\${params.user}", headers: { x-consumer: "\${header.x-who}" }, forwardHeaders: [accept-language] }
        - { name: orders, upstream: orders, path: /orders, query: { user: "\${params.user}", limit: "\${query.limit}" }, pick: data.items, into: recent.orders }
  - name: partial
    match: { path: /partial/:user }
    aggregate:
      calls:
        - { name: profile, upstream: users, path: "/users/\${params.user}" }
        - { name: broken, upstream: flaky, path: /x }
        - { name: late, upstream: slow, path: /x, timeoutMs: 300 }
        - { name: html, upstream: notjson, path: /x }
        - { name: huge, upstream: big, path: /x, maxBodyBytes: 1000 }
        - { name: silent, upstream: hangs, path: /x, timeoutMs: 300 }
        - { name: gone, upstream: dead, path: /x }
  - name: strict
    match: { path: /strict }
    aggregate:
      onPartialFailure: fail
      calls:
        - { name: profile, upstream: users, path: /users/1 }
        - { name: broken, upstream: flaky, path: /x }
  - name: required
    match: { path: /required }
    aggregate:
      calls:
        - { name: profile, upstream: users, path: /users/1 }
        - { name: orders, upstream: dead, path: /orders, required: true }
  - name: merged
    match: { path: /merged }
    aggregate:
      calls:
        - { name: a, upstream: users, path: /users/7, into: "." }
        - { name: b, upstream: flaky, path: /x, statuses: [500] }
`,
    { workers: 2 },
  );
});

after(() => closeAll(() => gw?.stop(), () => users?.close(), () => orders?.close(), () => flaky?.close(), () => slow?.close(), () => notJson?.close(), () => big?.close(), () => hangs?.close()));

test('the calls go out in parallel, templated from params, query and headers, and merge by the declared shape', async () => {
  spans.length = 0;
  const usersBefore = users.received.length;
  meeting = meetingOf(['users', 'orders'], 3000);
  const res = await send(gw.port, { path: '/dashboard/u%2042?limit=5', headers: { 'x-who': 'alice', 'accept-language': 'fr', cookie: 'secret=1' } }).finally(() => (meeting = null));
  assert.equal(res.status, 200, res.text);
  assert.equal(res.headers['content-type'], 'application/json');
  assert.equal(res.headers['x-nanogate-completed'], 'true');
  assert.ok(res.headers['x-request-id']);
  const body = JSON.parse(res.text);
  assert.deepEqual(body, { profile: { id: 'u%2042', name: 'Ada', consumer: 'alice', lang: 'fr' }, recent: { orders: [{ id: 1 }, { id: 2 }] } });
  // the param is decoded from the client's path and encoded again as one path segment
  const got = users.received.slice(usersBefore);
  assert.equal(got.length, 1);
  assert.equal(got[0].url, '/users/u%2042');
  // only the forwarded header and the gateway's own reach the call: not the client's cookie
  assert.equal(got[0].headers.cookie, undefined);
  assert.equal(got[0].headers['x-request-id'], res.headers['x-request-id']);
  assert.equal(orders.received.at(-1)!.url, '/orders?user=u%2042&limit=5');
  // both upstreams held their request at the same time: each answered once both had arrived (the meeting above),
  // so the second arrived before the first was answered; calls one after the other would wait 3 s and not overlap
  const u = spans.find((s) => s.name === 'users')!;
  const o = spans.find((s) => s.name === 'orders')!;
  assert.ok(Math.max(u.start, o.start) < Math.min(u.end, o.end), `calls did not overlap: ${JSON.stringify(spans)}`);
});

test('access policies run first, and the calls are templated from the consumer they found', async () => {
  assertProblem(await send(gw.port, { path: '/mine' }), 401, 'NG_ERR_AUTH_MISSING');
  const res = await send(gw.port, { path: '/mine', headers: { 'x-api-key': 'aggregate-key-alice-0123456789' } });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(JSON.parse(res.text).profile, { id: 'alice', name: 'Ada', consumer: 'gold', lang: null });
});

test('calls go through the upstream cluster: a refused connect is tried on another node', async () => {
  for (let i = 0; i < 6; i++) {
    const res = await send(gw.port, { path: '/balanced' });
    assert.equal(res.status, 200, res.text);
    assert.equal(JSON.parse(res.text).profile.id, '5');
  }
});

test('an empty template value leaves the query parameter out', async () => {
  const res = await send(gw.port, { path: '/dashboard/7' });
  assert.equal(res.status, 200);
  assert.equal(orders.received.at(-1)!.url, '/orders?user=7');
});

test('failed parts become error entries with stable codes, next to the parts that succeeded', async () => {
  const res = await send(gw.port, { path: '/partial/9' });
  assert.equal(res.status, 207, res.text);
  assert.equal(res.headers['x-nanogate-completed'], 'false');
  assertNothingInternal(res.text);
  assert.doesNotMatch(res.text, /127\.0\.0\.1|ECONNREFUSED/);
  const body = JSON.parse(res.text);
  assert.deepEqual(body.profile, { id: '9', name: 'Ada', consumer: null, lang: null });
  const byPart = Object.fromEntries((body.errors as { part: string; code: string }[]).map((e) => [e.part, e]));
  assert.deepEqual(byPart.broken, { part: 'broken', code: 'NG_ERR_AGGREGATE_PART_STATUS', status: 502, upstreamStatus: 500 });
  assert.deepEqual(byPart.late, { part: 'late', code: 'NG_ERR_AGGREGATE_PART_TIMEOUT', status: 504 });
  assert.deepEqual(byPart.html, { part: 'html', code: 'NG_ERR_AGGREGATE_PART_INVALID_JSON', status: 502 });
  assert.deepEqual(byPart.huge, { part: 'huge', code: 'NG_ERR_AGGREGATE_PART_TOO_LARGE', status: 502 });
  assert.equal(byPart.silent.code, 'NG_ERR_AGGREGATE_PART_TIMEOUT');
  assert.equal(byPart.gone.code, 'NG_ERR_UPSTREAM_CONNECT');
  assert.equal(Object.keys(body).sort().join(), 'errors,profile');
});

test('onPartialFailure: fail turns one failed part into a 502 problem naming the parts', async () => {
  const res = await send(gw.port, { path: '/strict' });
  const body = assertProblem(res, 502, 'NG_ERR_AGGREGATE_FAILED');
  assert.deepEqual(body.parts, [{ part: 'broken', code: 'NG_ERR_AGGREGATE_PART_STATUS', status: 502, upstreamStatus: 500 }]);
});

test('a required part that fails fails the whole answer', async () => {
  const res = await send(gw.port, { path: '/required' });
  const body = assertProblem(res, 502, 'NG_ERR_AGGREGATE_FAILED');
  assert.deepEqual(body.parts, [{ part: 'orders', code: 'NG_ERR_UPSTREAM_CONNECT', status: 502 }]);
});

test('into "." merges an answer into the top level; listed statuses count as success', async () => {
  const res = await send(gw.port, { path: '/merged' });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(JSON.parse(res.text), { id: '7', name: 'Ada', consumer: null, lang: null, b: { oops: true } });
});

test('a client that goes away cancels the calls; the gateway keeps serving', async () => {
  await assert.rejects(send(gw.port, { path: '/partial/1', timeoutMs: 50 }));
  const res = await send(gw.port, { path: '/dashboard/2' });
  assert.equal(res.status, 200);
});

test('validate refuses unknown params, unknown upstreams and clashing shapes with their paths', async () => {
  const file = writeConfig(`
upstreams:
  users: { nodes: [{ url: http://127.0.0.1:1 }] }
routes:
  - name: bad
    match: { path: /bad/:id }
    aggregate:
      calls:
        - { name: a, upstream: users, path: "/u/\${params.user}" }
        - { name: b, upstream: nobody, path: "/x", headers: { host: "x" } }
        - { name: c, upstream: users, path: "/\${cookie.sid}", into: a }
        - { name: a, upstream: users, path: "/y" }
  - name: none
    match: { path: /none }
`);
  const r = await runCli(['validate', file]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const out = r.stdout + r.stderr;
  for (const expected of [
    /routes\[0\]\.aggregate\.calls\[0\]\.path: .*no param "user" \(params: id\)/,
    /routes\[0\]\.aggregate\.calls\[1\]\.upstream: unknown upstream "nobody"/,
    /routes\[0\]\.aggregate\.calls\[1\]\.headers\.host: .*set by the gateway/,
    /routes\[0\]\.aggregate\.calls\[2\]\.path: .*not a template reference/,
    /routes\[0\]\.aggregate\.calls\[2\]\.into: "a" is also where calls\[0\] goes/,
    /routes\[0\]\.aggregate\.calls\[3\]\.name: duplicate call name "a"/,
    /routes\[1\]\.upstream: a route needs an upstream/,
  ]) {
    assert.match(out, expected);
  }
});

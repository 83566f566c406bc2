import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { writeFileSync } from 'node:fs';
import { startGateway, writeConfig, type TestGateway } from '../helpers/gateway.js';
import { closedPort, startRawUpstream, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { closeAll, send } from '../helpers/http.js';
import { eventually } from '../helpers/admin.js';
import { scrape } from '../helpers/prometheus.js';
import { runCli } from '../helpers/cli.js';

/**
 * Request mirroring (`mirror:` on a route) against real upstreams and a real two-worker gateway: the shadow gets the
 * sampled share of the matching requests, as they were forwarded plus a marker header; a slow, dead, killed or
 * hanging shadow never shows in what clients get, and every copy's fate is counted. Timing here is only ever an
 * order of events (a response came before the shadow answered), never a speed.
 */

const T = { timeout: 60_000 };
const WORKERS = 2;

/** A recording upstream whose handler may delay or refuse; copies are told from real requests by the marker. */
interface Shadow {
  port: number;
  url: string;
  /** requests received (head and whole body), in order */
  got: { method: string; url: string; headers: IncomingMessage['headers']; body: Buffer; at: number; socket: Socket }[];
  /** request url -> when its answer was written (performance.now()) */
  answeredAt: Map<string, number>;
  /** requests open right now, and the most at once */
  open: number;
  maxOpen: number;
  /** with `held`: answers the copies held so far, and every later one at once */
  release(): void;
  close(): Promise<void>;
}

async function startShadow(opts: { delayMs?: number; hang?: boolean; held?: boolean; resetCopies?: boolean } = {}): Promise<Shadow> {
  const sockets = new Set<Socket>();
  let held: (() => void)[] | null = opts.held ? [] : null;
  const s: Shadow = {
    port: 0,
    url: '',
    got: [],
    answeredAt: new Map(),
    open: 0,
    maxOpen: 0,
    release: () => {
      const waiting = held ?? [];
      held = null;
      for (const answer of waiting) answer();
    },
    close: () => new Promise<void>((r) => {
      for (const so of sockets) so.destroy();
      server.close(() => r());
    }),
  };
  const server: Server = createServer((req, res) => {
    s.open++;
    s.maxOpen = Math.max(s.maxOpen, s.open);
    let closed = false;
    const done = () => {
      if (!closed) {
        closed = true;
        s.open--;
      }
    };
    res.on('close', done);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      s.got.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks), at: performance.now(), socket: req.socket });
      const copy = req.headers['x-nanogate-mirror'] !== undefined;
      if (copy && opts.resetCopies) return void req.socket.destroy();
      if (copy && opts.hang) return; // never answers
      const answer = () => {
        s.answeredAt.set(req.url!, performance.now());
        res.writeHead(200, { 'content-type': 'text/plain' }).end(copy ? 'from-shadow' : 'from-primary');
      };
      if (copy && held) held.push(answer);
      else if (copy && opts.delayMs) setTimeout(answer, opts.delayMs);
      else answer();
    });
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', (so) => {
    sockets.add(so);
    so.on('close', () => sockets.delete(so));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  s.port = (server.address() as AddressInfo).port;
  s.url = `http://127.0.0.1:${s.port}`;
  return s;
}

let primary: TestUpstream;
let shadow: Shadow;
let slow: Shadow;
let hanging: Shadow;
let killable: Shadow;
let resetting: Shadow;
let deadPort: number;
let gw: TestGateway;

before(async () => {
  primary = await startUpstream((req, res, body) => res.writeHead(200, { 'content-type': 'text/plain' }).end(`primary ${req.method} ${req.url} ${body.length}`));
  shadow = await startShadow();
  slow = await startShadow({ held: true });
  hanging = await startShadow({ hang: true });
  killable = await startShadow();
  resetting = await startShadow({ resetCopies: true });
  deadPort = await closedPort();
  gw = await startGateway(
    `
upstreams:
  primary: { nodes: [{ url: ${primary.url} }] }
  shadow: { nodes: [{ url: ${shadow.url} }] }
  slow: { nodes: [{ url: ${slow.url} }] }
  hanging: { nodes: [{ url: ${hanging.url} }] }
  killable: { nodes: [{ url: ${killable.url} }] }
  dead: { nodes: [{ url: http://127.0.0.1:${deadPort} }] }
  both: { nodes: [{ url: ${resetting.url} }] }
# Copies the tests count as "ok" get far more than the default 1 s, which a first copy (with its connect) may take on
# a loaded machine and then count as a timeout. The timeout itself is tested on /hang.
routes:
  - { name: sampled, match: { prefix: /sampled }, upstream: primary, mirror: { upstream: shadow, percent: 25, timeoutMs: 30000 } }
  - name: body
    match: { prefix: /body }
    upstream: primary
    mirror: { upstream: shadow, body: { maxBytes: 1024 }, timeoutMs: 30000 }
  - name: streamed
    match: { prefix: /streamed }
    upstream: primary
    requestBody: { bufferBytes: 0 }
    mirror: { upstream: shadow, timeoutMs: 30000 }
  - name: matched
    match: { prefix: /matched }
    upstream: primary
    mirror: { upstream: shadow, match: { headers: { x-mirror: "yes" }, query: { m: { present: true } } }, timeoutMs: 30000 }
  - { name: slow, match: { prefix: /slow }, upstream: primary, mirror: { upstream: slow, timeoutMs: 60000 } }
  - { name: dead, match: { prefix: /dead }, upstream: primary, mirror: { upstream: dead } }
  - { name: killed, match: { prefix: /killed }, upstream: primary, mirror: { upstream: killable } }
  - { name: hang, match: { prefix: /hang }, upstream: primary, mirror: { upstream: hanging, timeoutMs: 300, maxInFlight: 3 } }
  - { name: same, match: { prefix: /same }, upstream: both, mirror: { upstream: both } }
  - { name: plain, match: { prefix: /plain }, upstream: primary }
`,
    { workers: WORKERS },
  );
});

after(() => closeAll(() => gw?.stop(), () => primary?.close(), () => shadow?.close(), () => slow?.close(), () => hanging?.close(), () => killable?.close(), () => resetting?.close()));

/** `n` requests, `concurrency` at a time; every answer is checked by `check`. */
async function load(n: number, concurrency: number, one: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) await one(next++);
  }));
}

async function outcomes(route: string): Promise<Record<string, number>> {
  const m = await scrape(gw.adminUrl);
  const out: Record<string, number> = {};
  for (const s of m.find('nanogate_mirror_requests_total', { route })) out[s.labels.outcome] = s.value;
  out.in_flight = m.sum('nanogate_mirror_in_flight', { route });
  return out;
}

const copiesOf = (s: Shadow, prefix: string) => s.got.filter((g) => g.url.startsWith(prefix) && g.headers['x-nanogate-mirror'] === '1');

test('percent 25 over 400 requests on two workers: the shadow gets 100 copies (±1), each as forwarded plus the marker', T, async () => {
  await load(400, 8, async (i) => {
    const r = await send(gw.port, { path: `/sampled/item?i=${i}&x=a%20b`, headers: { 'x-client': `c${i}` } });
    assert.equal(r.status, 200);
    assert.equal(r.text, `primary GET /sampled/item?i=${i}&x=a%20b 0`);
  });
  assert.ok(await eventually(async () => (await outcomes('sampled')).ok === copiesOf(shadow, '/sampled').length && copiesOf(shadow, '/sampled').length >= 99, 5000));
  const copies = copiesOf(shadow, '/sampled');
  assert.ok(Math.abs(copies.length - 100) <= 1, `${copies.length} copies`);
  for (const c of copies) {
    const i = /i=(\d+)/.exec(c.url)![1];
    assert.equal(c.method, 'GET');
    assert.equal(c.url, `/sampled/item?i=${i}&x=a%20b`);
    assert.equal(c.headers['x-client'], `c${i}`);
    assert.equal(c.headers.host, `127.0.0.1:${shadow.port}`);
    assert.ok(c.headers['x-request-id'], 'the copy carries the request id of the real request');
  }
  // every copy is a different request: the schedule spreads them, it does not repeat one
  assert.equal(new Set(copies.map((c) => c.url)).size, copies.length);
  const o = await outcomes('sampled');
  assert.equal(o.sent, copies.length);
  assert.equal(o.ok, copies.length);
  assert.equal(o.error + o.timeout + o.dropped_full + o.skipped_body, 0);
  // real traffic: every request counted on the route, and the primary saw all 400 (no marker; a pipelined request
  // held back by a slow answer ahead of it may reach it twice, see docs/performance.md, so distinct targets count)
  assert.equal(new Set(primary.received.filter((r) => r.url.startsWith('/sampled')).map((r) => r.url)).size, 400);
  assert.ok(primary.received.every((r) => r.headers['x-nanogate-mirror'] === undefined));
  const m = await scrape(gw.adminUrl);
  assert.equal(m.sum('nanogate_requests_total', { route: 'sampled' }), 400);
});

test('a body held whole under maxBytes is copied byte for byte (a chunked one with a Content-Length); a larger or streamed body is not, and is counted', T, async () => {
  const small = Buffer.from('a'.repeat(700) + 'é');
  const r1 = await send(gw.port, { method: 'POST', path: '/body/small', headers: { 'content-type': 'text/plain' }, body: small });
  assert.equal(r1.status, 200);
  // chunked: node:http sends Transfer-Encoding: chunked when no length is set and the body is written in parts
  const chunked = await new Promise<number>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: gw.port, method: 'PUT', path: '/body/chunked', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.write('part-one,');
    setTimeout(() => req.end('part-two'), 20);
  });
  assert.equal(chunked, 200);
  const big = Buffer.alloc(4096, 'b');
  assert.equal((await send(gw.port, { method: 'POST', path: '/body/big', body: big })).status, 200);
  assert.equal((await send(gw.port, { method: 'POST', path: '/streamed/x', body: Buffer.alloc(100, 'c') })).status, 200);
  assert.equal((await send(gw.port, { method: 'GET', path: '/streamed/no-body' })).status, 200);

  assert.ok(await eventually(async () => (await outcomes('body')).ok === 2 && (await outcomes('streamed')).ok === 1));
  const s = copiesOf(shadow, '/body/small')[0];
  assert.equal(s.method, 'POST');
  assert.deepEqual(s.body, small);
  assert.equal(s.headers['content-length'], String(small.length));
  assert.equal(s.headers['content-type'], 'text/plain');
  const c = copiesOf(shadow, '/body/chunked')[0];
  assert.equal(c.method, 'PUT');
  assert.equal(c.body.toString(), 'part-one,part-two');
  assert.equal(c.headers['content-length'], '17');
  assert.equal(copiesOf(shadow, '/body/big').length, 0);
  assert.equal(copiesOf(shadow, '/streamed/x').length, 0);
  assert.equal(copiesOf(shadow, '/streamed/no-body').length, 1, 'a request without a body is copied on a streaming route');
  const o = await outcomes('body');
  assert.equal(o.skipped_body, 1);
  assert.equal(o.sent, 2);
  assert.equal((await outcomes('streamed')).skipped_body, 1);
  // the real requests got their bodies whole
  assert.ok(primary.received.some((r) => r.url === '/body/big' && r.body.equals(big)));
});

test('requests that do not match mirror.match are not copied, and are counted as skipped_match', T, async () => {
  const cases: [string, Record<string, string>, boolean][] = [
    ['/matched/1?m=1', { 'x-mirror': 'yes' }, true],
    ['/matched/2?m=1', { 'x-mirror': 'no' }, false],
    ['/matched/3?m=1', {}, false],
    ['/matched/4', { 'x-mirror': 'yes' }, false],
    ['/matched/5?m', { 'X-Mirror': 'yes' }, true],
  ];
  for (const [path, headers] of cases) assert.equal((await send(gw.port, { path, headers })).status, 200);
  assert.ok(await eventually(async () => (await outcomes('matched')).ok === 2));
  const got = copiesOf(shadow, '/matched').map((g) => g.url).sort();
  assert.deepEqual(got, cases.filter((c) => c[2]).map((c) => c[0]).sort());
  const o = await outcomes('matched');
  assert.equal(o.skipped_match, 3);
  assert.equal(o.sent, 2);
});

test('a slow shadow (it answers no copy until every client has its response): every client response is right and comes first', T, async () => {
  const received = new Map<string, number>();
  await load(40, 8, async (i) => {
    const path = `/slow/${i}`;
    const r = await send(gw.port, { path });
    received.set(path, performance.now());
    assert.equal(r.status, 200);
    assert.equal(r.text, `primary GET ${path} 0`);
    // the order of two events, not a speed: the shadow holds every copy until the load is over, so a gateway that
    // waited for the copy would never answer here (and the test would time out)
    assert.equal(slow.answeredAt.has(path), false, `${path} waited for the shadow`);
  });
  assert.ok(await eventually(() => copiesOf(slow, '/slow').length === 40, 10_000), 'every copy reached the shadow');
  slow.release();
  assert.ok(await eventually(async () => (await outcomes('slow')).ok === 40, 10_000));
  for (const [path, at] of received) assert.ok(at < slow.answeredAt.get(path)!, path);
  assert.equal((await outcomes('slow')).in_flight, 0);
});

test('a dead shadow (port closed): zero client errors, every copy counted as error; the route and the upstreams hear nothing of it', T, async () => {
  await load(30, 5, async (i) => {
    const r = await send(gw.port, { path: `/dead/${i}` });
    assert.equal(r.status, 200);
  });
  assert.ok(await eventually(async () => (await outcomes('dead')).error === 30));
  const m = await scrape(gw.adminUrl);
  assert.equal(m.sum('nanogate_requests_total', { route: 'dead', class: '2xx' }), 30);
  assert.equal(m.sum('nanogate_requests_total', { route: 'dead' }), 30);
  // the dead upstream took no attempt and shows no failure: copies are not attempts of any cluster
  assert.equal(m.sum('nanogate_upstream_attempts_total', { upstream: 'dead' }), 0);
  assert.equal(m.sum('nanogate_upstream_failures_total', { upstream: 'dead' }), 0);
  assert.equal(m.sum('nanogate_upstream_node_ejected', { upstream: 'dead' }), 0);
});

test('a shadow killed mid-run: zero client errors, and every copy sent ends counted (ok before, error after)', T, async () => {
  let i = 0;
  await load(20, 4, async () => void assert.equal((await send(gw.port, { path: `/killed/a${i++}` })).status, 200));
  assert.ok(await eventually(async () => (await outcomes('killed')).ok === 20));
  await killable.close();
  await load(20, 4, async () => void assert.equal((await send(gw.port, { path: `/killed/b${i++}` })).status, 200));
  assert.ok(await eventually(async () => {
    const o = await outcomes('killed');
    return o.sent === 40 && o.ok + o.error + o.timeout === 40 && o.in_flight === 0;
  }));
  const o = await outcomes('killed');
  assert.equal(o.ok, 20);
  assert.equal(o.error, 20);
});

test('a hanging shadow: zero client errors, copies abandoned after timeoutMs, maxInFlight bounds them (the rest dropped and counted)', T, async () => {
  await load(60, 12, async (i) => {
    const r = await send(gw.port, { path: `/hang/${i}` });
    assert.equal(r.status, 200);
    assert.equal(r.text, `primary GET /hang/${i} 0`);
  });
  assert.ok(await eventually(async () => {
    const o = await outcomes('hang');
    return o.sent > 0 && o.sent === o.timeout && o.in_flight === 0;
  }, 10_000));
  const o = await outcomes('hang');
  assert.equal(o.sent + o.dropped_full, 60);
  assert.ok(o.dropped_full > 0, 'the bound dropped copies');
  assert.equal(o.ok + o.error, 0);
  // per worker at most 3 copies were ever open at the shadow
  assert.ok(hanging.maxOpen <= 3 * WORKERS, `${hanging.maxOpen} copies open at once`);
  // abandoned copies closed their connections
  assert.ok(await eventually(() => hanging.open === 0, 5000));
});

test('mirroring to the route\'s own upstream: copies use connections of their own, and their failures eject nothing', T, async () => {
  // the upstream resets every copy (marker header) and answers real requests
  await load(30, 3, async (i) => {
    const r = await send(gw.port, { path: `/same/${i}` });
    assert.equal(r.status, 200);
    assert.equal(r.text, 'from-primary');
  });
  assert.ok(await eventually(async () => (await outcomes('same')).error === 30));
  const real = new Set(resetting.got.filter((g) => g.headers['x-nanogate-mirror'] === undefined).map((g) => g.socket));
  const copies = resetting.got.filter((g) => g.headers['x-nanogate-mirror'] !== undefined).map((g) => g.socket);
  assert.equal(copies.length, 30);
  assert.ok(copies.every((so) => !real.has(so)), 'a copy went over a connection of the real traffic');
  const m = await scrape(gw.adminUrl);
  assert.equal(m.sum('nanogate_upstream_attempts_total', { upstream: 'both' }), 30);
  assert.equal(m.sum('nanogate_upstream_failures_total', { upstream: 'both' }), 0);
  assert.equal(m.sum('nanogate_upstream_node_ejected', { upstream: 'both' }), 0);
  assert.equal(m.sum('nanogate_requests_total', { route: 'same', class: '2xx' }), 30);
});

test('GET /routes shows each route\'s mirror and its counts; routes without one show null', T, async () => {
  const res = await fetch(`${gw.adminUrl}/routes`);
  const body = (await res.json()) as { routes: { name: string; mirror: null | { upstream: string; percent: number; outcomes: Record<string, number> } }[] };
  const sampled = body.routes.find((r) => r.name === 'sampled')!;
  assert.equal(sampled.mirror!.upstream, 'shadow');
  assert.equal(sampled.mirror!.percent, 25);
  assert.ok(sampled.mirror!.outcomes.ok >= 99);
  const dead = body.routes.find((r) => r.name === 'dead')!;
  assert.equal(dead.mirror!.outcomes.error, 30);
  assert.equal(body.routes.find((r) => r.name === 'plain')!.mirror, null);
});

test('nanogate validate refuses an unknown shadow upstream, a percent over 100 or with two decimals, with the path', T, async () => {
  const base = (mirror: string) => `
upstreams:
  main: { nodes: [{ url: http://127.0.0.1:9 }] }
  shadow: { nodes: [{ url: http://127.0.0.1:9 }] }
routes:
  - { name: r, match: { prefix: / }, upstream: main, mirror: ${mirror} }
`;
  const file = writeConfig(base('{ upstream: shadw }'));
  let r = await runCli(['validate', file]);
  assert.notEqual(r.code, 0);
  assert.match(r.stdout + r.stderr, /routes\[0\]\.mirror\.upstream: unknown upstream "shadw" \(did you mean "shadow"\?\)/);
  writeFileSync(file, base('{ upstream: shadow, percent: 150 }'));
  r = await runCli(['validate', file]);
  assert.notEqual(r.code, 0);
  assert.match(r.stdout + r.stderr, /routes\[0\]\.mirror\.percent/);
  writeFileSync(file, base('{ upstream: shadow, percent: 12.34 }'));
  r = await runCli(['validate', file]);
  assert.notEqual(r.code, 0);
  assert.match(r.stdout + r.stderr, /routes\[0\]\.mirror\.percent: 12\.34 has more than one decimal/);
  writeFileSync(file, base('{ upstream: shadow, percent: 12.5, match: { headers: { x-a: { regex: "(" } } } }'));
  r = await runCli(['validate', file]);
  assert.notEqual(r.code, 0);
  assert.match(r.stdout + r.stderr, /routes\[0\]\.mirror\.match\.headers\.x-a\.regex: invalid regular expression/);
  writeFileSync(file, base('{ upstream: shadow, percent: 12.5 }'));
  r = await runCli(['validate', file]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
});

test('a reload changes the share and keeps the copies\' warm connection; a reload without mirror sends none and drops its series', T, async () => {
  const own = await startShadow();
  const config = (mirror: string) => `
reload: { watch: false }
upstreams:
  primary: { nodes: [{ url: ${primary.url} }] }
  shadow: { nodes: [{ url: ${own.url} }] }
routes:
  - { name: r, match: { prefix: /reload }, upstream: primary${mirror} }
`;
  const g = await startGateway(config(', mirror: { upstream: shadow, timeoutMs: 30000 }'));
  try {
    const ok = async () => (await scrape(g.adminUrl)).find('nanogate_mirror_requests_total', { route: 'r', outcome: 'ok' })[0]?.value ?? -1;
    // one request at a time, and its copy answered before the next: one connection can carry every copy
    let copies = 0;
    const step = async (path: string, copied: boolean) => {
      assert.equal((await send(g.port, { path })).status, 200);
      if (copied) copies++;
      assert.ok(await eventually(async () => (await ok()) === copies, 15_000), `${path}: ${copies} copies expected`);
    };
    for (let i = 0; i < 4; i++) await step(`/reload/a${i}`, true);
    g.rewrite(config(', mirror: { upstream: shadow, percent: 50, timeoutMs: 30000 }'));
    assert.ok((await g.gateway.reload()).version > 1);
    // 50 %: every second matching request (the schedule counts from where it stood; 100 % does not advance it)
    for (let i = 0; i < 8; i++) await step(`/reload/b${i}`, i % 2 === 1);
    assert.deepEqual(copiesOf(own, '/reload/b').map((c) => c.url), ['/reload/b1', '/reload/b3', '/reload/b5', '/reload/b7']);
    assert.equal(new Set(copiesOf(own, '/reload').map((c) => c.socket)).size, 1, 'the copies\' connection was kept across the reload');
    g.rewrite(config(''));
    assert.ok((await g.gateway.reload()).version > 1);
    for (let i = 0; i < 5; i++) assert.equal((await send(g.port, { path: `/reload/c${i}` })).status, 200);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(copiesOf(own, '/reload').length, 8);
    assert.equal((await scrape(g.adminUrl)).find('nanogate_mirror_requests_total', { route: 'r' }).length, 0);
  } finally {
    await closeAll(() => g.stop(), () => own.close());
  }
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { PipeliningUpstream, type PipeliningBehaviour } from '../helpers/pipelining-upstream.js';
import { RawClient } from '../helpers/raw-client.js';
import { until } from '../helpers/gateway-state.js';
import { closeAll } from '../helpers/http.js';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * `pipelining: auto` (the default): each node is probed with two pipelined HEAD requests, gets batches only once it
 * answered both correctly, and is kept off pipelining when it does not (or when it breaks a batch later); what the
 * gateway decided shows per node in GET /upstreams. Every upstream here is a raw server (test/helpers/
 * pipelining-upstream.ts) that records how request heads arrived, so "a batch" is seen where it matters: several
 * heads in one read of one upstream connection.
 *
 * A batch forms from requests that reach the gateway in one event-loop turn, which a test cannot force: burst()
 * opens its client connections first, then writes a request on each of them in one synchronous loop, and tests
 * that need a batch repeat bursts until the upstream saw one (a few tries at most, each bounded).
 */

const T = { timeout: 60_000 };

const ups = new Map<string, PipeliningUpstream>();
let gw: TestGateway;

const NAMES: Record<string, PipeliningBehaviour> = {
  good: 'correct',
  firstclose: 'first-then-close',
  firstonly: 'first-only',
  connclose: 'connection-close',
  http10: 'http10',
  dies: 'correct',
  posts: 'correct',
  hol: 'correct',
  holmix: 'correct',
  reprobe: 'correct',
};

before(async () => {
  for (const [name, b] of Object.entries(NAMES)) ups.set(name, await PipeliningUpstream.start(b));
  // Defaults (pipelining: auto, default bounds), except short read timeouts where the probe has to wait for an
  // answer that never comes, and no slow-node rule where a test needs batches: on a loaded machine the origins here,
  // in the test's own process, may average more than its 5 ms (and hol holds answers back on purpose).
  const fast = ', pipeliningBounds: { slowNodeMs: 0 }';
  const extra: Record<string, string> = { good: fast, dies: fast, posts: fast, hol: fast, holmix: ', pipeliningBounds: { slowNodeMs: 0, maxWaitMs: 400 }', reprobe: fast };
  const upstreams = [...ups].map(([name, u]) => `  ${name}: { nodes: [{ url: ${u.url} }], connections: 8, readTimeoutMs: 1000, connectTimeoutMs: 500${extra[name] ?? ''} }`).join('\n');
  const routes = [...ups.keys()].map((name) => `  - { name: ${name}, match: { prefix: /${name}/ }, upstream: ${name} }`).join('\n');
  gw = await startGateway(`upstreams:\n${upstreams}\nroutes:\n${routes}\n`);
});

after(async () => {
  await closeAll(() => gw?.stop(), ...[...ups.values()].map((u) => () => u.close()));
});

interface Pipelining {
  state: string;
  reason: string;
  resent: number;
}

async function pipelining(name: string): Promise<Pipelining> {
  const res = await fetch(`${gw.adminUrl}/upstreams/${name}`);
  const body = (await res.json()) as { nodes: Array<{ pipelining: Pipelining }> };
  return body.nodes[0].pipelining;
}

async function untilPipelining(name: string, state: string): Promise<Pipelining> {
  let last = { state: '?', reason: '?', resent: 0 };
  await until(() => `${name} to show pipelining ${state} (last: ${JSON.stringify(last)})`, async () => (last = await pipelining(name)).state === state);
  return last;
}

/** Requests written on `paths.length` client connections in one synchronous loop; resolves with each answer. */
async function burst(paths: string[], method = 'GET', body?: string): Promise<Array<{ status: number; body: string }>> {
  const clients = await Promise.all(paths.map(() => RawClient.connect(gw.port)));
  try {
    for (let i = 0; i < paths.length; i++) {
      const framing = body === undefined ? '' : `content-length: ${Buffer.byteLength(body)}\r\n`;
      clients[i].send(`${method} ${paths[i]} HTTP/1.1\r\nhost: test\r\n${framing}\r\n${body ?? ''}`);
    }
    return await Promise.all(clients.map(async (c) => {
      const r = await c.readResponse({ noBody: method === 'HEAD', timeoutMs: 10_000 });
      return { status: r.status, body: r.body };
    }));
  } finally {
    for (const c of clients) c.close();
  }
}

/** Bursts (each answered in full and checked) until `done()` holds; fails after `tries`. */
async function burstUntil(name: string, what: string, done: () => boolean, tries = 30, size = 12): Promise<void> {
  for (let i = 0; i < tries && !done(); i++) {
    const paths = Array.from({ length: size }, (_, j) => `/${name}/t${i}-${j}`);
    const answers = await burst(paths);
    assert.deepEqual(answers, paths.map((p) => ({ status: 200, body: `answer for ${p}` })), 'every client got its own answer');
  }
  assert.ok(done(), `no ${what} after ${tries} bursts`);
}

test('a node that answers pipelined requests correctly is probed, shows on, then gets batches', T, async () => {
  const up = ups.get('good')!;
  assert.deepEqual(await pipelining('good'), { state: 'probing', reason: 'not probed yet', resent: 0 });
  assert.deepEqual(await burst(['/good/first']), [{ status: 200, body: 'answer for /good/first' }]);
  const on = await untilPipelining('good', 'on');
  assert.match(on.reason, /probe passed/);
  assert.deepEqual(up.probeReads().map((r) => r.heads), [['HEAD / probe', 'HEAD / probe']], 'two HEAD requests in one write');
  await burstUntil('good', 'batch', () => up.batches().length > 0);
  const batch = up.batches()[0];
  assert.ok(batch.heads.every((h) => h.startsWith('GET /good/')), 'a batch of client GETs in one read of one connection');
});

for (const [name, reason] of [
  ['firstclose', /closed after the first answer/],
  ['firstonly', /second answer did not come/],
  ['connclose', /Connection: close/],
  ['http10', /HTTP\/1\.0/],
] as const) {
  test(`a node that gets pipelining wrong (${NAMES[name]}) is detected and served un-pipelined without a client error`, T, async () => {
    const up = ups.get(name)!;
    assert.deepEqual(await burst([`/${name}/first`]), [{ status: 200, body: `answer for /${name}/first` }]);
    const off = await untilPipelining(name, 'off');
    assert.match(off.reason, reason);
    for (let i = 0; i < 5; i++) {
      const paths = Array.from({ length: 12 }, (_, j) => `/${name}/t${i}-${j}`);
      assert.deepEqual(await burst(paths), paths.map((p) => ({ status: 200, body: `answer for ${p}` })));
    }
    assert.deepEqual(up.batches(), [], 'no batch ever went to it');
    assert.equal((await pipelining(name)).state, 'off');
  });
}

test('a node that dies in the middle of a batch: every client GET is answered, and the node is off pipelining', T, async () => {
  const up = ups.get('dies')!;
  await burst(['/dies/first']);
  await untilPipelining('dies', 'on');
  up.behaviour = 'drop-mid-batch';
  // Each burst is checked in full: requests behind the dropped answer were sent again, none was lost.
  await burstUntil('dies', 'broken batch', () => up.batches().length > 0);
  const off = await untilPipelining('dies', 'off');
  assert.match(off.reason, /middle of a batch/);
  const before = up.batches().length;
  for (let i = 0; i < 3; i++) {
    const paths = Array.from({ length: 12 }, (_, j) => `/dies/after${i}-${j}`);
    assert.deepEqual(await burst(paths), paths.map((p) => ({ status: 200, body: `answer for ${p}` })));
  }
  assert.equal(up.batches().length, before, 'no more batches once it broke one');
});

test('POST is never pipelined and never sent twice, next to GETs that are', T, async () => {
  const up = ups.get('posts')!;
  await burst(['/posts/first']);
  await untilPipelining('posts', 'on');
  const posts: string[] = [];
  for (let i = 0; i < 8 && up.batches().length === 0; i++) {
    const gets = Array.from({ length: 8 }, (_, j) => `/posts/g${i}-${j}`);
    const postPaths = Array.from({ length: 4 }, (_, j) => `/posts/p${i}-${j}`);
    posts.push(...postPaths);
    const [a, b] = await Promise.all([burst(gets), burst(postPaths, 'POST', 'payload')]);
    assert.deepEqual(a, gets.map((p) => ({ status: 200, body: `answer for ${p}` })));
    assert.deepEqual(b, postPaths.map((p) => ({ status: 200, body: `answer for ${p}` })));
  }
  assert.ok(up.batches().length > 0, 'the GETs were batched');
  for (const r of up.reads) if (r.heads.some((h) => h.startsWith('POST'))) assert.equal(r.heads.length, 1, `a POST shared a read: ${r.heads}`);
  for (const p of posts) assert.equal(up.connectionsOf(`POST ${p}`).length, 1, `${p} arrived once`);
});

test('a slow answer at the head of a batch does not hold back the requests behind it: they are sent again alone', T, async () => {
  const up = ups.get('hol')!;
  await burst(['/hol/first']);
  await untilPipelining('hol', 'on');
  // Bursts with a held request first until one batch has others behind the held request. (A batch that had to be
  // sent again pauses batches to the node for a second: the next try may find none.)
  const heldAt = (b: { heads: string[] }) => b.heads.findIndex((h) => h.startsWith('GET /hol/hold/'));
  const behindHold = () => up.batches().find((b) => heldAt(b) >= 0 && heldAt(b) < b.heads.length - 1);
  for (let i = 0; i < 30 && behindHold() === undefined; i++) {
    if (i > 0) await sleep(100);
    const hold = `/hol/hold/${i}`;
    const others = Array.from({ length: 10 }, (_, j) => `/hol/t${i}-${j}`);
    const clients = await Promise.all([hold, ...others].map(() => RawClient.connect(gw.port)));
    [hold, ...others].forEach((p, j) => clients[j].send(`GET ${p} HTTP/1.1\r\nhost: test\r\n\r\n`));
    // Every request other than the held one is answered while the held one still is not.
    const answers = await Promise.all(clients.slice(1).map((c) => c.readResponse({ timeoutMs: 10_000 })));
    assert.deepEqual(answers.map((a) => a.body), others.map((p) => `answer for ${p}`));
    assert.equal(clients[0].pending, '', 'the held request is still unanswered');
    up.release(hold);
    assert.equal((await clients[0].readResponse({ timeoutMs: 10_000 })).body, `answer for ${hold}`);
    for (const c of clients) c.close();
  }
  const batch = behindHold();
  assert.ok(batch, 'a batch with requests behind the held one');
  assert.ok((await pipelining('hol')).resent >= batch.heads.length - heldAt(batch) - 1, 'GET /upstreams counts them');
  for (const head of batch.heads.slice(heldAt(batch) + 1)) {
    const conns = up.connectionsOf(head);
    assert.ok(conns.length === 2 && conns[1] !== batch.conn, `${head} was sent again on another connection (${conns}, batch on ${batch.conn})`);
  }
});

test('requests behind a slow answer are sent again on time while batches to another node come and are answered', T, async () => {
  // One timer per worker watches every batch, and goes once the last one is answered (src/upstream/h1-pool.ts,
  // batchAnswered): a batch answered elsewhere must not take the watch away from one still waiting. This node's
  // maxWaitMs (400) leaves the bursts to the other node time to form a batch and have it answered before the held
  // batch is due.
  const up = ups.get('holmix')!;
  const other = ups.get('good')!;
  await burst(['/holmix/first']);
  await burst(['/good/first']);
  await untilPipelining('holmix', 'on');
  await untilPipelining('good', 'on');
  const heldAt = (b: { heads: string[] }) => b.heads.findIndex((h) => h.startsWith('GET /holmix/hold/'));
  let seen: ReturnType<typeof up.batches>[number] | undefined;
  for (let i = 0; i < 30 && seen === undefined; i++) {
    if (i > 0) await sleep(100);
    const hold = `/holmix/hold/${i}`;
    const others = Array.from({ length: 10 }, (_, j) => `/holmix/t${i}-${j}`);
    const clients = await Promise.all([hold, ...others].map(() => RawClient.connect(gw.port)));
    [hold, ...others].forEach((p, j) => clients[j].send(`GET ${p} HTTP/1.1\r\nhost: test\r\n\r\n`));
    const answered = Promise.all(clients.slice(1).map((c) => c.readResponse({ timeoutMs: 10_000 })));
    // while the held request waits: bursts to the other node, each answered in full, until one of them was a batch
    const otherBatches = other.batches().length;
    for (let k = 0; k < 10 && other.batches().length === otherBatches; k++) {
      const paths = Array.from({ length: 8 }, (_, j) => `/good/m${i}-${k}-${j}`);
      assert.deepEqual(await burst(paths), paths.map((p) => ({ status: 200, body: `answer for ${p}` })));
    }
    assert.deepEqual((await answered).map((a) => a.body), others.map((p) => `answer for ${p}`));
    assert.equal(clients[0].pending, '', 'the held request is still unanswered');
    up.release(hold);
    assert.equal((await clients[0].readResponse({ timeoutMs: 10_000 })).body, `answer for ${hold}`);
    for (const c of clients) c.close();
    const batch = up.batches().find((b) => b.heads.includes(`GET ${hold}`) && heldAt(b) < b.heads.length - 1);
    if (batch !== undefined && other.batches().length > otherBatches) seen = batch;
  }
  assert.ok(seen, 'a batch with requests behind the held one, while the other node answered a batch');
  for (const head of seen.heads.slice(heldAt(seen) + 1)) {
    const conns = up.connectionsOf(head);
    assert.ok(conns.length === 2 && conns[1] !== seen.conn, `${head} was sent again on another connection (${conns}, batch on ${seen.conn})`);
  }
});

test('a node whose connections were all lost is probed again before it gets batches again', T, async () => {
  const up = ups.get('reprobe')!;
  await burst(['/reprobe/first']);
  await untilPipelining('reprobe', 'on');
  assert.equal(up.probeReads().length, 1);
  up.dropAll();
  await untilPipelining('reprobe', 'probing').then((p) => assert.match(p.reason, /connection was lost/));
  assert.deepEqual(await burst(['/reprobe/again']), [{ status: 200, body: 'answer for /reprobe/again' }]);
  await untilPipelining('reprobe', 'on');
  assert.equal(up.probeReads().length, 2, 'one more probe');
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket, type AddressInfo } from 'node:net';
import { request as httpRequest } from 'node:http';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { send } from '../helpers/http.js';
import { metric, until, untilInFlight, upstreamInFlight } from '../helpers/gateway-state.js';
import { RequestHeads } from '../helpers/request-heads.js';

/**
 * Batched pipelining to upstreams (`pipelining: N`): safe requests without a body that arrive together share one
 * connection and one write; every client still gets its own response, in order, and requests left unanswered when
 * the upstream closes are sent again. The upstream here is a raw server that answers strictly in order (as RFC 9112
 * 9.3.2 requires) and records how request heads arrived: several heads in one read is a batch.
 *
 * Which requests share a batch depends on which ones are waiting in the gateway's pool when the connection frees,
 * so the tests never sleep "long enough" for a request to get there: each request is started only after the one
 * before it is counted in flight by the gateway (GET /upstreams/ordered), which also fixes the order of arrival.
 */

const T = { timeout: 30_000 };

interface Pending {
  path: string;
  method: string;
  ready: boolean;
}

/** An in-order HTTP/1.1 server: /hold/* answers when released; /close-after answers with Connection: close. */
class OrderedUpstream {
  readonly server: Server;
  readonly sockets = new Set<Socket>();
  /** connections accepted so far */
  accepted = 0;
  /** request heads per read, e.g. [['GET /a', 'GET /b']] for a batch of two */
  readonly reads: string[][] = [];
  readonly #queues = new Map<Socket, Pending[]>();
  /** 'respond-then-drop': answer the first request of each read, then destroy the socket without a word */
  mode: 'normal' | 'respond-then-drop' = 'normal';
  port = 0;

  constructor() {
    this.server = createServer((socket) => this.#accept(socket));
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  release(path: string): void {
    for (const [socket, q] of this.#queues) {
      for (const p of q) if (p.path === path) p.ready = true;
      this.#flush(socket);
    }
  }

  #accept(socket: Socket): void {
    this.sockets.add(socket);
    this.accepted++;
    this.#queues.set(socket, []);
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.#queues.delete(socket);
    });
    socket.on('error', () => {});
    const split = new RequestHeads(); // a body may arrive in a later read than its head
    socket.on('data', (d: Buffer) => {
      const heads: string[] = [];
      for (const { method, path } of split.push(d)) {
        heads.push(`${method} ${path}`);
        this.#queues.get(socket)!.push({ method, path, ready: !path.startsWith('/hold/') });
      }
      if (heads.length === 0) return;
      this.reads.push(heads);
      if (this.mode === 'respond-then-drop') {
        const q = this.#queues.get(socket)!;
        socket.write(response(q[0]));
        socket.destroy();
        return;
      }
      this.#flush(socket);
    });
  }

  #flush(socket: Socket): void {
    const q = this.#queues.get(socket);
    if (!q) return;
    while (q.length > 0 && q[0].ready) {
      const p = q.shift()!;
      const close = p.path === '/close-after';
      socket.write(response(p, close));
      if (close) {
        socket.end();
        return;
      }
    }
  }
}

function response(p: Pending, close = false): string {
  const body = `answer for ${p.path}`;
  // HEAD gets the length of the body it would have had, and no body: framing must come from the request method.
  return `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n${close ? 'connection: close\r\n' : ''}\r\n${p.method === 'HEAD' ? '' : body}`;
}

let upstream: OrderedUpstream;
let echo: TestUpstream;
let gw: TestGateway;

before(async () => {
  upstream = new OrderedUpstream();
  await upstream.start();
  echo = await startUpstream();
  gw = await startGateway(`
upstreams:
  # Answers here are held back on purpose, so the head-of-line bounds (tested in upstream-pipelining-auto) are off.
  ordered: { nodes: [{ url: http://127.0.0.1:${upstream.port} }], connections: 1, pipelining: 4, pipeliningBounds: { maxWaitMs: 0, slowNodeMs: 0 }, readTimeoutMs: 5000 }
  echo: { nodes: [{ url: ${echo.url} }], connections: 4, pipelining: 8 }
routes:
  - { name: echo, match: { prefix: /echo }, upstream: echo }
  - { name: ordered, match: { prefix: / }, upstream: ordered }
`);
});

after(async () => {
  await gw?.stop();
  await echo?.close();
  await new Promise<void>((r) => {
    for (const s of upstream.sockets) s.destroy();
    upstream.server.close(() => r());
  });
});

/** Starts a request and resolves once its head has been written (so the order of arrival is the order of calls). */
function start(method: string, path: string, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: gw.port, method, path, agent: false, headers: body ? { 'content-length': Buffer.byteLength(body) } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function held(path: string): Promise<void> {
  await until(`${path} to reach the upstream`, () => upstream.reads.some((r) => r.includes(`GET ${path}`)));
}

type Answer = Promise<{ status: number; text: string }>;

/**
 * Starts a request and waits until the gateway counts it in flight to the ordered upstream (queued in its pool).
 * The answer comes back wrapped: an async function returning the bare promise would wait for the response.
 */
async function enqueue(method: string, path: string, body?: string): Promise<{ answer: Answer }> {
  const n = await upstreamInFlight(gw.adminUrl, 'ordered');
  const answer = start(method, path, body);
  answer.catch(() => {}); // awaited by the test later; a failure then is the test's
  await untilInFlight(gw.adminUrl, 'ordered', n + 1);
  return { answer };
}

/** enqueue() one after the other, so the order of arrival is the order given; GET unless [method, path]. */
async function enqueueAll(requests: Array<string | [string, string]>): Promise<Answer[]> {
  const out: Answer[] = [];
  for (const r of requests) {
    const [method, path] = typeof r === 'string' ? ['GET', r] : r;
    out.push((await enqueue(method, path)).answer);
  }
  return out;
}

test('requests waiting for the one connection leave in one write and each client gets its own answer', T, async () => {
  const first = start('GET', '/hold/a');
  await held('/hold/a');
  const queued = await enqueueAll(['/b', '/c', '/d', '/e']); // all four are waiting in the gateway's pool now
  const before = upstream.reads.length;
  upstream.release('/hold/a');
  assert.deepEqual(await first, { status: 200, text: 'answer for /hold/a' });
  const answers = await Promise.all(queued);
  assert.deepEqual(answers.map((a) => a.text), ['answer for /b', 'answer for /c', 'answer for /d', 'answer for /e']);
  assert.deepEqual(upstream.reads.slice(before), [['GET /b', 'GET /c', 'GET /d', 'GET /e']], 'the four went out in one write');
  assert.equal(upstream.sockets.size, 1, 'all of it over the one kept-alive connection');
});

test('a batch never exceeds the pipelining limit, a HEAD in it is framed by its method, and a POST goes alone', T, async () => {
  const first = start('GET', '/hold/f');
  await held('/hold/f');
  const queued = await enqueueAll(['/g', ['HEAD', '/h'], '/i', '/j', '/k']);
  const { answer: post } = await enqueue('POST', '/l', 'body');
  const { answer: last } = await enqueue('GET', '/m');
  const before = upstream.reads.length;
  upstream.release('/hold/f');
  await first;
  const answers = await Promise.all([...queued, post, last]);
  assert.deepEqual(
    answers.map((a) => a.text),
    ['answer for /g', '', 'answer for /i', 'answer for /j', 'answer for /k', 'answer for /l', 'answer for /m'],
  );
  assert.deepEqual(upstream.reads.slice(before), [['GET /g', 'HEAD /h', 'GET /i', 'GET /j'], ['GET /k'], ['POST /l'], ['GET /m']]);
});

test('requests pipelined behind a response that closes the connection are sent again on a new one', T, async () => {
  const first = start('GET', '/hold/n');
  await held('/hold/n');
  const queued = await enqueueAll(['/close-after', '/o', '/p']);
  upstream.release('/hold/n');
  await first;
  const answers = await Promise.all(queued);
  assert.deepEqual(answers.map((a) => [a.status, a.text]), [[200, 'answer for /close-after'], [200, 'answer for /o'], [200, 'answer for /p']]);
});

test('an upstream that drops the connection after one answer of a batch: the rest are sent again, none is lost', T, async () => {
  const first = start('GET', '/hold/q');
  await held('/hold/q');
  const queued = await enqueueAll(['/r', '/s', '/t']);
  upstream.mode = 'respond-then-drop';
  try {
    upstream.release('/hold/q');
    await first;
    const answers = await Promise.all(queued);
    assert.deepEqual(answers.map((a) => [a.status, a.text]), [[200, 'answer for /r'], [200, 'answer for /s'], [200, 'answer for /t']]);
  } finally {
    upstream.mode = 'normal';
  }
});

test('a client that leaves while its request is in a batch costs the others nothing, and the connection stays', T, async () => {
  const first = start('GET', '/hold/u');
  await held('/hold/u');
  const accepted = upstream.accepted;
  const { answer: b } = await enqueue('GET', '/hold/v');
  // this client gives up before its answer
  const n = await upstreamInFlight(gw.adminUrl, 'ordered');
  const leaver = httpRequest({ host: '127.0.0.1', port: gw.port, path: '/w', agent: false });
  leaver.on('error', () => {});
  leaver.end();
  await untilInFlight(gw.adminUrl, 'ordered', n + 1);
  const { answer: d } = await enqueue('GET', '/x');
  upstream.release('/hold/u');
  await first;
  await held('/x');
  // the gateway counts the leaver's request as ended (499, a 4xx) once it has seen the client go
  const gone = 'nanogate_requests_total{route="ordered",code="499",class="4xx",plan=""}';
  const goneBefore = await metric(gw.adminUrl, gone);
  leaver.destroy();
  await until('the gateway to see the client leave', async () => (await metric(gw.adminUrl, gone)) === goneBefore + 1);
  upstream.release('/hold/v');
  assert.deepEqual(await b, { status: 200, text: 'answer for /hold/v' });
  assert.deepEqual(await d, { status: 200, text: 'answer for /x' });
  assert.equal(upstream.accepted, accepted, 'the abandoned answer was read and dropped, the connection kept');
  assert.equal(upstream.reads.filter((r) => r.includes('GET /hold/v')).length, 1, 'nothing was sent twice');
  assert.deepEqual(await send(gw.port, { path: '/y' }).then((r) => r.text), 'answer for /y');
});

test('under concurrent load through a real HTTP server every client gets the answer to its own request', T, async () => {
  const paths = Array.from({ length: 200 }, (_, i) => `/echo/${i}?q=${i}`);
  const results = await Promise.all(paths.map((path, i) => send(gw.port, { method: i % 5 === 0 ? 'HEAD' : 'GET', path })));
  results.forEach((r, i) => {
    assert.equal(r.status, 200);
    if (i % 5 === 0) assert.equal(r.text, '');
    else assert.equal(JSON.parse(r.text).url, paths[i]);
  });
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { closedPort, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { scrape } from '../helpers/prometheus.js';

/**
 * `nanogate_upstream_failures_total` stayed 0 while a node was dead: node metrics were recorded once per request,
 * for the node that finally answered, and a refused connect is retried on another node. Every client saw a 200, so
 * nothing showed the dead node. Attempts and failures are now counted per attempt, at the node that had it.
 */

let up: TestUpstream;
let gw: TestGateway;
let deadNode: string;
let liveNode: string;

before(async () => {
  up = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
  const dead = await closedPort();
  deadNode = `127.0.0.1:${dead}`;
  liveNode = up.url.replace(/^http:\/\//, '');
  gw = await startGateway(`
upstreams:
  app: { nodes: [{ url: ${up.url} }, { url: http://${deadNode} }] }
routes:
  - { name: api, match: { prefix: / }, upstream: app }
`);
});

after(async () => {
  await gw?.stop();
  await up?.close();
});

test('a dead node retried past counts every attempt it got as a connect failure', async () => {
  const N = 20;
  for (let i = 0; i < N; i++) {
    const res = await fetch(`${gw.url}/x${i}`);
    await res.arrayBuffer();
    assert.equal(res.status, 200, 'the refused connect is retried on the live node');
  }
  const s = await scrape(gw.adminUrl);
  const dead = { upstream: 'app', node: deadNode };
  const live = { upstream: 'app', node: liveNode };
  const deadAttempts = s.sum('nanogate_upstream_attempts_total', dead);
  assert.ok(deadAttempts > 0, 'the balancer sent some attempts to the dead node');
  assert.equal(s.sum('nanogate_upstream_failures_total', { ...dead, kind: 'connect' }), deadAttempts);
  assert.equal(s.sum('nanogate_upstream_failures_total', dead), deadAttempts, 'no other kind of failure');
  assert.equal(s.sum('nanogate_upstream_responses_total', dead), 0);
  // every request ended at the live node, and each attempt there got a response
  assert.equal(s.sum('nanogate_upstream_responses_total', live), N);
  assert.equal(s.sum('nanogate_upstream_attempts_total', live), N);
  assert.equal(s.sum('nanogate_upstream_failures_total', live), 0);
});

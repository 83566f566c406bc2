import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Gateway } from '../../src/control/gateway.js';
import { startGateway, writeConfig } from '../helpers/gateway.js';
import { startWatchedUpstream } from '../helpers/watched-upstream.js';
import { closeAll, send, waitFor } from '../helpers/http.js';

/**
 * The probes on the admin port: /health says the process is up, /ready says every worker is listening (and stops
 * saying so while the node drains). Both answer without a token.
 */

/** Every test and hook here has a bound, so a gateway that stops answering fails the file instead of hanging it. */
const T = { timeout: 30_000 };

test('/health is 200 and /ready is 200 once every worker listens', T, async () => {
  const up = await startWatchedUpstream();
  const gw = await startGateway(
    `
upstreams:
  u: { nodes: [{ url: ${up.url} }] }
routes:
  - { name: all, match: { prefix: / }, upstream: u }
`,
    { workers: 2 },
  ).catch(async (err) => {
    await up.close();
    throw err;
  });
  try {
    const health = await fetch(`${gw.adminUrl}/health`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' });
    const ready = await fetch(`${gw.adminUrl}/ready`);
    assert.equal(ready.status, 200);
    const body = (await ready.json()) as { ready: boolean; version: number };
    assert.equal(body.ready, true);
    assert.equal(body.version, 1);
    assert.equal(gw.gateway.slots.length, 2);
    assert.ok(gw.gateway.slots.every((s) => s.listening));
    // ready means it really serves
    assert.equal((await send(gw.port, { path: '/x' })).status, 200);
  } finally {
    await gw.stop();
    await up.close();
  }
});

test('/ready turns 503 while the node drains, /health stays 200 until it stops', T, async () => {
  const held: { release: (() => void) | null } = { release: null };
  const up = await startWatchedUpstream((req, res) => {
    held.release = () => res.end('late');
  });
  const gw = await startGateway(`
proxy: { drainTimeoutMs: 5000 }
upstreams:
  u: { nodes: [{ url: ${up.url} }] }
routes:
  - { name: all, match: { prefix: / }, upstream: u }
`).catch(async (err) => {
    await up.close();
    throw err;
  });
  const adminUrl = gw.adminUrl;
  const inFlight = send(gw.port, { path: '/slow' });
  const reached = await waitFor(() => held.release !== null);
  const stopping = gw.stop();
  try {
    assert.ok(reached, 'the request never reached the upstream');
    const ready = await fetch(`${adminUrl}/ready`);
    assert.equal(ready.status, 503);
    assert.equal(((await ready.json()) as { ready: boolean }).ready, false);
    assert.equal((await fetch(`${adminUrl}/health`)).status, 200);
  } finally {
    held.release?.();
    const res = await inFlight.catch((err: Error) => ({ status: 0, text: err.message }));
    await stopping;
    await up.close();
    assert.equal(res.status, 200, 'the in-flight request finished during the drain');
    assert.equal(res.text, 'late');
  }
});

test('the probes need no token when the rest of the admin API does', T, async () => {
  const up = await startWatchedUpstream();
  const token = 'probe-test-token-0123456789';
  // startGateway writes its own admin block, so this one is started by hand to carry a token
  const gateway = new Gateway({
    configFile: writeConfig(`
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0, token: "${token}" }
upstreams:
  u: { nodes: [{ url: ${up.url} }] }
routes:
  - { name: all, match: { prefix: / }, upstream: u }
`),
    workers: 1,
    logger: pino({ level: 'silent' }),
  });
  await gateway.start().catch(async (err) => {
    await closeAll(() => gateway.stop(), () => up.close());
    throw err;
  });
  const adminUrl = `http://127.0.0.1:${gateway.admin!.port}`;
  try {
    assert.equal((await fetch(`${adminUrl}/health`)).status, 200);
    assert.equal((await fetch(`${adminUrl}/ready`)).status, 200);
    assert.equal((await fetch(`${adminUrl}/status`)).status, 401);
    assert.equal((await fetch(`${adminUrl}/status`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
  } finally {
    await gateway.stop();
    await up.close();
  }
});

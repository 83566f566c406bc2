import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionTable, TABLE_BYTES, TABLE_SLOTS } from '../../src/websocket/connection-table.js';
import { sendable } from '../../src/websocket/close-codes.js';
import { loadConfigText } from '../../src/config/load.js';
import { compileConfig } from '../../src/config/compile.js';
import { ConfigError } from '../../src/config/errors.js';

test('the connection table counts per key up to the limit, and frees a slot on release', () => {
  const t = new ConnectionTable(new SharedArrayBuffer(TABLE_BYTES));
  const a1 = t.acquire('alice', 2);
  const a2 = t.acquire('alice', 2);
  assert.ok(a1 >= 0 && a2 === a1);
  assert.equal(t.acquire('alice', 2), -1, 'a third is refused');
  assert.ok(t.acquire('bob', 2) >= 0, 'another key has its own count');
  assert.equal(t.count('alice'), 2);
  t.release(a1);
  assert.equal(t.count('alice'), 1);
  assert.ok(t.acquire('alice', 2) >= 0);
});

test('the connection table is shared memory: a second view (another worker) sees the same counts', () => {
  const sab = new SharedArrayBuffer(TABLE_BYTES);
  const w1 = new ConnectionTable(sab);
  const w2 = new ConnectionTable(sab);
  assert.ok(w1.acquire('carol', 1) >= 0);
  assert.equal(w2.acquire('carol', 1), -1);
});

test('a full table reuses slots whose connections have all closed, and refuses when every slot is in use', () => {
  const t = new ConnectionTable(new SharedArrayBuffer(TABLE_BYTES));
  const slots: number[] = [];
  for (let i = 0; slots.length < TABLE_SLOTS; i++) {
    const s = t.acquire(`k${i}`, 1_000_000);
    if (t.count(`k${i}`) === 1) slots.push(s);
    else t.release(s); // a 31-bit hash collision shared a slot: keep one key per slot
  }
  assert.equal(t.acquire('one-more', 10), -1, 'every slot holds an open connection');
  t.release(slots[7]);
  assert.ok(t.acquire('one-more', 10) >= 0, 'a slot with no open connection is taken over');
});

test('close codes that may be sent in a close frame', () => {
  for (const c of [1000, 1001, 1008, 1009, 1011, 1013, 1014, 3000, 4999]) assert.ok(sendable(c), String(c));
  for (const c of [999, 1004, 1005, 1006, 1015, 2000, 5000]) assert.ok(!sendable(c), String(c));
});

function refusal(yaml: string): ConfigError {
  try {
    compileConfig(loadConfigText(yaml, 'ws.yaml', {}), 'ws.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  assert.fail('the config was accepted');
}

const base = `
upstreams:
  ws: { nodes: [{ url: http://127.0.0.1:9000 }] }
routes:
`;

test('config: a websocket route must serve GET; limits beyond their bounds and unknown keys are refused with their path', () => {
  const noGet = refusal(base + '  - { name: w, match: { path: /w, methods: [POST] }, upstream: ws, websocket: {} }\n');
  assert.equal(noGet.issues[0].path, 'routes[0].websocket');
  assert.match(noGet.issues[0].message, /GET/);
  const big = refusal(base + '  - { name: w, match: { path: /w }, upstream: ws, websocket: { maxMessageBytes: 16777217 } }\n');
  assert.equal(big.issues[0].path, 'routes[0].websocket.maxMessageBytes');
  const unknown = refusal(base + '  - { name: w, match: { path: /w }, upstream: ws, websocket: { maxMesageBytes: 10 } }\n');
  assert.match(unknown.issues[0].path, /routes\[0\]\.websocket/);
  const { plan } = compileConfig(loadConfigText(base + '  - { name: w, match: { path: /w }, upstream: ws, websocket: { consumerMessagesPerSecond: 5 } }\n', 'ws.yaml', {}), 'ws.yaml');
  const w = plan.routes[0].websocket!;
  assert.equal(w.maxMessageBytes, 1_048_576);
  assert.equal(w.idleTimeoutMs, 300_000);
  assert.equal(w.consumerMessages?.limit, 5);
  assert.equal(w.connections, null, 'no table without maxConnectionsPerConsumer');
  assert.equal(plan.routes.length, 1);
});

test('config: a route without websocket compiles to null (no cost on the request path)', () => {
  const { plan } = compileConfig(loadConfigText(base + '  - { name: h, match: { path: /h }, upstream: ws }\n', 'ws.yaml', {}), 'ws.yaml');
  assert.equal(plan.routes[0].websocket, null);
});

test('config: a websocket route cannot also mirror, split or aggregate', () => {
  const err = refusal(base + '  - { name: w, match: { path: /w }, upstream: ws, websocket: {}, mirror: { upstream: ws, percent: 10 } }\n');
  assert.equal(err.issues[0].path, 'routes[0].websocket');
  assert.match(err.issues[0].message, /cannot also have mirror/);
});

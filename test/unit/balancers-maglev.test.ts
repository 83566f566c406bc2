import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ArrayNodeView } from '../../src/upstream/balancers/array-view.js';
import { MaglevBalancer, buildMaglevTable, isPrime, type MaglevNode } from '../../src/upstream/balancers/maglev.js';
import { compileHashKey, hashString, type HashKeyRequest } from '../../src/upstream/balancers/hash.js';

const KEYS = 100_000;
const keys = Array.from({ length: KEYS }, (_, i) => hashString(`user-${i}`));
const nodesOf = (n: number, weight = (_i: number) => 1): MaglevNode[] => Array.from({ length: n }, (_, i) => ({ id: `10.0.${i >> 8}.${i & 255}:8080`, weight: weight(i) }));

function assign(nodes: MaglevNode[], size = 65537): number[] {
  const b = new MaglevBalancer(buildMaglevTable(nodes, size), { loadFactor: 0 });
  const v = new ArrayNodeView(nodes.length, { weights: nodes.map((n) => n.weight) });
  return keys.map((k) => b.pick(v, -1, k));
}

test('10 nodes, 100k keys: every node within ±25 % of the mean', () => {
  const owners = assign(nodesOf(10));
  const c = new Array<number>(10).fill(0);
  for (const o of owners) c[o]++;
  for (const x of c) assert.ok(Math.abs(x - KEYS / 10) < 0.25 * (KEYS / 10), String(c));
});

test('the table itself is balanced: slot counts of equal nodes differ by at most 1', () => {
  const t = buildMaglevTable(nodesOf(10), 65537);
  const c = new Array<number>(10).fill(0);
  for (const i of t) c[i]++;
  assert.ok(Math.max(...c) - Math.min(...c) <= 1, String(c));
});

test('removing 1 of 10 nodes moves about 1/10 of the keys, and only a few that were not on it', () => {
  const all = nodesOf(10);
  const before = assign(all).map((i) => all[i].id);
  const rest = all.filter((_, i) => i !== 4);
  const after = assign(rest).map((i) => rest[i].id);
  let moved = 0;
  let movedElsewhere = 0;
  for (let k = 0; k < KEYS; k++) {
    if (before[k] === after[k]) continue;
    moved++;
    if (before[k] !== all[4].id) movedElsewhere++;
  }
  assert.ok(moved / KEYS < 0.15, `moved ${moved / KEYS}`);
  assert.ok(moved / KEYS > 0.09, `moved ${moved / KEYS}: the removed node's keys must move`);
  assert.ok(movedElsewhere / KEYS < 0.05, `keys of remaining nodes moved: ${movedElsewhere / KEYS}`);
  // Adding it back restores the first assignment exactly: the table depends only on the node set.
  assert.deepEqual(assign(all).map((i) => all[i].id), before);
});

test('weights are respected: a weight-3 node gets 3 times the keys of a weight-1 node', () => {
  const nodes = nodesOf(5, (i) => (i === 0 ? 3 : 1));
  const c = new Array<number>(5).fill(0);
  for (const o of assign(nodes)) c[o]++;
  const unit = KEYS / 7;
  assert.ok(Math.abs(c[0] - 3 * unit) < 0.1 * 3 * unit, String(c));
  for (let i = 1; i < 5; i++) assert.ok(Math.abs(c[i] - unit) < 0.15 * unit, String(c));
  const zero = buildMaglevTable(nodesOf(3, (i) => (i === 1 ? 0 : 1)), 1031);
  assert.ok(!zero.includes(1), 'weight 0 gets no slot');
  assert.ok(buildMaglevTable(nodesOf(3, () => 0), 1031).every((x) => x === -1));
});

test('table size must be prime; the table can be written into shared memory', () => {
  assert.ok(isPrime(65537) && isPrime(1031) && !isPrime(65536) && !isPrime(1) && isPrime(2));
  assert.throws(() => buildMaglevTable(nodesOf(3), 65536), /prime/);
  assert.throws(() => buildMaglevTable(nodesOf(3), 1031, new Int32Array(1000)), /needs 1031/);
  const shared = new Int32Array(new SharedArrayBuffer(4 * 1031));
  const t = buildMaglevTable(nodesOf(3), 1031, shared);
  assert.equal(t, shared);
  assert.ok(shared.every((x) => x >= 0 && x < 3));
});

test('same key, same node; an unavailable owner spills its keys over the others, which keep theirs', () => {
  const nodes = nodesOf(6);
  const b = new MaglevBalancer(buildMaglevTable(nodes, 65537));
  const v = new ArrayNodeView(6);
  const first = keys.slice(0, 5000).map((k) => b.pick(v, -1, k));
  assert.deepEqual(keys.slice(0, 5000).map((k) => b.pick(v, -1, k)), first);
  v.up[2] = 0;
  const spill = new Array<number>(6).fill(0);
  for (let k = 0; k < 5000; k++) {
    const i = b.pick(v, -1, keys[k]);
    if (first[k] === 2) spill[i]++;
    else assert.equal(i, first[k], 'keys of available nodes stay put');
  }
  assert.equal(spill[2], 0);
  const spilled = spill.reduce((a, x) => a + x, 0);
  for (const i of [0, 1, 3, 4, 5]) assert.ok(spill[i] > spilled / 10, `spill ${spill}`);
  // The retry of a key skips its owner the same way.
  for (let k = 0; k < 200; k++) assert.notEqual(b.pick(v, first[k], keys[k]), first[k]);
});

test('bounded load caps a hot key: its node never holds more than ceil(c × mean in flight)', () => {
  for (const c of [1, 1.25, 2]) {
    const n = 10;
    const b = new MaglevBalancer(buildMaglevTable(nodesOf(n), 65537), { loadFactor: c });
    const v = new ArrayNodeView(n);
    const hot = keys[0];
    const owner = b.pick(v, -1, hot);
    for (let k = 0; k < 2000; k++) {
      // 9 in 10 requests carry the hot key; none completes.
      const i = b.pick(v, -1, k % 10 === 0 ? keys[k] : hot);
      v.active[i]++;
      const total = v.active.reduce((a, x) => a + x, 0);
      assert.ok(v.active[i] <= Math.ceil((c * total) / n), `c ${c}: node ${i} has ${v.active[i]} of ${total}`);
    }
    assert.ok(v.active[owner] > 0);
    // The hot key went to its owner while the owner had room, not elsewhere first.
    assert.equal(v.active[owner], Math.max(...v.active));
  }
  // Without the bound, the owner takes every hot request.
  const unbounded = new MaglevBalancer(buildMaglevTable(nodesOf(10), 65537), { loadFactor: 0 });
  const v = new ArrayNodeView(10);
  for (let k = 0; k < 100; k++) v.active[unbounded.pick(v, -1, keys[0])]++;
  assert.equal(Math.max(...v.active), 100);
  assert.throws(() => new MaglevBalancer(new Int32Array(3), { loadFactor: 0.5 }), /loadFactor/);
  assert.throws(() => new MaglevBalancer(new Int32Array(1031), { size: 1033 }), /no larger than the table/);
  assert.throws(() => new MaglevBalancer(new Int32Array(1000)), /must be a prime/);
});

test('bounded load with weights: a node may hold its weighted share', () => {
  const nodes = nodesOf(3, (i) => (i === 0 ? 2 : 1));
  const b = new MaglevBalancer(buildMaglevTable(nodes, 1031), { loadFactor: 1 });
  const v = new ArrayNodeView(3, { weights: [2, 1, 1] });
  for (let k = 0; k < 400; k++) v.active[b.pick(v, -1, keys[1])]++;
  assert.deepEqual([...v.active], [200, 100, 100]);
});

test('hashString: stable, in-place ranges equal whole strings, spread over low bits', () => {
  assert.equal(hashString('abc'), hashString('xxabcyy', 2, 5));
  assert.notEqual(hashString('abc'), hashString('abd'));
  assert.notEqual(hashString('abc', 0, 3, 0), hashString('abc', 0, 3, 1));
  const buckets = new Array<number>(16).fill(0);
  for (let i = 0; i < 16_000; i++) buckets[hashString(`k${i}`) & 15]++;
  for (const x of buckets) assert.ok(Math.abs(x - 1000) < 150, String(buckets));
});

class Req implements HashKeyRequest {
  headers: Record<string, string> = {};
  query = '';
  clientIp = '192.0.2.7';
  consumerId: string | null = null;
  path = '/orders/1';
  cookie?: (name: string) => string | undefined;
  header(name: string) {
    return this.headers[name];
  }
}

test('compileHashKey: each source, first present wins, client address as the last resort', () => {
  const r = new Req();
  const ip = hashString('192.0.2.7');
  assert.equal(compileHashKey(['ip'])(r), ip);
  assert.equal(compileHashKey(['path'])(r), hashString('/orders/1'));
  assert.equal(compileHashKey(['consumer'])(r), ip, 'no consumer: the client address');
  r.consumerId = 'acme';
  assert.equal(compileHashKey(['consumer'])(r), hashString('acme'));
  const byHeader = compileHashKey(['header:X-User', 'consumer']);
  assert.equal(byHeader(r), hashString('acme'));
  r.headers['x-user'] = 'u1';
  assert.equal(byHeader(r), hashString('u1'), 'header names are matched in lower case');

  const cookie = compileHashKey(['cookie:sid']);
  r.headers.cookie = 'theme=dark; sid=abc123 ; sidx=no';
  assert.equal(cookie(r), hashString('abc123'));
  r.headers.cookie = 'sidx=no; x=1';
  assert.equal(cookie(r), ip);
  r.cookie = (name) => (name === 'sid' ? 'parsed' : undefined);
  assert.equal(cookie(r), hashString('parsed'), 'the context cookie accessor when it has one');

  const q = compileHashKey(['query:tenant']);
  r.query = 'a=1&tenant=t-9&tenantx=2';
  assert.equal(q(r), hashString('t-9'));
  r.query = 'tenant&a=1';
  assert.equal(q(r), hashString(''));
  r.query = 'tenantx=1';
  assert.equal(q(r), ip);
  assert.throws(() => compileHashKey(['body:x']), /unknown source/);
  assert.throws(() => compileHashKey([]), /at least one/);
});

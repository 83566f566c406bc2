import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockList } from 'node:net';
import { CidrSet, IP_INVALID, IP_V4, IP_V6, parseCidr, parseIp, parseIpInto } from '../../src/shared/cidr.js';

const out = new Uint32Array(4);
const words = (text: string) => (parseIpInto(text, out) === IP_INVALID ? null : [...out]);

test('IPv4 text parses to one unsigned word; malformed text is refused', () => {
  assert.equal(parseIpInto('0.0.0.0', out), IP_V4);
  assert.equal(out[0], 0);
  assert.equal(parseIpInto('255.255.255.255', out), IP_V4);
  assert.equal(out[0], 0xffffffff);
  assert.equal(parseIpInto('192.168.1.2', out), IP_V4);
  assert.equal(out[0], 0xc0a80102);
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1..2.3', '1.2.3.4 ', ' 1.2.3.4', '1.2.3.', '.1.2.3', 'a.b.c.d', '1.2.3.1234', '[1.2.3.4]']) {
    assert.equal(parseIpInto(bad, out), IP_INVALID, bad);
  }
});

test('IPv6 compressed and full forms parse to the same words', () => {
  const full = words('2001:0db8:0000:0000:0000:0000:0000:0001');
  assert.deepEqual(words('2001:db8::1'), full);
  assert.deepEqual(words('2001:DB8:0:0:0:0:0:1'), full);
  assert.deepEqual(words('2001:db8:0::0:1'), full);
  assert.deepEqual(words('::'), [0, 0, 0, 0]);
  assert.deepEqual(words('::1'), [0, 0, 0, 1]);
  assert.deepEqual(words('1::'), [0x00010000, 0, 0, 0]);
  assert.deepEqual(words('fe80::1%eth0'), [0xfe800000, 0, 0, 1]);
  assert.deepEqual(words('1:2:3:4:5:6:7:8'), [0x00010002, 0x00030004, 0x00050006, 0x00070008]);
  assert.deepEqual(words('1:2:3:4:5:6::8'), [0x00010002, 0x00030004, 0x00050006, 0x00000008]);
  for (const bad of [':', ':::', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '12345::', '1:', ':1', '1:2:3:4:5:6:7:8::', 'g::1', '::1.2.3', '1:2:3:4:5:6:7:1.2.3.4']) {
    assert.equal(parseIpInto(bad, out), IP_INVALID, bad);
  }
});

test('IPv4-mapped IPv6 is IPv4, also in the zero-padded form uWS prints', () => {
  assert.equal(parseIpInto('::ffff:1.2.3.4', out), IP_V4);
  assert.equal(out[0], 0x01020304);
  assert.equal(parseIpInto('::FFFF:102:304', out), IP_V4);
  assert.equal(out[0], 0x01020304);
  assert.equal(parseIpInto('000:000:000:000:000:ffff:7f00:001', out), IP_V4);
  assert.equal(out[0], 0x7f000001);
  // IPv4-compatible (deprecated) and NAT64 addresses stay IPv6.
  assert.equal(parseIpInto('::1.2.3.4', out), IP_V6);
  assert.equal(parseIpInto('64:ff9b::1.2.3.4', out), IP_V6);
  assert.deepEqual(parseIp('::ffff:10.0.0.1'), { v6: false, words: [0x0a000001] });
});

test('CIDR parsing: /0, /32, /128, host bits cleared, strict prefix text', () => {
  assert.deepEqual(parseCidr('0.0.0.0/0'), { v6: false, words: [0], bits: 0 });
  assert.deepEqual(parseCidr('10.1.2.3/8'), { v6: false, words: [0x0a000000], bits: 8 });
  assert.deepEqual(parseCidr('10.1.2.3'), { v6: false, words: [0x0a010203], bits: 32 });
  assert.deepEqual(parseCidr('::1/128'), { v6: true, words: [0, 0, 0, 1], bits: 128 });
  assert.deepEqual(parseCidr('2001:db8::/32'), { v6: true, words: [0x20010db8, 0, 0, 0], bits: 32 });
  // mapped form: the prefix counts the 96 bits in front of the IPv4 address
  assert.deepEqual(parseCidr('::ffff:10.0.0.0/104'), { v6: false, words: [0x0a000000], bits: 8 });
  assert.deepEqual(parseCidr('::ffff:1.2.3.4/128'), { v6: false, words: [0x01020304], bits: 32 });
  for (const bad of ['1.2.3.4/', '1.2.3.4/33', '1.2.3.4/-1', '1.2.3.4/ 8', '1.2.3.4/0x8', '1.2.3.4/08', '1.2.3.4/8/9', '::/129', '::ffff:1.2.3.4/129', 'x/8', '/8']) {
    assert.equal(parseCidr(bad), null, bad);
  }
});

test('CidrSet: edges of /0, /32, /128 blocks and families kept apart', () => {
  const all4 = new CidrSet(['0.0.0.0/0']);
  assert.ok(all4.has('0.0.0.0') && all4.has('255.255.255.255') && all4.has('::ffff:8.8.8.8'));
  assert.ok(!all4.has('::1'), 'an IPv4 block never matches an IPv6 client');
  const all6 = new CidrSet(['::/0']);
  assert.ok(all6.has('::') && all6.has('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff') && all6.has('2001:db8::1'));
  assert.ok(!all6.has('1.2.3.4') && !all6.has('::ffff:1.2.3.4'), '::/0 means IPv6 clients only');
  const host = new CidrSet(['203.0.113.7/32', '2001:db8::7/128']);
  assert.ok(host.has('203.0.113.7') && !host.has('203.0.113.6') && !host.has('203.0.113.8'));
  assert.ok(host.has('2001:db8::7') && host.has('2001:0db8:0:0:0:0:0:0007') && !host.has('2001:db8::8') && !host.has('2001:db8::6'));
  const net = new CidrSet(['10.0.0.0/8', '192.168.0.0/16']);
  assert.ok(net.has('10.0.0.0') && net.has('10.255.255.255') && !net.has('11.0.0.0') && !net.has('9.255.255.255'));
  assert.ok(net.has('192.168.255.255') && !net.has('192.169.0.0'));
  const mapped = new CidrSet(['::ffff:10.0.0.0/104']);
  assert.ok(mapped.has('10.9.8.7') && mapped.has('::ffff:10.9.8.7') && !mapped.has('11.0.0.1'));
  assert.ok(!net.has('not-an-ip') && !net.has(''));
  assert.equal(new CidrSet([]).has('1.2.3.4'), false);
  assert.equal(new CidrSet(['garbage', '1.2.3.4']).size, 1);
});

test('CidrSet: nested and overlapping blocks merge', () => {
  const s = new CidrSet(['10.0.0.0/8', '10.1.0.0/16', '10.0.0.0/9', '172.16.0.0/12', '172.16.5.0/24', '::/1', '8000::/1']);
  assert.ok(s.has('10.200.0.1') && s.has('10.1.2.3') && s.has('172.31.255.255') && !s.has('172.32.0.0'));
  assert.ok(s.has('::1') && s.has('ffff::1'));
});

/** A small deterministic generator so that a failure can be replayed. */
function rng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

test('CidrSet agrees with node:net BlockList on random IPv4 and IPv6 blocks and addresses', () => {
  const rand = rng(0x5eed);
  const v4 = () => [0, 0, 0, 0].map(() => Math.floor(rand() * 4) * 64 + Math.floor(rand() * 2)).join('.');
  const v6 = () =>
    Array.from({ length: 8 }, () => (rand() < 0.5 ? 0 : Math.floor(rand() * 4) * 0x4000 + Math.floor(rand() * 2)).toString(16)).join(':');
  for (let round = 0; round < 50; round++) {
    const blocks: string[] = [];
    // one list per family: BlockList also matches IPv4 addresses against IPv6 blocks through ::ffff:0:0/96
    const ref = { ipv4: new BlockList(), ipv6: new BlockList() };
    for (let i = 0; i < 1 + Math.floor(rand() * 8); i++) {
      const six = rand() < 0.5;
      const addr = six ? v6() : v4();
      const bits = Math.floor(rand() * (six ? 129 : 33));
      blocks.push(`${addr}/${bits}`);
      // BlockList wants the network address itself
      const c = parseCidr(`${addr}/${bits}`)!;
      const netText = six ? c.words.flatMap((w) => [(w >>> 16).toString(16), (w & 0xffff).toString(16)]).join(':') : [24, 16, 8, 0].map((s) => (c.words[0] >>> s) & 255).join('.');
      ref[six ? 'ipv6' : 'ipv4'].addSubnet(netText, bits, six ? 'ipv6' : 'ipv4');
    }
    const set = new CidrSet(blocks);
    for (let k = 0; k < 200; k++) {
      const six = rand() < 0.5;
      const ip = six ? v6() : v4();
      assert.equal(set.has(ip), ref[six ? 'ipv6' : 'ipv4'].check(ip, six ? 'ipv6' : 'ipv4'), `${ip} against ${blocks.join(' ')}`);
    }
  }
});

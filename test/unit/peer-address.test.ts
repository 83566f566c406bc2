import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addressText, peerAddress } from '../../src/worker/peer-address.js';

const v6 = (...groups: number[]): Uint8Array => {
  const b = new Uint8Array(16);
  groups.forEach((g, i) => {
    b[2 * i] = g >> 8;
    b[2 * i + 1] = g & 0xff;
  });
  return b;
};

test('IPv4 and IPv4-mapped IPv6 come out as a dotted quad', () => {
  assert.equal(addressText(new Uint8Array([127, 0, 0, 1])), '127.0.0.1');
  assert.equal(addressText(new Uint8Array([10, 200, 3, 255])), '10.200.3.255');
  assert.equal(addressText(v6(0, 0, 0, 0, 0, 0xffff, 0x7f00, 0x0001)), '127.0.0.1');
  assert.equal(addressText(v6(0, 0, 0, 0, 0, 0xffff, 0xc0a8, 0x0102)), '192.168.1.2');
  // not mapped: ::fffe:… and 1::ffff:… stay IPv6
  assert.equal(addressText(v6(0, 0, 0, 0, 0, 0xfffe, 0x7f00, 1)), '::fffe:7f00:1');
  assert.equal(addressText(v6(1, 0, 0, 0, 0, 0xffff, 0x7f00, 1)), '1::ffff:7f00:1');
});

test('IPv6 is written in RFC 5952 form', () => {
  assert.equal(addressText(v6(0, 0, 0, 0, 0, 0, 0, 1)), '::1');
  assert.equal(addressText(v6(0, 0, 0, 0, 0, 0, 0, 0)), '::');
  assert.equal(addressText(v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)), '2001:db8::1');
  assert.equal(addressText(v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0)), '2001:db8::');
  // 4.2.2: a single zero group is not shortened
  assert.equal(addressText(v6(0x2001, 0xdb8, 0, 1, 1, 1, 1, 1)), '2001:db8:0:1:1:1:1:1');
  // 4.2.3: the longest run, and the first of equal runs
  assert.equal(addressText(v6(0x2001, 0, 0, 1, 0, 0, 0, 1)), '2001:0:0:1::1');
  assert.equal(addressText(v6(0x2001, 0xdb8, 0, 0, 1, 0, 0, 1)), '2001:db8::1:0:0:1');
  // 4.3: lower case, no leading zeros
  assert.equal(addressText(v6(0xfe80, 0, 0, 0, 0x0abc, 0xdef0, 0x0012, 0x3400)), 'fe80::abc:def0:12:3400');
  assert.equal(addressText(v6(0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff)), 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
});

test('an address of another length (a socket already gone) is empty', () => {
  assert.equal(addressText(new Uint8Array(0)), '');
  assert.equal(addressText(new Uint8Array(8)), '');
});

test('peerAddress answers from the last address only while the bytes are the same', () => {
  const from = (bytes: number[]) => ({ getRemoteAddress: () => new Uint8Array(bytes).buffer });
  assert.equal(peerAddress(from([10, 0, 0, 1])), '10.0.0.1');
  assert.equal(peerAddress(from([10, 0, 0, 1])), '10.0.0.1');
  assert.equal(peerAddress(from([10, 0, 0, 2])), '10.0.0.2');
  // same first four bytes, other length: not the cached IPv4 answer
  assert.equal(peerAddress(from([10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])), 'a00:2::');
  assert.equal(peerAddress(from([])), '');
  assert.equal(peerAddress(from([10, 0, 0, 2])), '10.0.0.2');
});

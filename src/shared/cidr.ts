import { isIP } from 'node:net';

/**
 * CIDR blocks as numbers, parsed when the config loads. IPv4 addresses (and IPv4-mapped IPv6 ones) compare as one
 * 32-bit number; IPv6 as four 32-bit words.
 */
export interface Cidr {
  readonly v6: boolean;
  readonly words: readonly number[];
  readonly bits: number;
}

function v4Words(ip: string): number[] {
  const p = ip.split('.').map(Number);
  return [((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0];
}

function v6Words(ip: string): number[] | null {
  let head = ip;
  let tailV4: number[] | null = null;
  const lastColon = ip.lastIndexOf(':');
  if (ip.includes('.', lastColon)) {
    tailV4 = v4Words(ip.slice(lastColon + 1));
    head = ip.slice(0, lastColon + 1) + '0:0';
  }
  const [left, right] = head.split('::');
  const l = left ? left.split(':') : [];
  const r = right !== undefined && right !== '' ? right.split(':') : [];
  const fill = head.includes('::') ? 8 - l.length - r.length : 0;
  const groups = [...l, ...new Array(fill).fill('0'), ...r].map((g) => parseInt(g, 16));
  if (groups.length !== 8 || groups.some((g) => !(g >= 0 && g <= 0xffff))) return null;
  const words = [0, 1, 2, 3].map((i) => ((groups[2 * i] << 16) | groups[2 * i + 1]) >>> 0);
  if (tailV4) words[3] = tailV4[0];
  return words;
}

/** Normalises an address: IPv4-mapped IPv6 (::ffff:1.2.3.4) becomes IPv4. */
export function parseIp(ip: string): { v6: boolean; words: number[] } | null {
  const kind = isIP(ip);
  if (kind === 4) return { v6: false, words: v4Words(ip) };
  if (kind === 6) {
    const words = v6Words(ip.toLowerCase());
    if (!words) return null;
    if (words[0] === 0 && words[1] === 0 && words[2] === 0xffff) return { v6: false, words: [words[3]] };
    return { v6: true, words };
  }
  return null;
}

export function parseCidr(text: string): Cidr | null {
  const [addr, bitsText] = text.split('/');
  const ip = parseIp(addr);
  if (!ip) return null;
  const max = ip.v6 ? 128 : 32;
  const bits = bitsText === undefined ? max : Number(bitsText);
  if (!Number.isInteger(bits) || bits < 0 || bits > max) return null;
  return { v6: ip.v6, words: ip.words, bits };
}

export function cidrContains(cidr: Cidr, ip: { v6: boolean; words: readonly number[] }): boolean {
  if (cidr.v6 !== ip.v6) return false;
  let bits = cidr.bits;
  for (let i = 0; i < cidr.words.length && bits > 0; i++) {
    const take = Math.min(32, bits);
    const mask = take === 32 ? 0xffffffff : ~(0xffffffff >>> take) >>> 0;
    if (((cidr.words[i] & mask) >>> 0) !== ((ip.words[i] & mask) >>> 0)) return false;
    bits -= take;
  }
  return true;
}

/** A compiled allow-list: true when the address is inside any block. */
export class CidrSet {
  readonly #blocks: Cidr[];
  constructor(blocks: readonly string[]) {
    this.#blocks = blocks.map((b) => parseCidr(b)).filter((b): b is Cidr => b !== null);
  }
  get size(): number {
    return this.#blocks.length;
  }
  has(ipText: string): boolean {
    if (this.#blocks.length === 0) return false;
    const ip = parseIp(ipText);
    if (!ip) return false;
    for (const b of this.#blocks) if (cidrContains(b, ip)) return true;
    return false;
  }
}

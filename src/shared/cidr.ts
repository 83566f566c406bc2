/**
 * IP addresses and CIDR blocks as numbers. Blocks are parsed when a config loads; an address is parsed per request by
 * a char-code scanner that allocates nothing (it writes into a caller's Uint32Array), then looked up by binary search
 * in sorted, merged ranges.
 *
 * Families stay apart, as in nginx's access module: an IPv4-mapped IPv6 address (::ffff:1.2.3.4, also as uWS prints
 * it: 000:000:000:000:000:ffff:102:304) is the IPv4 address 1.2.3.4 and is matched by IPv4 blocks only, and a block
 * written in mapped form with a prefix of 96 bits or more (::ffff:10.0.0.0/104) is the IPv4 block 10.0.0.0/8.
 * ::/0 therefore means "every IPv6 client", not "everyone".
 *
 * Range layout of a CidrSet (merged, sorted by start, disjoint):
 *
 *   v4First/v4Last  Uint32Array [start0, start1, …] / [end0, end1, …]          one word per address
 *   v6Ranges        Uint32Array [s0 s1 s2 s3 e0 e1 e2 e3 | s0 … e3 | …]        8 words per range, big-endian words
 */

export const IP_INVALID = 0;
export const IP_V4 = 4;
export const IP_V6 = 6;
export type IpFamily = typeof IP_INVALID | typeof IP_V4 | typeof IP_V6;

export interface Cidr {
  readonly v6: boolean;
  readonly words: readonly number[];
  readonly bits: number;
}

const CH_0 = 48, CH_9 = 57, CH_DOT = 46, CH_COLON = 58, CH_PERCENT = 37, CH_A = 97, CH_F = 102, CH_UA = 65, CH_UF = 70;

/** Dotted-quad text in text[start, end) as an unsigned 32-bit number, or -1. Leading zeros are refused (octal?). */
function parseV4(text: string, start: number, end: number): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c >= CH_0 && c <= CH_9) {
      if (digits === 1 && octet === 0) return -1; // "01"
      octet = octet * 10 + (c - CH_0);
      if (++digits > 3 || octet > 255) return -1;
    } else if (c === CH_DOT) {
      if (digits === 0 || ++dots > 3) return -1;
      // Multiplication rather than << keeps the value unsigned (bit ops are signed 32-bit in JS).
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
    } else return -1;
  }
  if (digits === 0 || dots !== 3) return -1;
  return value * 256 + octet;
}

function hexValue(c: number): number {
  if (c >= CH_0 && c <= CH_9) return c - CH_0;
  if (c >= CH_A && c <= CH_F) return c - CH_A + 10;
  if (c >= CH_UA && c <= CH_UF) return c - CH_UA + 10;
  return -1;
}

/** The eight 16-bit groups of the IPv6 address being parsed (module scratch: parsing allocates nothing). */
const groups = new Uint16Array(8);

/** IPv6 text (compressed forms, an IPv4 tail, a %zone that is ignored) into `out[0..3]`; false when invalid. */
function parseV6(text: string, out: Uint32Array): boolean {
  let end = text.length;
  const zone = text.indexOf('%');
  if (zone >= 0) end = zone;
  let i = 0;
  let g = 0;
  let gap = -1; // group index where "::" stands
  if (end >= 2 && text.charCodeAt(0) === CH_COLON) {
    if (text.charCodeAt(1) !== CH_COLON) return false;
    gap = 0;
    i = 2;
  }
  while (i < end) {
    if (g === 8) return false;
    const groupStart = i;
    let value = 0;
    let digits = 0;
    while (i < end) {
      const h = hexValue(text.charCodeAt(i));
      if (h < 0) break;
      value = value * 16 + h;
      digits++;
      i++;
    }
    if (i < end && text.charCodeAt(i) === CH_DOT) {
      // An IPv4 tail takes the last two groups.
      if (g > 6) return false;
      const v4 = parseV4(text, groupStart, end);
      if (v4 < 0) return false;
      groups[g++] = v4 >>> 16;
      groups[g++] = v4 & 0xffff;
      i = end;
      break;
    }
    if (digits === 0 || digits > 4) return false;
    groups[g++] = value;
    if (i === end) break;
    if (text.charCodeAt(i) !== CH_COLON) return false;
    i++;
    if (i < end && text.charCodeAt(i) === CH_COLON) {
      if (gap >= 0) return false; // a second "::"
      gap = g;
      i++;
    } else if (i === end) return false; // a trailing single ":"
  }
  if (gap < 0) {
    if (g !== 8) return false;
  } else {
    if (g > 7) return false;
    // Move the groups after "::" to the end and zero the gap.
    const tail = g - gap;
    for (let k = 0; k < tail; k++) groups[7 - k] = groups[g - 1 - k];
    for (let k = gap; k < 8 - tail; k++) groups[k] = 0;
  }
  out[0] = groups[0] * 65536 + groups[1];
  out[1] = groups[2] * 65536 + groups[3];
  out[2] = groups[4] * 65536 + groups[5];
  out[3] = groups[6] * 65536 + groups[7];
  return true;
}

/**
 * Parses an address without allocating: IPv4 into out[0], IPv6 into out[0..3] (an IPv4-mapped IPv6 address comes
 * back as IPv4). Returns IP_V4, IP_V6 or IP_INVALID. `out` needs 4 elements.
 */
export function parseIpInto(text: string, out: Uint32Array): IpFamily {
  const n = text.length;
  if (n === 0 || n > 64) return IP_INVALID;
  // Common case first: try dotted IPv4 straight away (an IPv6 text fails within its first group).
  const v = parseV4(text, 0, n);
  if (v >= 0) {
    out[0] = v;
    return IP_V4;
  }
  if (text.indexOf(':') < 0 || !parseV6(text, out)) return IP_INVALID;
  if (out[0] === 0 && out[1] === 0 && out[2] === 0xffff) {
    out[0] = out[3];
    return IP_V4;
  }
  return IP_V6;
}

const parseScratch = new Uint32Array(4);

/** Normalises an address: IPv4-mapped IPv6 (::ffff:1.2.3.4) becomes IPv4. Allocates; for config-time use. */
export function parseIp(ip: string): { v6: boolean; words: number[] } | null {
  const family = parseIpInto(ip, parseScratch);
  if (family === IP_V4) return { v6: false, words: [parseScratch[0]] };
  if (family === IP_V6) return { v6: true, words: [parseScratch[0], parseScratch[1], parseScratch[2], parseScratch[3]] };
  return null;
}

/** Parses "addr" or "addr/bits" (bits in decimal, no sign or spaces). Host bits are cleared: 10.1.2.3/8 is 10.0.0.0/8. */
export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/');
  const ip = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (!ip) return null;
  let bits = ip.v6 ? 128 : 32;
  if (slash >= 0) {
    const b = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(b)) return null;
    bits = Number(b);
    // Written in IPv6 form (a colon) but IPv4-mapped: the prefix counts the 96 bits before the IPv4 address.
    if (!ip.v6 && text.lastIndexOf(':', slash) >= 0) {
      if (bits > 128) return null;
      if (bits < 96) return { v6: true, words: mask([0, 0, 0xffff, ip.words[0]], bits), bits };
      bits -= 96;
    }
    if (bits > (ip.v6 ? 128 : 32)) return null;
  }
  return { v6: ip.v6, words: mask(ip.words, bits), bits };
}

/** The first `bits` bits of `words` (the rest zero). */
function mask(words: readonly number[], bits: number): number[] {
  return words.map((w, i) => {
    const take = Math.max(0, Math.min(32, bits - 32 * i));
    return take === 0 ? 0 : take === 32 ? w : (w & ~(0xffffffff >>> take)) >>> 0;
  });
}

/** The last address of a block: its words with the host bits set. */
function last(c: Cidr): number[] {
  return c.words.map((w, i) => {
    const take = Math.max(0, Math.min(32, c.bits - 32 * i));
    return take === 0 ? 0xffffffff : take === 32 ? w : (w | (0xffffffff >>> take)) >>> 0;
  });
}

export function cidrContains(cidr: Cidr, ip: { v6: boolean; words: readonly number[] }): boolean {
  if (cidr.v6 !== ip.v6) return false;
  const m = mask(ip.words, cidr.bits);
  for (let i = 0; i < m.length; i++) if (m[i] !== cidr.words[i]) return false;
  return true;
}

function compareWords(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

/** Sorts ranges by start and merges overlapping ones (prefix blocks either nest or are disjoint). */
function mergeRanges(ranges: { first: number[]; last: number[] }[]): { first: number[]; last: number[] }[] {
  ranges.sort((a, b) => compareWords(a.first, b.first));
  const out: { first: number[]; last: number[] }[] = [];
  for (const r of ranges) {
    const prev = out[out.length - 1];
    if (prev && compareWords(r.first, prev.last) <= 0) {
      if (compareWords(r.last, prev.last) > 0) prev.last = r.last;
    } else out.push({ first: r.first, last: r.last });
  }
  return out;
}

/**
 * A compiled set of blocks: `has` / `contains` answer whether an address is inside any of them in O(log n) without
 * allocating. Invalid entries are skipped (the config compiler reports them before a set is built).
 */
export class CidrSet {
  readonly #v4First: Uint32Array;
  readonly #v4Last: Uint32Array;
  readonly #v6: Uint32Array;
  readonly #v6Count: number;
  readonly #size: number;
  readonly #scratch = new Uint32Array(4);

  constructor(blocks: readonly string[]) {
    const v4: { first: number[]; last: number[] }[] = [];
    const v6: { first: number[]; last: number[] }[] = [];
    for (const text of blocks) {
      const c = parseCidr(text);
      if (c) (c.v6 ? v6 : v4).push({ first: [...c.words], last: last(c) });
    }
    this.#size = v4.length + v6.length;
    const m4 = mergeRanges(v4);
    this.#v4First = Uint32Array.from(m4, (r) => r.first[0]);
    this.#v4Last = Uint32Array.from(m4, (r) => r.last[0]);
    const m6 = mergeRanges(v6);
    this.#v6Count = m6.length;
    this.#v6 = new Uint32Array(m6.length * 8);
    m6.forEach((r, i) => {
      this.#v6.set(r.first, i * 8);
      this.#v6.set(r.last, i * 8 + 4);
    });
  }

  /** number of valid blocks given */
  get size(): number {
    return this.#size;
  }

  /** true when the address text is inside a block; false for unparsable text */
  has(ipText: string): boolean {
    if (this.#size === 0) return false;
    return this.contains(parseIpInto(ipText, this.#scratch), this.#scratch);
  }

  /** the same for an address already parsed by parseIpInto (parse once, test several sets) */
  contains(family: IpFamily, words: Uint32Array): boolean {
    if (family === IP_V4) {
      const first = this.#v4First;
      const ip = words[0];
      // Binary search for the last range starting at or before ip.
      let lo = 0;
      let hi = first.length - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >>> 1;
        if (first[mid] <= ip) lo = mid + 1;
        else hi = mid - 1;
      }
      return hi >= 0 && ip <= this.#v4Last[hi];
    }
    if (family === IP_V6) {
      const r = this.#v6;
      let lo = 0;
      let hi = this.#v6Count - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >>> 1;
        if (compareAt(r, mid * 8, words) <= 0) lo = mid + 1;
        else hi = mid - 1;
      }
      return hi >= 0 && compareAt(r, hi * 8 + 4, words) >= 0;
    }
    return false;
  }
}

/** Compares the 128-bit value at r[offset..offset+3] with words[0..3]. */
function compareAt(r: Uint32Array, offset: number, words: Uint32Array): number {
  for (let i = 0; i < 4; i++) {
    const a = r[offset + i];
    const b = words[i];
    if (a !== b) return a < b ? -1 : 1;
  }
  return 0;
}

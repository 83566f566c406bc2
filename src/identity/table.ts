import { IP_INVALID, IP_V6, parseIpInto, type Cidr } from '../shared/cidr.js';

/**
 * The consumer table: one SharedArrayBuffer, written once by the control plane (buildConsumerTable), then only read
 * by every worker (ConsumerTable). A new registry version is a new buffer with a higher generation; nothing is ever
 * written into a published buffer, so plain typed-array reads are safe after the postMessage that shared it (the
 * message is the happens-before edge). The generation word is the one field read and written with Atomics.
 *
 *   byte 0
 *   +------------------------------------------------------------------------------------------------------+
 *   | HEADER       HEADER_WORDS x int32: MAGIC LAYOUT GENERATION(atomic) counts... section byte offsets    |
 *   +------------------------------------------------------------------------------------------------------+
 *   | KEY_SLOTS    keySlots x int32        entry + 1 (0 = EMPTY)   open addressing, linear probing,         |
 *   |                                                              slot = first 4 digest bytes (LE) & mask  |
 *   | KEY_ENTRIES  keyCount x 36 bytes     sha256 digest [32 bytes] | consumer index (int32)                |
 *   | ID_SLOTS     idSlots x int32         consumer + 1 (0 = EMPTY) slot = fnv1a(id) & mask                 |
 *   | JWT_SLOTS    jwtSlots x int32        entry + 1 (0 = EMPTY)   slot = fnv1a(issuer, subject) & mask     |
 *   | JWT_ENTRIES  jwtCount x 5 int32      hash | issuer name | subject char offset | length | consumer      |
 *   | RECORDS      count x 8 int32         id char offset | id length | id hash | plan name (NONE = -1) |   |
 *   |                                      scopes list | roles list | subscriptions list | ip list         |
 *   | NAMES        nameCount x 2 int32     char offset | length   (interned: plans, scopes, roles, APIs,    |
 *   |                                                               environments, JWT issuers)             |
 *   | LISTS        int32 pool; a list is [n, items...]; list 0 is the shared empty list                    |
 *   |                scopes, roles:   [n, name...]                                                          |
 *   |                subscriptions:   [n, (api name, environment name or NONE)...]                          |
 *   |                ip allowlist:    [n, (v6 0|1, prefix bits, w0, w1, w2, w3)...]                         |
 *   | CHARS        uint16 pool: UTF-16 code units of ids, names and JWT subjects                           |
 *   +------------------------------------------------------------------------------------------------------+
 *
 * Strings are UTF-16 code units so that a lookup compares them with charCodeAt, allocating nothing. Slot counts are
 * powers of two at a load factor of at most 1/2, so a miss ends after a short probe.
 */

export const MAGIC = 0x4e47_4354; // "NGCT"
export const LAYOUT = 1;

// Header words (int32 index).
const H_MAGIC = 0;
const H_LAYOUT = 1;
/** the table's generation: written by the control plane before the buffer is published (Atomics) */
export const H_GENERATION = 2;
const H_COUNT = 3;
const H_KEY_SLOTS = 4;
const H_KEY_COUNT = 5;
const H_ID_SLOTS = 6;
const H_JWT_SLOTS = 7;
const H_JWT_COUNT = 8;
const H_NAME_COUNT = 9;
const H_OFF_KEY_SLOTS = 10;
const H_OFF_KEY_ENTRIES = 11;
const H_OFF_ID_SLOTS = 12;
const H_OFF_JWT_SLOTS = 13;
const H_OFF_JWT_ENTRIES = 14;
const H_OFF_RECORDS = 15;
const H_OFF_NAMES = 16;
const H_OFF_LISTS = 17;
const H_OFF_CHARS = 18;
const H_TOTAL_BYTES = 19;
const HEADER_WORDS = 20;

const EMPTY = 0;
/** "no name" in a record's plan or a subscription's environment */
const NONE = -1;

const KEY_ENTRY_BYTES = 36;
const DIGEST_BYTES = 32;

const JWT_ENTRY_WORDS = 5;
const J_HASH = 0, J_ISSUER = 1, J_SUB_OFF = 2, J_SUB_LEN = 3, J_CONSUMER = 4;

const RECORD_WORDS = 8;
const R_ID_OFF = 0, R_ID_LEN = 1, R_ID_HASH = 2, R_PLAN = 3, R_SCOPES = 4, R_ROLES = 5, R_SUBS = 6, R_IPS = 7;

const CIDR_WORDS = 6;

/** A consumer as the control plane knows it, after validation (API keys only as digests). */
export interface ConsumerSpec {
  readonly id: string;
  readonly plan: string | null;
  /** SHA-256 digests of the consumer's API keys, 32 bytes each */
  readonly keys: readonly Uint8Array[];
  readonly jwt: readonly { readonly issuer: string; readonly subject: string }[];
  /** environment null = every environment; api "*" = every API */
  readonly subscriptions: readonly { readonly api: string; readonly environment: string | null }[];
  readonly scopes: readonly string[];
  readonly roles: readonly string[];
  readonly allowIps: readonly Cidr[];
}

/** 32-bit FNV-1a over UTF-16 code units; `seed` chains two strings (issuer, then subject). */
export function fnv1a(s: string, seed = 0x811c9dc5): number {
  let h = seed;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function jwtHash(issuer: string, subject: string): number {
  // 0xffff is not a character, so ("ab", "c") and ("a", "bc") hash apart.
  return fnv1a(subject, Math.imul(fnv1a(issuer) ^ 0xffff, 0x01000193) >>> 0);
}

function slotsFor(n: number): number {
  let s = 8;
  while (s < n * 2) s *= 2;
  return s;
}

const align8 = (n: number) => (n + 7) & ~7;

/**
 * Lays out `specs` in a new SharedArrayBuffer. Throws on duplicate ids, keys or JWT mappings (the caller validates
 * first and reports them with their config path; this is the last line of defence).
 */
export function buildConsumerTable(specs: readonly ConsumerSpec[], generation = 0): SharedArrayBuffer {
  const count = specs.length;
  const names = new Map<string, number>();
  const nameList: string[] = [];
  const intern = (s: string): number => {
    let id = names.get(s);
    if (id === undefined) {
      id = nameList.length;
      names.set(s, id);
      nameList.push(s);
    }
    return id;
  };

  // Pass 1: intern names, build lists, size the pools.
  const lists: number[] = [0];
  const addNameList = (items: readonly string[]): number => {
    if (items.length === 0) return 0;
    const at = lists.length;
    lists.push(items.length);
    for (const s of items) lists.push(intern(s));
    return at;
  };
  const recLists = new Int32Array(count * 5);
  let keyCount = 0;
  let jwtCount = 0;
  let chars = 0;
  for (let c = 0; c < count; c++) {
    const s = specs[c];
    chars += s.id.length;
    keyCount += s.keys.length;
    jwtCount += s.jwt.length;
    for (const j of s.jwt) {
      intern(j.issuer);
      chars += j.subject.length;
    }
    recLists[c * 5] = s.plan === null ? NONE : intern(s.plan);
    recLists[c * 5 + 1] = addNameList(s.scopes);
    recLists[c * 5 + 2] = addNameList(s.roles);
    if (s.subscriptions.length) {
      recLists[c * 5 + 3] = lists.length;
      lists.push(s.subscriptions.length);
      for (const sub of s.subscriptions) lists.push(intern(sub.api), sub.environment === null ? NONE : intern(sub.environment));
    }
    if (s.allowIps.length) {
      recLists[c * 5 + 4] = lists.length;
      lists.push(s.allowIps.length);
      for (const b of s.allowIps) lists.push(b.v6 ? 1 : 0, b.bits, b.words[0] | 0, (b.words[1] ?? 0) | 0, (b.words[2] ?? 0) | 0, (b.words[3] ?? 0) | 0);
    }
  }
  for (const n of nameList) chars += n.length;

  const keySlots = slotsFor(keyCount);
  const idSlots = slotsFor(count);
  const jwtSlots = slotsFor(jwtCount);
  let off = HEADER_WORDS * 4;
  const offKeySlots = off; off = align8(off + keySlots * 4);
  const offKeyEntries = off; off = align8(off + keyCount * KEY_ENTRY_BYTES);
  const offIdSlots = off; off = align8(off + idSlots * 4);
  const offJwtSlots = off; off = align8(off + jwtSlots * 4);
  const offJwtEntries = off; off = align8(off + jwtCount * JWT_ENTRY_WORDS * 4);
  const offRecords = off; off = align8(off + count * RECORD_WORDS * 4);
  const offNames = off; off = align8(off + nameList.length * 2 * 4);
  const offLists = off; off = align8(off + lists.length * 4);
  const offChars = off; off = align8(off + chars * 2);
  const total = off;

  const sab = new SharedArrayBuffer(total);
  const i32 = new Int32Array(sab);
  const u8 = new Uint8Array(sab);
  const u16 = new Uint16Array(sab);
  i32[H_MAGIC] = MAGIC;
  i32[H_LAYOUT] = LAYOUT;
  i32[H_COUNT] = count;
  i32[H_KEY_SLOTS] = keySlots;
  i32[H_KEY_COUNT] = keyCount;
  i32[H_ID_SLOTS] = idSlots;
  i32[H_JWT_SLOTS] = jwtSlots;
  i32[H_JWT_COUNT] = jwtCount;
  i32[H_NAME_COUNT] = nameList.length;
  i32[H_OFF_KEY_SLOTS] = offKeySlots;
  i32[H_OFF_KEY_ENTRIES] = offKeyEntries;
  i32[H_OFF_ID_SLOTS] = offIdSlots;
  i32[H_OFF_JWT_SLOTS] = offJwtSlots;
  i32[H_OFF_JWT_ENTRIES] = offJwtEntries;
  i32[H_OFF_RECORDS] = offRecords;
  i32[H_OFF_NAMES] = offNames;
  i32[H_OFF_LISTS] = offLists;
  i32[H_OFF_CHARS] = offChars;
  i32[H_TOTAL_BYTES] = total;

  let charAt = offChars >> 1;
  const putChars = (s: string): number => {
    const at = charAt;
    for (let i = 0; i < s.length; i++) u16[at + i] = s.charCodeAt(i);
    charAt += s.length;
    return at;
  };

  // Names first: JWT entries and records refer to them.
  const nameCharOff = new Int32Array(nameList.length);
  for (let n = 0; n < nameList.length; n++) {
    nameCharOff[n] = putChars(nameList[n]);
    i32[(offNames >> 2) + n * 2] = nameCharOff[n];
    i32[(offNames >> 2) + n * 2 + 1] = nameList[n].length;
  }
  i32.set(lists, offLists >> 2);

  const keyMask = keySlots - 1;
  const idMask = idSlots - 1;
  const jwtMask = jwtSlots - 1;
  let keyEntry = 0;
  let jwtEntry = 0;
  for (let c = 0; c < count; c++) {
    const s = specs[c];
    const rec = (offRecords >> 2) + c * RECORD_WORDS;
    const idHash = fnv1a(s.id);
    i32[rec + R_ID_OFF] = putChars(s.id);
    i32[rec + R_ID_LEN] = s.id.length;
    i32[rec + R_ID_HASH] = idHash | 0;
    i32[rec + R_PLAN] = recLists[c * 5];
    i32[rec + R_SCOPES] = recLists[c * 5 + 1];
    i32[rec + R_ROLES] = recLists[c * 5 + 2];
    i32[rec + R_SUBS] = recLists[c * 5 + 3];
    i32[rec + R_IPS] = recLists[c * 5 + 4];

    for (let slot = idHash & idMask; ; slot = (slot + 1) & idMask) {
      const v = i32[(offIdSlots >> 2) + slot];
      if (v === EMPTY) {
        i32[(offIdSlots >> 2) + slot] = c + 1;
        break;
      }
      if (specs[v - 1].id === s.id) throw new Error(`duplicate consumer id "${s.id}"`);
    }

    for (const digest of s.keys) {
      if (digest.length !== DIGEST_BYTES) throw new Error(`consumer "${s.id}": a key digest must be ${DIGEST_BYTES} bytes`);
      const e = offKeyEntries + keyEntry * KEY_ENTRY_BYTES;
      for (let slot = digestSlot(digest) & keyMask; ; slot = (slot + 1) & keyMask) {
        const v = i32[(offKeySlots >> 2) + slot];
        if (v === EMPTY) {
          i32[(offKeySlots >> 2) + slot] = keyEntry + 1;
          break;
        }
        if (sameBytes(u8, offKeyEntries + (v - 1) * KEY_ENTRY_BYTES, digest)) throw new Error(`consumer "${s.id}": an API key is used by two consumers`);
      }
      u8.set(digest, e);
      i32[(e + DIGEST_BYTES) >> 2] = c;
      keyEntry++;
    }

    for (const j of s.jwt) {
      const h = jwtHash(j.issuer, j.subject);
      const e = (offJwtEntries >> 2) + jwtEntry * JWT_ENTRY_WORDS;
      const issuer = names.get(j.issuer)!;
      for (let slot = h & jwtMask; ; slot = (slot + 1) & jwtMask) {
        const v = i32[(offJwtSlots >> 2) + slot];
        if (v === EMPTY) {
          i32[(offJwtSlots >> 2) + slot] = jwtEntry + 1;
          break;
        }
        const o = (offJwtEntries >> 2) + (v - 1) * JWT_ENTRY_WORDS;
        if (i32[o + J_ISSUER] === issuer && charsEqual(u16, i32[o + J_SUB_OFF], i32[o + J_SUB_LEN], j.subject)) {
          throw new Error(`consumer "${s.id}": JWT issuer "${j.issuer}" subject "${j.subject}" is mapped twice`);
        }
      }
      i32[e + J_HASH] = h | 0;
      i32[e + J_ISSUER] = issuer;
      i32[e + J_SUB_OFF] = putChars(j.subject);
      i32[e + J_SUB_LEN] = j.subject.length;
      i32[e + J_CONSUMER] = c;
      jwtEntry++;
    }
  }
  Atomics.store(i32, H_GENERATION, generation);
  return sab;
}

/** Sets the generation of a table that has not been published yet. */
export function stampGeneration(sab: SharedArrayBuffer, generation: number): void {
  Atomics.store(new Int32Array(sab, 0, HEADER_WORDS), H_GENERATION, generation);
}

export function tableBytes(sab: SharedArrayBuffer): number {
  return new Int32Array(sab, 0, HEADER_WORDS)[H_TOTAL_BYTES];
}

/**
 * Every consumer of a table as specs again (control plane): how a registry version, kept only as its compact table,
 * is merged with changed config consumers without holding 100,000 spec objects between changes.
 */
export function readSpecs(sab: SharedArrayBuffer): ConsumerSpec[] {
  const i32 = new Int32Array(sab);
  const u8 = new Uint8Array(sab);
  const u16 = new Uint16Array(sab);
  const count = i32[H_COUNT];
  const names: string[] = [];
  for (let n = 0, at = i32[H_OFF_NAMES] >> 2; n < i32[H_NAME_COUNT]; n++) names.push(decodeChars(u16, i32[at + n * 2], i32[at + n * 2 + 1]));
  const keys: Uint8Array[][] = Array.from({ length: count }, () => []);
  for (let e = 0, at = i32[H_OFF_KEY_ENTRIES]; e < i32[H_KEY_COUNT]; e++, at += KEY_ENTRY_BYTES) {
    keys[i32[(at + DIGEST_BYTES) >> 2]].push(u8.slice(at, at + DIGEST_BYTES));
  }
  const jwt: { issuer: string; subject: string }[][] = Array.from({ length: count }, () => []);
  for (let e = 0, at = i32[H_OFF_JWT_ENTRIES] >> 2; e < i32[H_JWT_COUNT]; e++, at += JWT_ENTRY_WORDS) {
    jwt[i32[at + J_CONSUMER]].push({ issuer: names[i32[at + J_ISSUER]], subject: decodeChars(u16, i32[at + J_SUB_OFF], i32[at + J_SUB_LEN]) });
  }
  const lists = i32[H_OFF_LISTS] >> 2;
  const nameList = (at: number) => (at === 0 ? [] : Array.from({ length: i32[lists + at] }, (_, k) => names[i32[lists + at + 1 + k]]));
  const out: ConsumerSpec[] = [];
  for (let c = 0; c < count; c++) {
    const rec = (i32[H_OFF_RECORDS] >> 2) + c * RECORD_WORDS;
    const subs = i32[rec + R_SUBS];
    const ips = i32[rec + R_IPS];
    out.push({
      id: decodeChars(u16, i32[rec + R_ID_OFF], i32[rec + R_ID_LEN]),
      plan: i32[rec + R_PLAN] === NONE ? null : names[i32[rec + R_PLAN]],
      keys: keys[c],
      jwt: jwt[c],
      subscriptions:
        subs === 0
          ? []
          : Array.from({ length: i32[lists + subs] }, (_, k) => {
              const e = i32[lists + subs + 2 + k * 2];
              return { api: names[i32[lists + subs + 1 + k * 2]], environment: e === NONE ? null : names[e] };
            }),
      scopes: nameList(i32[rec + R_SCOPES]),
      roles: nameList(i32[rec + R_ROLES]),
      allowIps:
        ips === 0
          ? []
          : Array.from({ length: i32[lists + ips] }, (_, k) => {
              const o = lists + ips + 1 + k * CIDR_WORDS;
              const v6 = i32[o] === 1;
              const words = v6 ? [i32[o + 2] >>> 0, i32[o + 3] >>> 0, i32[o + 4] >>> 0, i32[o + 5] >>> 0] : [i32[o + 2] >>> 0];
              return { v6, bits: i32[o + 1], words };
            }),
    });
  }
  return out;
}

function digestSlot(d: Uint8Array): number {
  // SHA-256 output is uniform: its first four bytes are as good a hash as any.
  return (d[0] | (d[1] << 8) | (d[2] << 16) | (d[3] << 24)) >>> 0;
}

function sameBytes(u8: Uint8Array, at: number, d: Uint8Array): boolean {
  for (let i = 0; i < DIGEST_BYTES; i++) if (u8[at + i] !== d[i]) return false;
  return true;
}

function charsEqual(u16: Uint16Array, off: number, len: number, s: string): boolean {
  if (len !== s.length) return false;
  for (let i = 0; i < len; i++) if (u16[off + i] !== s.charCodeAt(i)) return false;
  return true;
}

function decodeChars(u16: Uint16Array, off: number, len: number): string {
  // Ids and names are short (schema: at most 256 characters), far below the argument-count limit of apply.
  return String.fromCharCode.apply(null, u16.subarray(off, off + len) as unknown as number[]);
}

/** What a worker decodes once per consumer it sees (then served from cache, identity-stable). */
/** A consumer record's strings, decoded once per worker and table. */
export interface Decoded {
  readonly id: string;
  readonly plan: string | null;
  readonly scopes: readonly string[];
  readonly roles: readonly string[];
}

const NO_NAMES: readonly string[] = Object.freeze([]);
/** parseIpInto's output, reused: a worker is one thread and allowsIp does not re-enter */
const ipScratch = new Uint32Array(4);

/**
 * Consumers decoded per worker and table. Bounded so that a worker serving all of 100,000 consumers does not keep
 * them all as JS strings; beyond it the oldest decoded entry goes (and is decoded again when it comes back).
 */
export const DECODED_CACHE_SIZE = 16_384;

/**
 * A worker's read-only view of one table. Lookups by key digest, id and JWT mapping allocate nothing; the strings of
 * a consumer are decoded on first use and kept (so ctx.scopes and friends are the same array on every request).
 */
export class ConsumerTable {
  readonly sab: SharedArrayBuffer;
  readonly generation: number;
  readonly count: number;
  readonly #i32: Int32Array;
  readonly #u8: Uint8Array;
  readonly #u16: Uint16Array;
  readonly #keySlots: number;
  readonly #keyMask: number;
  readonly #keyEntries: number;
  readonly #idSlots: number;
  readonly #idMask: number;
  readonly #jwtSlots: number;
  readonly #jwtMask: number;
  readonly #jwtEntries: number;
  readonly #records: number;
  readonly #names: number;
  readonly #nameCount: number;
  readonly #lists: number;
  #decoded = new Map<number, Decoded>();
  #nameStrings: (string | null)[] | null = null;
  #nameIds: Map<string, number> | null = null;

  constructor(sab: SharedArrayBuffer) {
    const i32 = new Int32Array(sab);
    if (sab.byteLength < HEADER_WORDS * 4 || i32[H_MAGIC] !== MAGIC || i32[H_LAYOUT] !== LAYOUT) throw new Error('not a consumer table');
    this.sab = sab;
    this.#i32 = i32;
    this.#u8 = new Uint8Array(sab);
    this.#u16 = new Uint16Array(sab);
    this.generation = Atomics.load(i32, H_GENERATION);
    this.count = i32[H_COUNT];
    this.#keySlots = i32[H_OFF_KEY_SLOTS] >> 2;
    this.#keyMask = i32[H_KEY_SLOTS] - 1;
    this.#keyEntries = i32[H_OFF_KEY_ENTRIES];
    this.#idSlots = i32[H_OFF_ID_SLOTS] >> 2;
    this.#idMask = i32[H_ID_SLOTS] - 1;
    this.#jwtSlots = i32[H_OFF_JWT_SLOTS] >> 2;
    this.#jwtMask = i32[H_JWT_SLOTS] - 1;
    this.#jwtEntries = i32[H_OFF_JWT_ENTRIES] >> 2;
    this.#records = i32[H_OFF_RECORDS] >> 2;
    this.#names = i32[H_OFF_NAMES] >> 2;
    this.#nameCount = i32[H_NAME_COUNT];
    this.#lists = i32[H_OFF_LISTS] >> 2;
  }

  get keyCount(): number {
    return this.#i32[H_KEY_COUNT];
  }

  get bytes(): number {
    return this.#i32[H_TOTAL_BYTES];
  }

  /**
   * Consumer index for a SHA-256 key digest, or -1. The digest comparison is constant-time (an OR of XORs over all
   * 32 bytes, no early exit), so response timing does not tell how much of a stored digest a guess matched.
   */
  byKeyDigest(d: Uint8Array): number {
    if (d.length !== DIGEST_BYTES) return -1;
    const i32 = this.#i32;
    const u8 = this.#u8;
    const mask = this.#keyMask;
    for (let slot = digestSlot(d) & mask; ; slot = (slot + 1) & mask) {
      const v = i32[this.#keySlots + slot];
      if (v === EMPTY) return -1;
      const at = this.#keyEntries + (v - 1) * KEY_ENTRY_BYTES;
      let diff = 0;
      for (let i = 0; i < DIGEST_BYTES; i++) diff |= u8[at + i] ^ d[i];
      if (diff === 0) return i32[(at + DIGEST_BYTES) >> 2];
    }
  }

  byId(id: string): number {
    const i32 = this.#i32;
    const h = fnv1a(id) | 0;
    const mask = this.#idMask;
    for (let slot = h & mask; ; slot = (slot + 1) & mask) {
      const v = i32[this.#idSlots + slot];
      if (v === EMPTY) return -1;
      const rec = this.#records + (v - 1) * RECORD_WORDS;
      if (i32[rec + R_ID_HASH] === h && charsEqual(this.#u16, i32[rec + R_ID_OFF], i32[rec + R_ID_LEN], id)) return v - 1;
    }
  }

  byJwt(issuer: string, subject: string): number {
    const i32 = this.#i32;
    const h = jwtHash(issuer, subject) | 0;
    const mask = this.#jwtMask;
    for (let slot = h & mask; ; slot = (slot + 1) & mask) {
      const v = i32[this.#jwtSlots + slot];
      if (v === EMPTY) return -1;
      const e = this.#jwtEntries + (v - 1) * JWT_ENTRY_WORDS;
      if (i32[e + J_HASH] !== h) continue;
      const n = this.#names + i32[e + J_ISSUER] * 2;
      if (charsEqual(this.#u16, i32[n], i32[n + 1], issuer) && charsEqual(this.#u16, i32[e + J_SUB_OFF], i32[e + J_SUB_LEN], subject)) {
        return i32[e + J_CONSUMER];
      }
    }
  }

  #decode(index: number): Decoded {
    let d = this.#decoded.get(index);
    if (d === undefined) {
      const i32 = this.#i32;
      const rec = this.#records + index * RECORD_WORDS;
      const plan = i32[rec + R_PLAN];
      d = {
        id: decodeChars(this.#u16, i32[rec + R_ID_OFF], i32[rec + R_ID_LEN]),
        plan: plan === NONE ? null : this.name(plan),
        scopes: this.#nameList(i32[rec + R_SCOPES]),
        roles: this.#nameList(i32[rec + R_ROLES]),
      };
      if (this.#decoded.size >= DECODED_CACHE_SIZE) this.#decoded.delete(this.#decoded.keys().next().value!);
      this.#decoded.set(index, d);
    }
    return d;
  }

  #nameList(at: number): readonly string[] {
    if (at === 0) return NO_NAMES;
    const i32 = this.#i32;
    const base = this.#lists + at;
    const out: string[] = [];
    for (let i = 1; i <= i32[base]; i++) out.push(this.name(i32[base + i]));
    return Object.freeze(out);
  }

  name(nameId: number): string {
    const cache = (this.#nameStrings ??= new Array<string | null>(this.#nameCount).fill(null));
    let s = cache[nameId];
    if (s === null) {
      const n = this.#names + nameId * 2;
      s = cache[nameId] = decodeChars(this.#u16, this.#i32[n], this.#i32[n + 1]);
    }
    return s;
  }

  /** Interned id of a name (API, environment...), or -1 when no consumer uses it. */
  nameId(s: string): number {
    let map = this.#nameIds;
    if (map === null) {
      map = this.#nameIds = new Map();
      for (let n = 0; n < this.#nameCount; n++) map.set(this.name(n), n);
    }
    return map.get(s) ?? -1;
  }

  /** id, plan, scopes and roles of a record in one lookup (the same object every time) */
  record(index: number): Decoded {
    return this.#decode(index);
  }
  id(index: number): string {
    return this.#decode(index).id;
  }
  plan(index: number): string | null {
    return this.#decode(index).plan;
  }
  scopes(index: number): readonly string[] {
    return this.#decode(index).scopes;
  }
  roles(index: number): readonly string[] {
    return this.#decode(index).roles;
  }

  subscribed(index: number, api: string, environment?: string): boolean {
    const i32 = this.#i32;
    const at = i32[this.#records + index * RECORD_WORDS + R_SUBS];
    if (at === 0) return false;
    const apiId = this.nameId(api);
    const anyApi = this.nameId('*');
    const envId = environment === undefined ? NONE : this.nameId(environment);
    const base = this.#lists + at;
    const n = i32[base];
    for (let i = 0; i < n; i++) {
      const a = i32[base + 1 + i * 2];
      const e = i32[base + 2 + i * 2];
      if (a !== apiId && a !== anyApi) continue;
      // A subscription without an environment covers all of them; a route without one accepts any subscription.
      if (e === NONE || environment === undefined || e === envId) return true;
    }
    return false;
  }

  /** True when the consumer has no allowlist, or `ip` is inside one of its blocks. */
  allowsIp(index: number, ip: string): boolean {
    const i32 = this.#i32;
    const at = i32[this.#records + index * RECORD_WORDS + R_IPS];
    if (at === 0) return true;
    const family = parseIpInto(ip, ipScratch);
    if (family === IP_INVALID) return false;
    const v6 = family === IP_V6;
    const words = v6 ? 4 : 1;
    const base = this.#lists + at;
    const n = i32[base];
    for (let b = 0; b < n; b++) {
      const o = base + 1 + b * CIDR_WORDS;
      if ((i32[o] === 1) !== v6) continue;
      let bits = i32[o + 1];
      let inside = true;
      for (let w = 0; w < words && bits > 0; w++) {
        const take = bits < 32 ? bits : 32;
        const mask = take === 32 ? 0xffffffff : ~(0xffffffff >>> take) >>> 0;
        if (((i32[o + 2 + w] & mask) >>> 0) !== ((ipScratch[w] & mask) >>> 0)) {
          inside = false;
          break;
        }
        bits -= take;
      }
      if (inside) return true;
    }
    return false;
  }
}

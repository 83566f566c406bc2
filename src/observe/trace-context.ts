import { performance } from 'node:perf_hooks';
import { randomFillSync } from 'node:crypto';

/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): parsing `traceparent` and making ids.
 *
 *   traceparent: 00-<trace-id 32 hex>-<parent-id 16 hex>-<trace-flags 2 hex>
 *
 * A trace that starts here needs three ids: the trace id, the gateway's SERVER span and its CLIENT span (the
 * parent the upstream is told of). They come as records of one string made for 128 requests at a time, each record
 * already the upstream's traceparent value for an unsampled trace followed by the SERVER span id:
 *
 *   00-<trace id>-<client span id>-00 <server span id>      (TRACE_RECORD characters)
 *
 * so the common case, a new trace that is not sampled, sends a slice of that string upstream as it is: no hex
 * encoding, no concatenation and no flattening per request (native-bench/instructions.sh, tracing row).
 *
 * The spec asks for random or pseudo-random ids, and what it needs of them is uniqueness
 * (https://www.w3.org/TR/trace-context-2/#randomness-of-trace-id), as OpenTelemetry's own generators do with a
 * plain PRNG: each refill takes a fresh 128-bit seed from the system's CSPRNG and expands it with xoshiro128**
 * (https://prng.di.unimi.it/). So ids stay unpredictable from one pool to the next, and a request does not pay for
 * 32 bytes of CSPRNG output. No id is all zero (an all-zero id is invalid).
 */
export const TRACE_RECORD = 72;
/** where a record's parts start */
export const REC_TRACE = 3;
export const REC_CLIENT = 36;
/** the traceparent value of an unsampled trace: [0, REC_VALUE_END) */
export const REC_VALUE_END = 55;
/** (one character between, so that a record and every span id start at an even offset) */
export const REC_SERVER = 56;

const RECORDS = 128;
const BYTES = Buffer.alloc(TRACE_RECORD * RECORDS);
for (let r = 0; r < RECORDS; r++) {
  const at = r * TRACE_RECORD;
  BYTES.write('00-', at, 'latin1');
  BYTES[at + REC_CLIENT - 1] = 45; // '-'
  BYTES.write('-00 ', at + REC_CLIENT + 16, 'latin1');
}
// The hex digits go in as 32-bit stores through a DataView, two table entries each: counted with callgrind, 380
// instructions a record against 1,560-1,980 for byte stores into the Buffer or a Uint8Array of it with the words kept
// in a Uint32Array; on today's host 675 a record against 726 for 16-bit stores (native-bench/instructions.sh tracing
// row, refill's own count): the PRNG and the loop cost more than the stores.
const VIEW = new DataView(BYTES.buffer, BYTES.byteOffset, BYTES.byteLength);
/** a byte's two lower-case hex digits, as a little-endian 16-bit value */
const HEX2 = new Uint16Array(256);
for (let b = 0; b < 256; b++) {
  const d = b.toString(16).padStart(2, '0');
  HEX2[b] = d.charCodeAt(0) | (d.charCodeAt(1) << 8);
}
const SEED = new Uint32Array(4);
/** where each of a record's eight random words goes: the trace id's four, the CLIENT span's two, the SERVER span's two */
const WORD_AT = Uint8Array.of(REC_TRACE, REC_TRACE + 8, REC_TRACE + 16, REC_TRACE + 24, REC_CLIENT, REC_CLIENT + 8, REC_SERVER, REC_SERVER + 8);
/** BYTES as a string, remade with every refill */
let text = '';
let next = RECORDS;

/**
 * A new pool: a seed from the CSPRNG expanded with xoshiro128** (its state in locals: module variables would box
 * every 32-bit value in a heap number), each word written as hex digits into its place.
 */
function refill(): void {
  randomFillSync(SEED);
  let s0 = SEED[0] | 0, s1 = SEED[1] | 0, s2 = SEED[2] | 0, s3 = SEED[3] | 0;
  // an all-zero state would give only zeros
  if ((s0 | s1 | s2 | s3) === 0) s0 = 1;
  const view = VIEW;
  for (let r = 0; r < RECORDS; r++) {
    const base = r * TRACE_RECORD;
    let id = 0;
    for (let k = 0; k < 8; k++) {
      const m = Math.imul(s1, 5);
      const w = Math.imul((m << 7) | (m >>> 25), 9);
      const t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = (s3 << 11) | (s3 >>> 21);
      const at = base + WORD_AT[k];
      view.setUint32(at, HEX2[w >>> 24] | (HEX2[(w >>> 16) & 255] << 16), true);
      view.setUint32(at + 4, HEX2[(w >>> 8) & 255] | (HEX2[w & 255] << 16), true);
      id |= w;
      // the last word of an id: an all-zero id is invalid, so one that came out all zero ends in a 1
      if (k === 3 || k === 5 || k === 7) {
        if (id === 0) view.setUint8(at + 7, 49);
        id = 0;
      }
    }
  }
  text = BYTES.toString('latin1');
  next = 0;
}

/**
 * A new trace's ids: the offset of its record in traceRecords() (read that right after: the next refill replaces
 * it). The trace id is [REC_TRACE, +32), the CLIENT span [REC_CLIENT, +16), the SERVER span [REC_SERVER, +16).
 */
export function takeTraceRecord(): number {
  if (next >= RECORDS) refill();
  return next++ * TRACE_RECORD;
}

/** The string the last takeTraceRecord() offset points into. */
export function traceRecords(): string {
  return text;
}

/** What parseTraceparent found. */
export class TraceParent {
  traceId = '';
  parentId = '';
  flags = 0;
}

function isLowerHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102);
}

function hexRun(s: string, from: number, to: number): boolean {
  let nonZero = false;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (!isLowerHex(c)) return false;
    if (c !== 48) nonZero = true;
  }
  return nonZero;
}

/**
 * Parses a traceparent value into `out`; false when it must be ignored (then a new trace starts). Follows the
 * spec's rules: lower-case hex only, version ff invalid, version 00 exactly 55 characters, a future version may be
 * longer but must go on with "-", trace-id and parent-id not all zeros.
 */
export function parseTraceparent(value: string, out: TraceParent): boolean {
  const v = value.trim();
  if (v.length < 55) return false;
  if (!isLowerHex(v.charCodeAt(0)) || !isLowerHex(v.charCodeAt(1))) return false;
  const version = v.slice(0, 2);
  if (version === 'ff') return false;
  if (version === '00' ? v.length !== 55 : v.length > 55 && v.charCodeAt(55) !== 45) return false;
  if (v.charCodeAt(2) !== 45 || v.charCodeAt(35) !== 45 || v.charCodeAt(52) !== 45) return false;
  if (!hexRun(v, 3, 35) || !hexRun(v, 36, 52)) return false;
  if (!isLowerHex(v.charCodeAt(53)) || !isLowerHex(v.charCodeAt(54))) return false;
  out.traceId = v.slice(3, 35);
  out.parentId = v.slice(36, 52);
  out.flags = parseInt(v.slice(53, 55), 16);
  return true;
}

export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}

/** Unix time in nanoseconds, as the decimal string OTLP/JSON uses, from a performance.now() timestamp. */
export function unixNanos(perfMs: number): string {
  const ms = performance.timeOrigin + perfMs;
  let whole = Math.floor(ms);
  let frac = Math.round((ms - whole) * 1e6);
  if (frac >= 1e6) {
    whole += 1;
    frac -= 1e6;
  }
  return String(whole) + String(frac).padStart(6, '0');
}

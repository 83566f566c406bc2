import { performance } from 'node:perf_hooks';
import { randomFillSync } from 'node:crypto';

/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): parsing `traceparent` and making ids.
 *
 *   traceparent: 00-<trace-id 32 hex>-<parent-id 16 hex>-<trace-flags 2 hex>
 *
 * Ids come from a pool of 4 KiB (128 requests' worth), turned into hex once per refill: an id is a slice of that
 * one flat string (no copy, no call into C++). The spec asks for random or pseudo-random ids, and what it needs
 * of them is uniqueness (https://www.w3.org/TR/trace-context-2/#randomness-of-trace-id), as OpenTelemetry's own
 * generators do with a plain PRNG: each refill takes a fresh 128-bit seed from the system's CSPRNG and expands it
 * with xoshiro128** (https://prng.di.unimi.it/). So ids stay unpredictable from one pool to the next, and a
 * request no longer pays for 32 bytes of CSPRNG output: randomFillSync of the whole 4 KiB cost 0.33 µs a request
 * in the integrated path (native-bench/profile.sh, tracing row), two thirds of the policy.
 */
const POOL = Buffer.allocUnsafe(4096);
const WORDS = new Uint32Array(POOL.buffer, POOL.byteOffset, POOL.length / 4);
const SEED = new Uint32Array(4);
/** POOL as lower-case hex (two characters per byte), remade with every refill */
let hex = '';
let poolPos = POOL.length;

/** xoshiro128** state, seeded afresh from the CSPRNG at each refill */
let s0 = 0;
let s1 = 0;
let s2 = 0;
let s3 = 0;

/** The next 32-bit output of xoshiro128**. */
function next(): number {
  const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
  const t = s1 << 9;
  s2 ^= s0;
  s3 ^= s1;
  s1 ^= s2;
  s0 ^= s3;
  s2 ^= t;
  s3 = rotl(s3, 11);
  return result;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

function refill(): void {
  randomFillSync(SEED);
  s0 = SEED[0];
  s1 = SEED[1];
  s2 = SEED[2];
  s3 = SEED[3];
  // an all-zero state would give only zeros
  if ((s0 | s1 | s2 | s3) === 0) s0 = 1;
  for (let i = 0; i < WORDS.length; i += 2) {
    const lo = next();
    const hi = next();
    // an all-zero id is invalid: ids are whole 8-byte groups, so a group that came out all zero gets a 1
    WORDS[i] = lo;
    WORDS[i + 1] = (lo | hi) === 0 ? 1 : hi;
  }
  hex = POOL.toString('hex');
  poolPos = 0;
}

/** `bytes` (a multiple of 8) random bytes as lower-case hex: a slice of the pool's hex. */
function take(bytes: number): string {
  if (poolPos + bytes > POOL.length) refill();
  const at = poolPos;
  poolPos += bytes;
  return hex.slice(at * 2, (at + bytes) * 2);
}

/** `bytes` random bytes (8 or 16) as lower-case hex, never all zero (an all-zero id is invalid). */
export function randomHex(bytes: number): string {
  return take(bytes);
}

/**
 * A trace id (16 bytes) and two span ids (8 bytes each) as one hex string of 64 characters: [0, 32) the trace id,
 * [32, 48) and [48, 64) the span ids. Slices of it are views, not copies. No id is all zero.
 */
export function randomIds(): string {
  // the trace id is 16 bytes: all zero only if both of its 8-byte halves were, and refill() fixed each half
  return take(32);
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

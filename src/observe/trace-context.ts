import { performance } from 'node:perf_hooks';
import { randomFillSync } from 'node:crypto';

/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): parsing `traceparent` and making ids.
 *
 *   traceparent: 00-<trace-id 32 hex>-<parent-id 16 hex>-<trace-flags 2 hex>
 *
 * Ids come from a pool of random bytes refilled 4 KiB at a time (one randomFillSync per 128 requests instead of a
 * crypto call and a Buffer per id), turned into hex once per refill: an id is a slice of that one flat string (no
 * copy, no call into C++). Reading each request's ids out of the buffer as hex cost 0.28 µs a request in the
 * integrated path (native-bench/profile.sh, tracing row), more than the rest of the policy.
 */
const POOL = Buffer.allocUnsafe(4096);
/** POOL as lower-case hex (two characters per byte), remade with every refill */
let hex = '';
let poolPos = POOL.length;

function refill(): void {
  randomFillSync(POOL);
  // an all-zero id is invalid: in every 8-byte group that came out all zero the last byte becomes 1 (ids are taken
  // in whole groups: 8, 16 or 32 bytes from a multiple of 8)
  for (let i = 0; i < POOL.length; i += 8) {
    let any = 0;
    for (let j = i; j < i + 8; j++) any |= POOL[j];
    if (any === 0) POOL[i + 7] = 1;
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

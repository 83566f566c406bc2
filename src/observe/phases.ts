import { performance } from 'node:perf_hooks';
import type { RequestTiming } from '../pipeline/policy.js';

/**
 * Where the time of one request went, from its timestamps (performance.now() ms):
 *
 *   start ── route ── routed ── policy hooks… ── upstreamStart ── connect ── connected ── upstream ── upstreamHeaders ── transfer ── end
 *
 * route: header scan, routing and building the upstream head; one entry per access/rewrite hook (a PENDING hook
 * until it resumed); connect: pool queueing and TCP connect (a reused keep-alive connection makes it ~0);
 * upstream: request sent to response head received (time to first byte); transfer: response body to the client.
 * Hook entries exist only on routes where a policy asked for hook timing.
 */
export function forEachPhase(t: RequestTiming, end: number, fn: (name: string, ms: number) => void): void {
  if (t.start === 0) return;
  fn('route', t.routed - t.start);
  const hooks = t.hooks;
  if (hooks !== null) {
    const names = t.hookNames!;
    let prev = t.routed;
    for (let i = 0; i < hooks.length && hooks[i] > 0; i++) {
      fn(names[i], hooks[i] - prev);
      prev = hooks[i];
    }
  }
  if (t.upstreamStart > 0 && t.connected > 0) {
    fn('connect', t.connected - t.upstreamStart);
    if (t.upstreamHeaders > 0) {
      fn('upstream', t.upstreamHeaders - t.connected);
      if (end > 0) fn('transfer', end - t.upstreamHeaders);
    }
  }
}

/** ms rounded to µs, for logs and headers */
export function ms3(ms: number): number {
  return ms > 0 ? Math.round(ms * 1000) / 1000 : 0;
}

// ".001" … ".999" with trailing zeros dropped ("" for 0): the decimals of msText by the µs count
const DECIMALS: readonly string[] = Array.from({ length: 1000 }, (_, f) => (f === 0 ? '' : ('.' + String(f).padStart(3, '0')).replace(/0+$/, '')));

// "0", "0.001" … "0.999": most phases of a request take less than a millisecond, and then the text is one lookup
export const SUB_MS: readonly string[] = DECIMALS.map((d) => '0' + d);

/**
 * String(ms3(ms)) without formatting a double: whole milliseconds as an integer (V8 keeps a cache of small integer
 * strings) and the µs from a table. A line has about ten of these, and double-to-text costs ~0.1-0.3 µs each.
 */
export function msText(ms: number): string {
  if (!(ms > 0)) return '0';
  const us = Math.round(ms * 1000);
  if (us < 1000) return SUB_MS[us];
  if (us >= 1e15) return String(us / 1000);
  const whole = Math.floor(us / 1000);
  return whole + DECIMALS[us - whole * 1000];
}

/**
 * The Server-Timing value (RFC: W3C Server Timing, `name;dur=ms` entries) for what is known when the response head
 * is written: route, each hook, connect and upstream (the body transfer has not happened yet).
 */
export function serverTimingValue(t: RequestTiming): string {
  let out = '';
  forEachPhase(t, 0, (name, ms) => {
    out += (out ? ', ' : '') + name + ';dur=' + msText(ms);
  });
  return out;
}

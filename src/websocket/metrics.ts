import type { PromWriter } from '../observe/prometheus.js';
import type { Plan } from '../config/plan.js';

/**
 * WebSocket counters of one route, in a SharedArrayBuffer that every worker adds to with Atomics (kept across
 * reloads by route name through the SharedRegistry). 64-bit cells: byte counts pass 2^32 quickly. Workers do not
 * touch them per message: a connection sums its own traffic and adds the difference once a second and when it
 * closes, so a scrape may be up to a second behind.
 *
 *   cell (BigInt64):
 *   +------+----------+---------+---------+----------+----------+-----------+----------------------------+
 *   | OPEN | ACCEPTED | MSG_C2U | MSG_U2C | BYTES_C2U| BYTES_U2C| HANDSHAKE | CLOSES [CLOSE_CODES.length+1] |
 *   +------+----------+---------+---------+----------+----------+-----------+----------------------------+
 *   OPEN: connections open now (gauge); ACCEPTED: upgrades completed; HANDSHAKE: upgrades that failed upstream
 *   C2U: client to upstream, U2C: upstream to client; CLOSES: by close code, the last slot for any other code
 */
export const M_OPEN = 0;
export const M_ACCEPTED = 1;
export const M_MSG_C2U = 2;
export const M_MSG_U2C = 3;
export const M_BYTES_C2U = 4;
export const M_BYTES_U2C = 5;
export const M_HANDSHAKE_FAILED = 6;
const M_CLOSES = 7;
/** codes counted exactly (RFC 6455 section 7.4.1 and 1012-1014 from the IANA registry); others go to "other" */
export const CLOSE_CODES = [1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014] as const;
const CLOSE_OTHER = CLOSE_CODES.length;
export const METRICS_CELLS = M_CLOSES + CLOSE_CODES.length + 1;
export const METRICS_BYTES = METRICS_CELLS * BigInt64Array.BYTES_PER_ELEMENT;

export function closeCell(code: number): number {
  const i = (CLOSE_CODES as readonly number[]).indexOf(code);
  return M_CLOSES + (i < 0 ? CLOSE_OTHER : i);
}

/** The websocket families of a scrape, from the current plan's WebSocket routes. */
export function renderWebSocketMetrics(plan: Plan, out: PromWriter): void {
  const routes = plan.routes.filter((r) => r.websocket !== null);
  if (routes.length === 0) return;
  const read = (sab: SharedArrayBuffer, i: number) => Number(Atomics.load(new BigInt64Array(sab), i));
  const label = (r: (typeof routes)[number]) => out.labels('route', r.name);
  out.help('nanogate_websocket_connections_open', 'gauge', 'WebSocket connections open now, by route');
  for (const r of routes) out.sample('nanogate_websocket_connections_open', label(r), read(r.websocket!.metrics, M_OPEN));
  out.help('nanogate_websocket_connections_total', 'counter', 'WebSocket upgrades completed (client and upstream connected), by route');
  for (const r of routes) out.sample('nanogate_websocket_connections_total', label(r), read(r.websocket!.metrics, M_ACCEPTED));
  out.help('nanogate_websocket_upstream_failures_total', 'counter', 'WebSocket upgrades the upstream refused or did not answer (the client got a 502 or 504), by route');
  for (const r of routes) out.sample('nanogate_websocket_upstream_failures_total', label(r), read(r.websocket!.metrics, M_HANDSHAKE_FAILED));
  out.help('nanogate_websocket_messages_total', 'counter', 'WebSocket messages relayed, by route and direction');
  for (const r of routes) {
    out.sample('nanogate_websocket_messages_total', out.labels('route', r.name, 'direction', 'client_to_upstream'), read(r.websocket!.metrics, M_MSG_C2U));
    out.sample('nanogate_websocket_messages_total', out.labels('route', r.name, 'direction', 'upstream_to_client'), read(r.websocket!.metrics, M_MSG_U2C));
  }
  out.help('nanogate_websocket_bytes_total', 'counter', 'WebSocket message payload bytes relayed, by route and direction');
  for (const r of routes) {
    out.sample('nanogate_websocket_bytes_total', out.labels('route', r.name, 'direction', 'client_to_upstream'), read(r.websocket!.metrics, M_BYTES_C2U));
    out.sample('nanogate_websocket_bytes_total', out.labels('route', r.name, 'direction', 'upstream_to_client'), read(r.websocket!.metrics, M_BYTES_U2C));
  }
  out.help('nanogate_websocket_closes_total', 'counter', 'WebSocket connections closed, by route and close code (the code the connection ended with; "other" for codes not listed)');
  for (const r of routes) {
    const sab = r.websocket!.metrics;
    for (let i = 0; i <= CLOSE_CODES.length; i++) {
      const v = read(sab, M_CLOSES + i);
      if (v > 0) out.sample('nanogate_websocket_closes_total', out.labels('route', r.name, 'code', i < CLOSE_CODES.length ? String(CLOSE_CODES[i]) : 'other'), v);
    }
  }
}

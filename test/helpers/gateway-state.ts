import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Waiting on what the gateway reports rather than on the clock: a test that sleeps "long enough" for the gateway to
 * get somewhere fails on a loaded machine, and wastes time on an idle one. These poll the admin API (live worker
 * state, shared-memory counters) until a condition holds, with a generous overall timeout that only a real failure
 * reaches.
 */

/** Polls `check` every `stepMs` until it returns true; throws, naming `what`, after `timeoutMs`. */
export async function until(what: string | (() => string), check: () => boolean | Promise<boolean>, timeoutMs = 10_000, stepMs = 10): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await sleep(stepMs);
  }
}

/** Requests assigned to or waiting for the nodes of `upstream`, summed over workers (GET /upstreams/:name, asked live). */
export async function upstreamInFlight(adminUrl: string, upstream: string, token?: string): Promise<number> {
  const res = await fetch(`${adminUrl}/upstreams/${upstream}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  if (res.status !== 200) throw new Error(`GET /upstreams/${upstream}: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { nodes: { inFlight: number }[] };
  return body.nodes.reduce((n, node) => n + node.inFlight, 0);
}

/** Waits until `upstream` has exactly `n` requests in flight in the gateway. */
export function untilInFlight(adminUrl: string, upstream: string, n: number, token?: string): Promise<void> {
  let last = -1;
  return until(
    () => `${n} requests in flight to "${upstream}" (last seen ${last})`,
    async () => (last = await upstreamInFlight(adminUrl, upstream, token)) === n,
  );
}

/**
 * The value of one sample in the Prometheus text of GET /metrics: `series` is the name with its labels exactly as
 * the gateway writes them, e.g. `nanogate_requests_total{route="a",code="200",class="2xx",plan=""}`. 0 when absent.
 */
export async function metric(adminUrl: string, series: string, token?: string): Promise<number> {
  const res = await fetch(`${adminUrl}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await res.text();
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  }
  return 0;
}

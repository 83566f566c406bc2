import WebSocket from 'ws';
import { encodeHistogram, newHistogram } from './hist.js';
import { emptyErrors, type LoadJob, type LoadResult } from './load-types.js';

/**
 * WebSocket message load (a scenario with `websocket`): `connections` WebSockets to an echo endpoint, each message
 * timed from its send (max) or its scheduled send (fixed) to its echo. An echo server answers a connection's messages
 * in order, so each connection keeps a FIFO of timestamps and the n-th echo closes the n-th entry.
 *
 *   fixed: `rate` messages per second over all connections, open loop (message i is due at t0 + i / rate and sent on
 *          connection i mod C whatever happened before; the wait of a late one is part of its latency)
 *   max:   each connection keeps `window` messages in flight and sends the next one on every echo (closed loop):
 *          messages/s is the throughput
 *
 * A result's "responses" are echoes, rps is echoes per second; through the gateway each echo is two relayed
 * messages (client -> upstream and back). Messages unanswered at the end of the phase count as unfinished.
 */
const hr = (): number => Number(process.hrtime.bigint());
const toUs = (ns: number): number => (ns < 1000 ? 1 : Math.round(ns / 1000));

interface Peer {
  ws: WebSocket;
  /** send times (ns) of the messages in flight, oldest first */
  sentAt: number[];
  head: number;
}

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

export async function runWs(job: LoadJob, progress: (responses: number, elapsedMs: number) => void): Promise<LoadResult> {
  const ws = job.websocket!;
  const url = `ws://${job.host}:${job.port}${job.paths[0]}`;
  const payload = Buffer.alloc(ws.messageBytes, 0x61);
  const latency = newHistogram();
  const errors = emptyErrors();
  let responses = 0;
  let sent = 0;
  let bytesIn = 0;
  let mismatch = 0;
  let running = true;
  const peers: Peer[] = [];
  const opened = await Promise.allSettled(Array.from({ length: job.connections }, () => open(url)));
  for (const o of opened) {
    if (o.status === 'rejected') errors.connect++;
    else peers.push({ ws: o.value, sentAt: [], head: 0 });
  }
  const cpu0 = process.cpuUsage();
  const t0 = hr();
  const max = job.kind === 'max';
  const send = (p: Peer, at: number) => {
    p.sentAt.push(at);
    sent++;
    p.ws.send(payload, { binary: true });
  };
  for (const p of peers) {
    p.ws.on('message', (data: Buffer) => {
      const at = p.sentAt[p.head++];
      if (p.head > 1024) {
        p.sentAt.splice(0, p.head);
        p.head = 0;
      }
      if (!running || at === undefined) return;
      responses++;
      bytesIn += data.length;
      if (data.length !== ws.messageBytes) mismatch++;
      latency.recordValue(toUs(hr() - at));
      if (max) send(p, hr());
    });
    p.ws.on('close', () => {
      if (running) errors.reset += p.sentAt.length - p.head;
      p.sentAt.length = 0;
      p.head = 0;
    });
    p.ws.on('error', () => {});
  }
  const timer = setInterval(() => progress(responses, (hr() - t0) / 1e6), 250);
  let scheduled = 0;
  if (max) {
    for (const p of peers) for (let i = 0; i < ws.window; i++) send(p, hr());
    await new Promise((r) => setTimeout(r, job.durationMs));
  } else {
    // one tick per millisecond: every message that became due is stamped with its due time, not the tick's
    const interval = 1e9 / job.rate;
    const total = Math.floor((job.rate * job.durationMs) / 1000);
    await new Promise<void>((resolve) => {
      const tick = () => {
        const now = hr();
        while (scheduled < total && t0 + scheduled * interval <= now) {
          const p = peers[scheduled % peers.length];
          if (p.ws.readyState === WebSocket.OPEN) send(p, t0 + scheduled * interval);
          scheduled++;
        }
        if (scheduled >= total || now - t0 >= job.durationMs * 1e6) return resolve();
        setTimeout(tick, 1);
      };
      tick();
    });
    // the last messages get their echo (bounded by the request timeout)
    const until = hr() + job.timeoutMs * 1e6;
    while (responses < sent && hr() < until) await new Promise((r) => setTimeout(r, 5));
  }
  const elapsedMs = (hr() - t0) / 1e6;
  running = false;
  clearInterval(timer);
  let inFlight = 0;
  for (const p of peers) inFlight += p.sentAt.length - p.head;
  if (!max) errors.unfinished += inFlight + (scheduled - sent);
  errors.mismatch += mismatch;
  const cpu = process.cpuUsage(cpu0);
  for (const p of peers) p.ws.terminate();
  return {
    kind: job.kind,
    responses,
    sent,
    scheduled: max ? sent : scheduled,
    elapsedMs,
    rps: (responses * 1000) / job.durationMs,
    statuses: {},
    non2xx: 0,
    errors,
    latency: encodeHistogram(latency),
    service: null,
    sendLag: null,
    bytesIn,
    reconnects: -1,
    generatorCpuPct: Math.round(((cpu.user + cpu.system) / 1000 / elapsedMs) * 100),
  };
}

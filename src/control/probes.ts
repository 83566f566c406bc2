import type { IncomingMessage, ServerResponse } from 'node:http';
import { contentTypeOf, negotiateFormat } from '../observe/prometheus.js';
import type { Gateway } from './gateway.js';

/**
 * The answers the admin API and the status listener share, so that a probe or a scrape reads the same on either
 * port: /health (the process is up), /ready (every worker listens, and the node is not draining), /metrics
 * (Prometheus text, or OpenMetrics when the Accept header asks for it).
 */
export function health(res: ServerResponse): void {
  json(res, 200, { status: 'ok' });
}

export function ready(g: Gateway, res: ServerResponse): void {
  json(res, g.ready ? 200 : 503, { ready: g.ready, version: g.plan?.version });
}

/** Read from shared memory on the control-plane thread (src/observe/metrics-hub.ts): the workers are not asked. */
export function metrics(g: Gateway, req: IncomingMessage, res: ServerResponse): void {
  const format = negotiateFormat(req.headers.accept);
  const text = g.renderMetrics(format);
  res.writeHead(200, { 'content-type': contentTypeOf(format), 'content-length': Buffer.byteLength(text), vary: 'accept' });
  res.end(req.method === 'HEAD' ? undefined : text);
}

export function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

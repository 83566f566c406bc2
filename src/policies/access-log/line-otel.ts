import { performance } from 'node:perf_hooks';
import type { PolicyContext } from '../../pipeline/policy.js';
import { msText } from '../../observe/phases.js';
import { isoTimeAt } from '../../observe/log-format.js';
import { hostOnly } from '../../observe/semconv.js';
import { jsonString, tail, type LineOptions, type TailKeys } from './line.js';
import { flat } from '../../shared/flat-string.js';

/**
 * The access-log line of `format: otel` (the default), built like line.ts builds the legacy one: JSON text written
 * straight into a string. Field names follow the OpenTelemetry HTTP semantic conventions where they name the fact
 * (https://opentelemetry.io/docs/specs/semconv/http/http-spans/), `nanogate.` where they do not, so a key means the
 * same in a log line and in a span attribute; `trace_id`/`span_id` are the OpenTelemetry log data model's.
 */
export interface OtelLineOptions extends LineOptions {
  /** `"http.request.header.<name>"` (quoted, with its colon) per entry of `headers`, built once */
  readonly headerKeys: readonly string[];
}

const q = jsonString;

/** `,"nanogate.route":"<name>"` and, when the route has a path template, `,"http.route":"<template>"` */
export function otelRoutePart(routeName: string, template: string | null): string {
  return flat(',"nanogate.route":' + q(routeName) + (template === null ? '' : ',"http.route":' + q(template)));
}

export function otelHeaderKeys(headers: readonly string[]): string[] {
  return headers.map((h) => flat(',' + q(`http.request.header.${h}`) + ':'));
}

const OTEL_KEYS: TailKeys = {
  query: ',"url.query":',
  plan: ',"nanogate.plan":',
  version: ',"nanogate.traffic.version":',
  error: ',"error.type":',
  upstreamError: ',"nanogate.upstream.error":',
  phases: ',"nanogate.phases_ms":',
  rateLimit: ',"nanogate.rate_limit":',
  cache: ',"nanogate.cache.status":',
  graphql: ',"graphql.operation":',
  traceId: ',"trace_id":',
  websocket: ',"nanogate.websocket":',
  spanId: ',"span_id":',
};

// `,"http.response.status_code":<status>` per status, made on first use
const STATUS_PARTS: string[] = [];
function statusPart(status: number): string {
  if (status < 100 || status > 999 || (status | 0) !== status) return ',"http.response.status_code":' + status;
  return (STATUS_PARTS[status] ??= flat(',"http.response.status_code":' + status));
}

export function buildOtelLine(ctx: PolicyContext, status: number, route: string, o: OtelLineOptions): string {
  const t = ctx.timing;
  const end = t.end > 0 ? t.end : performance.now();
  const total = end - t.start;
  const upstream = t.upstreamStart > 0 ? end - t.upstreamStart : 0;
  const consumer = ctx.consumerId;
  const node = ctx.upstreamNode;
  const redact = o.redact;
  const last = o.last;
  const host = ctx.hostHeader;
  const ua = ctx.header('user-agent');
  const bytesIn = ctx.bytesIn;
  let s =
    (status >= 500 ? '{"level":"error"' : '{"level":"info"') +
    isoTimeAt(end) +
    route +
    ',"nanogate.request_id":' + q(ctx.requestId) +
    ',"http.request.method":' + last.method.of(ctx.method) +
    ',"url.path":' + last.path.of(redact.pii(ctx.path)) +
    statusPart(status) +
    (host === '' ? '' : ',"server.address":' + last.host.of(hostOnly(host))) +
    ',"client.address":' + last.client.of(ctx.clientIp) +
    (ua === undefined ? '' : ',"user_agent.original":' + last.agent.of(redact.header('user-agent', ua))) +
    ',"nanogate.consumer":' + (consumer === null ? 'null' : last.consumer.of(consumer)) +
    (bytesIn === 0 ? ',"http.request.body.size":0,"http.response.body.size":' : ',"http.request.body.size":' + bytesIn + ',"http.response.body.size":') +
    ctx.bytesOut +
    ',"duration_ms":' + msText(total) +
    ',"nanogate.gateway_duration_ms":' + msText(total - upstream) +
    ',"nanogate.upstream_duration_ms":' + msText(upstream) +
    ',"nanogate.upstream.node":' + (node === null ? 'null' : last.node.of(node));
  s += tail(ctx, end, o, OTEL_KEYS);
  // semantic conventions: one field per header, http.request.header.<name>
  const names = o.headers;
  for (let i = 0; i < names.length; i++) {
    const v = ctx.header(names[i]);
    if (v !== undefined) s += o.headerKeys[i] + q(redact.header(names[i], v));
  }
  return s + '}\n';
}

import { performance } from 'node:perf_hooks';
import type { PolicyContext } from '../../pipeline/policy.js';
import { isoTimeAt } from '../../observe/log-format.js';
import { hostOnly } from '../../observe/semconv.js';
import { MsField, jsonString, tail, type LineOptions, type TailKeys } from './line.js';
import { flat } from '../../shared/flat-string.js';
import type { Redactor } from '../../observe/redact.js';

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

/**
 * The fields from the method to the consumer, kept as one flat string for the inputs of the last line: consecutive
 * lines mostly share all seven (the same client calling the same path), and then the line takes one piece where it
 * would take fourteen, each walked again when the line is copied out (shared/flat-string.ts). The redactor is part
 * of the key: routes with other PII patterns share this cache.
 */
let runRedact: Redactor | null = null;
let runMethod = '';
let runPath = '';
let runStatus = -1;
let runHost = '';
let runClient = '';
let runAgent: string | undefined = undefined;
let runConsumer: string | null = null;
let runText = '';

function fieldRun(ctx: PolicyContext, status: number, o: OtelLineOptions): string {
  const method = ctx.method;
  const path = ctx.path;
  const host = ctx.hostHeader;
  const client = ctx.clientIp;
  const ua = ctx.header('user-agent');
  const consumer = ctx.consumerId;
  const redact = o.redact;
  if (redact === runRedact && status === runStatus && method === runMethod && path === runPath && host === runHost && client === runClient && ua === runAgent && consumer === runConsumer) {
    return runText;
  }
  runRedact = redact;
  runStatus = status;
  runMethod = method;
  runPath = path;
  runHost = host;
  runClient = client;
  runAgent = ua;
  runConsumer = consumer;
  const last = o.last;
  runText = flat(
    ',"http.request.method":' + last.method.of(method) +
      ',"url.path":' + last.path.of(redact.pii(path)) +
      statusPart(status) +
      (host === '' ? '' : ',"server.address":' + last.host.of(hostOnly(host))) +
      ',"client.address":' + last.client.of(client) +
      (ua === undefined ? '' : ',"user_agent.original":' + last.agent.of(redact.header('user-agent', ua))) +
      ',"nanogate.consumer":' + (consumer === null ? 'null' : last.consumer.of(consumer)),
  );
  return runText;
}

const DURATION = new MsField(',"duration_ms":');
const GATEWAY_DURATION = new MsField(',"nanogate.gateway_duration_ms":');
const UPSTREAM_DURATION = new MsField(',"nanogate.upstream_duration_ms":');

export function buildOtelLine(ctx: PolicyContext, status: number, route: string, o: OtelLineOptions): string {
  const t = ctx.timing;
  const end = t.end > 0 ? t.end : performance.now();
  const total = end - t.start;
  const upstream = t.upstreamStart > 0 ? end - t.upstreamStart : 0;
  const node = ctx.upstreamNode;
  const redact = o.redact;
  const last = o.last;
  const bytesIn = ctx.bytesIn;
  let s =
    (status >= 500 ? '{"level":"error"' : '{"level":"info"') +
    isoTimeAt(end) +
    route +
    ',"nanogate.request_id":' + q(ctx.requestId) +
    fieldRun(ctx, status, o) +
    (bytesIn === 0 ? ',"http.request.body.size":0,"http.response.body.size":' : ',"http.request.body.size":' + bytesIn + ',"http.response.body.size":') +
    ctx.bytesOut +
    DURATION.of(total) +
    GATEWAY_DURATION.of(total - upstream) +
    UPSTREAM_DURATION.of(upstream) +
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

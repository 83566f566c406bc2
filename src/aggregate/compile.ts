import type { ConfigIssue } from '../config/errors.js';
import type { AggregateConfig } from './schema.js';
import { parseTemplate, type TemplatePart } from './template.js';

/** An aggregate route's calls, compiled: structured-clone safe, upstreams by plan index. */
export interface PlanAggregate {
  readonly calls: readonly PlanAggregateCall[];
  /** false: any failed part fails the whole answer */
  readonly partial: boolean;
  readonly partialStatus: number;
  readonly errorsKey: string;
  /** proxy.requestIdHeader: calls carry the request's id like proxied requests */
  readonly requestIdHeader: string;
}

export interface PlanAggregateCall {
  readonly name: string;
  readonly upstream: number;
  readonly method: string;
  /** path (and literal query) template; values percent-encoded */
  readonly path: readonly TemplatePart[];
  /** query parameters added, [name, template] */
  readonly query: readonly (readonly [string, readonly TemplatePart[]])[];
  /** request headers, [lower-case name, template] */
  readonly headers: readonly (readonly [string, readonly TemplatePart[]])[];
  /** client headers passed as they are (lower-case) */
  readonly forward: readonly string[];
  readonly timeoutMs: number;
  readonly maxBodyBytes: number;
  readonly pick: readonly string[] | null;
  /** where the value goes; [] merges an object's members into the top level */
  readonly into: readonly string[];
  readonly required: boolean;
  readonly okStatuses: readonly number[];
}

/** Headers a call may not set: the gateway frames the request and names the node itself. */
const FRAMING = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'te', 'trailer', 'upgrade', 'expect']);

export function compileAggregate(
  a: AggregateConfig,
  where: string,
  paramNames: readonly string[],
  upstreams: ReadonlyMap<string, number>,
  refused: (name: string) => boolean,
  requestIdHeader: string,
  issues: ConfigIssue[],
): PlanAggregate {
  const seen = new Map<string, number>();
  const targets = new Map<string, number>();
  const calls = a.calls.map((c, i): PlanAggregateCall => {
    const at = `${where}.calls[${i}]`;
    if (seen.has(c.name)) issues.push({ path: `${at}.name`, message: `duplicate call name "${c.name}" (also calls[${seen.get(c.name)}])` });
    seen.set(c.name, i);
    const upstream = upstreams.get(c.upstream);
    if (upstream === undefined && !refused(c.upstream)) {
      issues.push({ path: `${at}.upstream`, message: `unknown upstream "${c.upstream}"`, hint: `declared: ${[...upstreams.keys()].join(', ') || 'none'}` });
    }
    const template = (text: string, path: string) => {
      const found: string[] = [];
      const parts = parseTemplate(text, paramNames, found);
      for (const message of found) issues.push({ path, message });
      return parts;
    };
    const headers = Object.entries(c.headers ?? {}).map(([name, v]) => {
      const lower = name.toLowerCase();
      if (FRAMING.has(lower)) issues.push({ path: `${at}.headers.${name}`, message: `"${name}" is set by the gateway and cannot be templated` });
      return [lower, template(v, `${at}.headers.${name}`)] as const;
    });
    const forward = c.forwardHeaders.map((h, j) => {
      const lower = h.toLowerCase();
      if (FRAMING.has(lower)) issues.push({ path: `${at}.forwardHeaders[${j}]`, message: `"${h}" is set by the gateway and cannot be forwarded` });
      return lower;
    });
    const into = c.into === '.' ? [] : (c.into ?? c.name).split('.');
    const key = into.join('.');
    if (key !== '' && targets.has(key)) issues.push({ path: `${at}.into`, message: `"${key}" is also where calls[${targets.get(key)}] goes` });
    targets.set(key, i);
    return {
      name: c.name,
      upstream: upstream ?? -1,
      method: c.method,
      path: template(c.path, `${at}.path`),
      query: Object.entries(c.query ?? {}).map(([name, v]) => [name, template(v, `${at}.query.${name}`)] as const),
      headers,
      forward,
      timeoutMs: c.timeoutMs,
      maxBodyBytes: c.maxBodyBytes,
      pick: c.pick === undefined ? null : c.pick.split('.'),
      into,
      required: c.required,
      okStatuses: [...c.statuses],
    };
  });
  if (a.errorsKey !== undefined && calls.some((c) => c.into[0] === a.errorsKey)) {
    issues.push({ path: `${where}.errorsKey`, message: `"${a.errorsKey}" is also where a call's answer goes`, hint: 'rename the call, set its into, or set errorsKey' });
  }
  return { calls, partial: a.onPartialFailure === 'partial', partialStatus: a.partialStatus, errorsKey: a.errorsKey, requestIdHeader };
}

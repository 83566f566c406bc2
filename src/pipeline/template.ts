import type { PolicyContext } from './policy.js';

/**
 * Request-time templates of header and query values: `${consumer.id}`, `${request.id}`, `${client.ip}`, `${route}`,
 * `${header.NAME}`, `${query.NAME}`. A template is parsed once when the config loads into literal parts and
 * variables; a value without variables stays a plain string (no per-request work at all). An unset variable (no
 * consumer, an absent header) renders as ''.
 *
 * The config loader leaves these six forms alone (src/config/env.ts): `${NAME}` is an environment variable only
 * when it is not one of them.
 */
const V_CONSUMER = 0, V_REQUEST = 1, V_CLIENT = 2, V_ROUTE = 3, V_HEADER = 4, V_QUERY = 5;

type Part = string | { v: number; name: string };

export type Template = string | Part[];

/** The variable forms a template knows; also read by the config loader to leave them alone. */
export const TEMPLATE_VARIABLE = /^(?:consumer\.id|request\.id|client\.ip|route|header\.[!#$%&'*+.^_`|~0-9A-Za-z-]+|query\.[^}\s]+)$/;

export class TemplateError extends Error {}

export function compileTemplate(text: string): Template {
  if (text.indexOf('${') < 0) return text;
  const parts: Part[] = [];
  let pos = 0;
  for (;;) {
    const open = text.indexOf('${', pos);
    if (open < 0) break;
    const close = text.indexOf('}', open);
    if (close < 0) throw new TemplateError(`"\${" at ${open} is not closed`);
    if (open > pos) parts.push(text.slice(pos, open));
    const body = text.slice(open + 2, close);
    if (!TEMPLATE_VARIABLE.test(body)) {
      throw new TemplateError(`"\${${body}}" is not a variable; known: \${consumer.id}, \${request.id}, \${client.ip}, \${route}, \${header.NAME}, \${query.NAME}`);
    }
    if (body === 'consumer.id') parts.push({ v: V_CONSUMER, name: '' });
    else if (body === 'request.id') parts.push({ v: V_REQUEST, name: '' });
    else if (body === 'client.ip') parts.push({ v: V_CLIENT, name: '' });
    else if (body === 'route') parts.push({ v: V_ROUTE, name: '' });
    else if (body.startsWith('header.')) parts.push({ v: V_HEADER, name: body.slice(7).toLowerCase() });
    else parts.push({ v: V_QUERY, name: body.slice(6) });
    pos = close + 1;
  }
  if (pos < text.length) parts.push(text.slice(pos));
  return parts;
}

// CR, LF and NUL would end a header line early (a decoded query value may hold them): they never reach a head.
const UNSAFE = /[\r\n\0]/g;

/** The template's value for this request. */
export function render(t: Template, ctx: PolicyContext): string {
  if (typeof t === 'string') return t;
  let out = '';
  for (let i = 0; i < t.length; i++) {
    const p = t[i];
    if (typeof p === 'string') {
      out += p;
      continue;
    }
    let v: string | null | undefined;
    switch (p.v) {
      case V_CONSUMER: v = ctx.consumerId; break;
      case V_REQUEST: v = ctx.requestId; break;
      case V_CLIENT: v = ctx.clientIp; break;
      case V_ROUTE: v = ctx.routeName; break;
      case V_HEADER: v = ctx.header(p.name); break;
      default: v = ctx.queryParam(p.name);
    }
    if (v) out += v.indexOf('\r') >= 0 || v.indexOf('\n') >= 0 || v.indexOf('\0') >= 0 ? v.replace(UNSAFE, ' ') : v;
  }
  return out;
}

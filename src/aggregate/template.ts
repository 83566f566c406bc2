/**
 * Templates of aggregate calls: `${params.NAME}`, `${query.NAME}`, `${header.NAME}`, `${consumer.id}`,
 * `${consumer.plan}`, `${request.id}`, `${client.ip}` inside literal text. Parsed once when the config loads into
 * parts; a request only concatenates.
 */
export type TemplatePart =
  | string
  | { readonly param: number }
  | { readonly query: string }
  | { readonly header: string }
  | { readonly fact: 'consumer.id' | 'consumer.plan' | 'request.id' | 'client.ip' };

const REF = /\$\{([^}]*)\}/g;
const FACTS = new Set(['consumer.id', 'consumer.plan', 'request.id', 'client.ip']);

/** What a template reads from one request. */
export interface TemplateSource {
  readonly requestId: string;
  readonly clientIp: string;
  readonly consumerId: string | null;
  readonly consumerPlan: string | null;
  header(name: string): string | undefined;
  queryParam(name: string): string | null;
}

/** Parses `text`; an unknown reference or a param the route's match does not have is an issue (a message). */
export function parseTemplate(text: string, paramNames: readonly string[], issues: string[]): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let last = 0;
  for (const m of text.matchAll(REF)) {
    if (m.index > last) parts.push(text.slice(last, m.index));
    last = m.index + m[0].length;
    const ref = m[1].trim();
    const dot = ref.indexOf('.');
    const kind = dot < 0 ? ref : ref.slice(0, dot);
    const name = dot < 0 ? '' : ref.slice(dot + 1);
    if (FACTS.has(ref)) parts.push({ fact: ref as 'consumer.id' });
    else if (kind === 'params' && name !== '') {
      const i = paramNames.indexOf(name);
      if (i < 0) issues.push(`"\${${ref}}": the route's match has no param "${name}" (${paramNames.length ? 'params: ' + paramNames.join(', ') : 'it has none'})`);
      parts.push({ param: i });
    } else if (kind === 'query' && name !== '') parts.push({ query: name });
    else if (kind === 'header' && name !== '') parts.push({ header: name.toLowerCase() });
    else issues.push(`"\${${ref}}" is not a template reference: use params.NAME, query.NAME, header.NAME, consumer.id, consumer.plan, request.id or client.ip`);
  }
  if (last < text.length) parts.push(text.slice(last));
  // a literal "${" that was not closed is almost surely a typo
  for (const p of parts) if (typeof p === 'string' && p.includes('${')) issues.push(`"${text}": an unclosed "\${"`);
  return parts;
}

/** The value of one reference ('' when the request lacks it). */
function valueOf(p: Exclude<TemplatePart, string>, src: TemplateSource, params: readonly string[]): string {
  if ('param' in p) return params[p.param] ?? '';
  if ('query' in p) return src.queryParam(p.query) ?? '';
  if ('header' in p) return src.header(p.header) ?? '';
  switch (p.fact) {
    case 'consumer.id':
      return src.consumerId ?? '';
    case 'consumer.plan':
      return src.consumerPlan ?? '';
    case 'request.id':
      return src.requestId;
    case 'client.ip':
      return src.clientIp;
  }
}

/** Fills a template; `encode` escapes the values (never the literal text). */
export function render(parts: readonly TemplatePart[], src: TemplateSource, params: readonly string[], encode: (v: string) => string): string {
  let out = '';
  for (const p of parts) out += typeof p === 'string' ? p : encode(valueOf(p, src, params));
  return out;
}

/** For header values: a value from the request cannot add a header line. */
export function headerSafe(v: string): string {
  return /[\r\n\0]/.test(v) ? v.replace(/[\r\n\0]/g, '') : v;
}

/** For a path: percent-encodes every character that could change the path's shape (slash, ?, #, %, dot segments). */
export function pathSafe(v: string): string {
  const e = encodeURIComponent(v);
  return e === '.' || e === '..' ? e.replace(/\./g, '%2E') : e;
}

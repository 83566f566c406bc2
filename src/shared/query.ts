/**
 * Query-string helpers for the request path that avoid URLSearchParams (which parses and allocates every pair) when
 * only one parameter is wanted. Names compare after percent-decoding; '+' is a space, as in forms.
 */

function decode(s: string): string | null {
  if (s.indexOf('%') < 0 && s.indexOf('+') < 0) return s;
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return null; // malformed escape: not a match, and never a throw on the data plane
  }
}

function nameIs(query: string, start: number, end: number, name: string): boolean {
  // Common case first: the raw name is the name (no escapes), compared in place without slicing.
  if (end - start === name.length && query.startsWith(name, start)) return true;
  const raw = query.slice(start, end);
  return (raw.indexOf('%') >= 0 || raw.indexOf('+') >= 0) && decode(raw) === name;
}

/** The decoded value of the first `name` parameter, '' for a bare `name`, or null when absent (or undecodable). */
export function findQueryParam(query: string, name: string): string | null {
  let pos = 0;
  const n = query.length;
  while (pos <= n) {
    let amp = query.indexOf('&', pos);
    if (amp < 0) amp = n;
    let eq = query.indexOf('=', pos);
    if (eq < 0 || eq > amp) eq = amp;
    if (eq > pos && nameIs(query, pos, eq, name)) return eq === amp ? '' : decode(query.slice(eq + 1, amp));
    pos = amp + 1;
  }
  return null;
}

/** The query without any `name` parameter (order and encoding of the others untouched). */
export function withoutQueryParam(query: string, name: string): string {
  let out = '';
  let pos = 0;
  const n = query.length;
  while (pos < n) {
    let amp = query.indexOf('&', pos);
    if (amp < 0) amp = n;
    let eq = query.indexOf('=', pos);
    if (eq < 0 || eq > amp) eq = amp;
    if (!(eq > pos && nameIs(query, pos, eq, name)) && amp > pos) out += (out.length ? '&' : '') + query.slice(pos, amp);
    pos = amp + 1;
  }
  return out;
}

/**
 * Removes a query parameter from a request line "METHOD target HTTP/1.1\r\n" (the form the upstream request head
 * starts with); the line comes back unchanged when the parameter is absent.
 */
export function requestLineWithoutQueryParam(line: string, name: string): string {
  const sp1 = line.indexOf(' ');
  const sp2 = line.lastIndexOf(' ');
  const q = line.indexOf('?', sp1);
  if (q < 0 || q > sp2) return line;
  const query = line.slice(q + 1, sp2);
  const rest = withoutQueryParam(query, name);
  if (rest.length === query.length) return line;
  return line.slice(0, q) + (rest.length ? '?' + rest : '') + line.slice(sp2);
}

/** Appends an encoded `name=value` pair to the target of a request line "METHOD target HTTP/1.1\r\n". */
export function requestLineWithQueryParam(line: string, pair: string): string {
  const sp1 = line.indexOf(' ');
  const sp2 = line.lastIndexOf(' ');
  const q = line.indexOf('?', sp1);
  const sep = q < 0 || q > sp2 ? '?' : q === sp2 - 1 ? '' : '&';
  return line.slice(0, sp2) + sep + pair + line.slice(sp2);
}

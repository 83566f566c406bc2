/**
 * Content-coding negotiation on Accept-Encoding (RFC 9110 12.5.3), for the codings the gateway offers.
 *
 *   Accept-Encoding  = #( codings [ weight ] )     codings = content-coding / "identity" / "*"
 *   weight           = OWS ";" OWS "q=" qvalue     qvalue  = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
 *
 * - q=0 refuses a coding; "*" stands for every coding the header does not name; coding names are case-insensitive
 *   and "x-gzip" is gzip (RFC 9110 8.4.1.3).
 * - The highest weight wins; on a tie, the gateway's order (`offered`, preferred first).
 * - identity stays the answer when the client weighs it above every offered coding ("gzip;q=0.5, identity"): no
 *   compression. When it is not named (or "identity;q=0"), the representation is still the upstream's as it came
 *   if nothing else is acceptable: the gateway never answers 406, it only declines to compress.
 * - No Accept-Encoding at all: RFC 9110 allows any coding, but clients without the header (scripts, health checks,
 *   old libraries) are the ones least likely to decode one: no compression, as nginx and Envoy do.
 * - A member with a malformed weight ("gzip;q=2", "br;q=x") is ignored, as if absent.
 */

/** most codings offered at once (br, gzip, and room for one more) */
const MAX_OFFERED = 4;
const weights = new Float64Array(MAX_OFFERED);

/** Returns the index into `offered` (lower case, preferred first) of the coding to use, or -1 for none. */
export function negotiate(header: string | undefined, offered: readonly string[]): number {
  if (header === undefined) return -1;
  const n = offered.length;
  weights.fill(-1, 0, n);
  let star = -1;
  let identity = -1;
  let pos = 0;
  const len = header.length;
  while (pos < len) {
    let end = header.indexOf(',', pos);
    if (end < 0) end = len;
    const member = header.slice(pos, end);
    pos = end + 1;
    const semi = member.indexOf(';');
    const name = (semi < 0 ? member : member.slice(0, semi)).trim().toLowerCase();
    if (name.length === 0) continue;
    const q = semi < 0 ? 1 : weightOf(member, semi);
    if (q < 0) continue;
    if (name === '*') star = q;
    else if (name === 'identity') identity = q;
    else {
      const i = offered.indexOf(name === 'x-gzip' ? 'gzip' : name);
      if (i >= 0 && weights[i] < 0) weights[i] = q; // the first mention counts
    }
  }
  let best = -1;
  let bestQ = 0;
  for (let i = 0; i < n; i++) {
    const q = weights[i] >= 0 ? weights[i] : star >= 0 ? star : 0;
    if (q > bestQ) {
      best = i;
      bestQ = q;
    }
  }
  if (best >= 0 && identity > bestQ) return -1;
  return best;
}

/** The q of `member` whose parameters start at `semi`; 1 without one, -1 when malformed. */
function weightOf(member: string, semi: number): number {
  let q = 1;
  let p = semi;
  while (p >= 0 && p < member.length) {
    const next = member.indexOf(';', p + 1);
    const param = member.slice(p + 1, next < 0 ? member.length : next).trim();
    p = next;
    const eq = param.indexOf('=');
    if (eq < 0) continue;
    if (param.slice(0, eq).trim().toLowerCase() !== 'q') continue;
    q = qvalue(param.slice(eq + 1).trim());
    if (q < 0) return -1;
  }
  return q;
}

/** qvalue per RFC 9110 12.4.2, or -1. */
function qvalue(v: string): number {
  if (v.length === 0 || v.length > 5) return -1;
  const first = v.charCodeAt(0);
  if (first !== 48 && first !== 49) return -1;
  if (v.length === 1) return first - 48;
  if (v.charCodeAt(1) !== 46) return -1;
  let frac = 0;
  let scale = 1;
  for (let i = 2; i < v.length; i++) {
    const d = v.charCodeAt(i) - 48;
    if (d < 0 || d > 9 || (first === 49 && d !== 0)) return -1;
    scale /= 10;
    frac += d * scale;
  }
  return first - 48 + frac;
}

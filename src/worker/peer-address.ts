/**
 * The client's address as text (X-Forwarded-For, the access log, per-IP keys and allowlists), from the binary address
 * uWS gives: `res.getRemoteAddress()` is 4 bytes on an IPv4 listener and 16 on an IPv6 one. IPv4, and IPv4-mapped
 * IPv6 (an IPv4 client of a dual-stack `::` listener), come out as a dotted quad; IPv6 in its RFC 5952 text
 * (lower-case hex, no leading zeros, the longest run of zero groups as "::").
 *
 * uWS's own getRemoteAddressAsText writes every IPv6 address as eight 4-digit groups, mapped ones too: a client at
 * 127.0.0.1 of a `::` listener reached the upstream's X-Forwarded-For as 0000:0000:0000:0000:0000:ffff:7f00:0001.
 * It also costs more per request: it formats the text in C++, copies it into a new ArrayBuffer, and the handler made
 * a Buffer and a string of that. Here the text is made only when the address differs from the last one seen by this
 * thread (a keep-alive connection, or a load balancer in front, sends request after request from one address).
 */

/** what getRemoteAddress() needs to offer (uWS's HttpResponse, the node listener's adapter) */
export interface RemoteAddressSource {
  getRemoteAddress(): ArrayBuffer;
}

const last = new Uint8Array(16);
let lastLength = -1;
let lastText = '';

export function peerAddress(res: RemoteAddressSource): string {
  const b = new Uint8Array(res.getRemoteAddress());
  const n = b.length;
  if (n === lastLength) {
    let i = 0;
    while (i < n && b[i] === last[i]) i++;
    if (i === n) return lastText;
  }
  const text = addressText(b);
  if (n <= 16) {
    last.set(b);
    lastLength = n;
    lastText = text;
  }
  return text;
}

/** 4 or 16 address bytes as text (see above); '' for any other length (a socket already gone gives none). */
export function addressText(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) return '';
  let mapped = b[10] === 0xff && b[11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) if (b[i] !== 0) mapped = false;
  if (mapped) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  // RFC 5952 section 4.2: the longest run of two or more zero groups becomes "::", the first of equal runs
  let runAt = -1;
  let runLength = 1;
  for (let g = 0; g < 8; ) {
    if (b[2 * g] !== 0 || b[2 * g + 1] !== 0) {
      g++;
      continue;
    }
    let end = g;
    while (end < 8 && b[2 * end] === 0 && b[2 * end + 1] === 0) end++;
    if (end - g > runLength) {
      runAt = g;
      runLength = end - g;
    }
    g = end;
  }
  let s = '';
  for (let g = 0; g < 8; g++) {
    if (g === runAt) {
      s += '::';
      g += runLength - 1;
      continue;
    }
    if (s !== '' && !s.endsWith(':')) s += ':';
    s += ((b[2 * g] << 8) | b[2 * g + 1]).toString(16);
  }
  return s;
}

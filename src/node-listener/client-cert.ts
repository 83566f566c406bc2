import type { TLSSocket } from 'node:tls';
import type { PlanClientCertificates } from './compile.js';

/**
 * A verified client certificate, read once per connection (at the end of the TLS handshake) and shared by every
 * request on it. `subject` is the subject's attributes in certificate order joined by ", " (as node's
 * X509Certificate prints them, e.g. "O=Example, CN=client-a"); `sha256` the fingerprint of the DER certificate in
 * lower-case hex without colons; `san` its subjectAltName entries ("DNS:client.example", "URI:spiffe://…").
 */
export interface ClientCertificate {
  readonly subject: string;
  readonly sha256: string;
  readonly san: readonly string[];
  /** the consumer it maps to for one table generation (the auth method's per-connection cache) */
  consumerGeneration: number;
  consumerIndex: number;
  /** the upstream header lines it becomes, [name, value…] (the names configured when the connection opened) */
  readonly headers: readonly string[];
}

/** where the certificate of a connection is kept (a property of the TLS socket; HTTP/2's socket proxy reads it too) */
export const CLIENT_CERT = Symbol('nanogate.clientCert');
type Marked = TLSSocket & { [CLIENT_CERT]?: ClientCertificate | null };

/**
 * The connection's verdict, once its handshake is done: true keeps it (with its certificate, or without one when
 * the mode for its SNI name is optional), false means close it. A certificate that was presented but does not
 * verify against the CA bundle is refused in both modes.
 */
export function admitConnection(socket: TLSSocket, cc: PlanClientCertificates): boolean {
  const marked = socket as Marked;
  const name = (socket as TLSSocket & { servername?: string | false }).servername;
  const mode = (typeof name === 'string' ? cc.hosts[name.toLowerCase()] : undefined) ?? cc.mode;
  const x509 = socket.getPeerX509Certificate();
  if (x509 === undefined) {
    marked[CLIENT_CERT] = null;
    return mode === 'optional';
  }
  if (!socket.authorized) return false;
  const subject = x509.subject.split('\n').join(', ');
  const sha256 = x509.fingerprint256.replace(/:/g, '').toLowerCase();
  const san = x509.subjectAltName === undefined ? [] : x509.subjectAltName.split(', ');
  marked[CLIENT_CERT] = { subject, sha256, san, consumerGeneration: -1, consumerIndex: -1, headers: certHeaders(subject, sha256, san, cc.headers) };
  return true;
}

export function clientCertOf(socket: unknown): ClientCertificate | null {
  return (socket as Marked | null)?.[CLIENT_CERT] ?? null;
}

/** The upstream header lines of a certificate, as a flat [name, value…] list (values made header-safe). */
function certHeaders(subject: string, sha256: string, san: readonly string[], names: PlanClientCertificates['headers']): string[] {
  const out: string[] = [];
  if (names.subject !== null) out.push(names.subject, headerSafe(subject));
  if (names.sha256 !== null) out.push(names.sha256, sha256);
  if (names.san !== null && san.length > 0) out.push(names.san, headerSafe(san.join(', ')));
  return out;
}

/** A subject is the CA's text, but a field value must not carry controls or non-ASCII bytes: those are %-encoded. */
function headerSafe(v: string): string {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return encodeURIComponent(v);
  }
  return v;
}

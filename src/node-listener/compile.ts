import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import type { ConfigIssue } from '../config/errors.js';
import { configPath, type PlanListenerTls } from '../tls/compile.js';
import type { Http2ListenConfig } from './schema.js';

/** Client-certificate verification of the node listener, compiled: the CA bundle read, modes by SNI name. */
export interface PlanClientCertificates {
  /** the CA bundle (PEM contents) */
  readonly ca: string;
  readonly caFile: string;
  readonly mode: 'optional' | 'required';
  /** lower-case SNI name -> mode, for the names of `hosts` */
  readonly hosts: Readonly<Record<string, 'optional' | 'required'>>;
  /** true when no connection may do without a certificate: the TLS handshake itself then refuses one (an alert) */
  readonly allRequired: boolean;
  /** upstream header names (lower case), null when not sent */
  readonly headers: { readonly subject: string | null; readonly sha256: string | null; readonly san: string | null };
}

export interface PlanHttp2Listener {
  readonly host: string;
  readonly port: number;
  readonly h2c: boolean;
  readonly maxConcurrentStreams: number;
  /** the certificates of listen.tls (null with h2c) */
  readonly tls: PlanListenerTls | null;
  readonly clientCertificates: PlanClientCertificates | null;
}

/** header names the handler manages (framing, forwarding, client-address claims) */
const RESERVED = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'te', 'trailer', 'upgrade', 'expect', 'via', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'x-real-ip', 'x-request-id']);

export function compileHttp2Listener(
  cfg: Http2ListenConfig,
  listen: { host: string; port: number },
  tls: PlanListenerTls | null,
  tlsConfigured: boolean,
  source: string,
  issues: ConfigIssue[],
): PlanHttp2Listener | null {
  const before = issues.length;
  const host = cfg.host ?? listen.host;
  if (cfg.port !== 0 && cfg.port === listen.port && (host === listen.host || host === '0.0.0.0' || listen.host === '0.0.0.0')) {
    issues.push({ path: 'listen.http2.port', message: `${cfg.port} is listen.port: the HTTP/2 listener needs a port of its own` });
  }
  if (!cfg.h2c && !tlsConfigured) {
    issues.push({ path: 'listen.http2', message: 'HTTP/2 over TLS needs listen.tls (its certificates are shared)', hint: 'add listen.tls, or set h2c: true for cleartext HTTP/2 with prior knowledge' });
  }
  let clientCertificates: PlanClientCertificates | null = null;
  const cc = cfg.clientCertificates;
  if (cc !== undefined) {
    if (cfg.h2c) issues.push({ path: 'listen.http2.clientCertificates', message: 'client certificates need TLS; h2c is cleartext', hint: 'set h2c: false and configure listen.tls' });
    const caFile = configPath(cc.ca, source);
    let ca = '';
    try {
      ca = readFileSync(caFile, 'utf8');
      new X509Certificate(ca);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      issues.push({ path: 'listen.http2.clientCertificates.ca', message: code === 'ENOENT' || code === 'EACCES' ? `cannot read "${caFile}": ${code}` : `"${caFile}" is not a PEM certificate bundle` });
    }
    const hosts: Record<string, 'optional' | 'required'> = Object.create(null);
    cc.hosts.forEach((h, i) =>
      h.hostnames.forEach((n, j) => {
        const name = n.toLowerCase();
        if (name in hosts) issues.push({ path: `listen.http2.clientCertificates.hosts[${i}].hostnames[${j}]`, message: `"${n}" is given a mode twice` });
        hosts[name] = h.mode;
      }),
    );
    const lower = (n: string | undefined) => (n === undefined ? null : n.toLowerCase());
    const headers = { subject: lower(cc.headers.subject), sha256: lower(cc.headers.sha256), san: lower(cc.headers.san) };
    for (const [k, n] of Object.entries(headers)) {
      if (n !== null && RESERVED.has(n)) issues.push({ path: `listen.http2.clientCertificates.headers.${k}`, message: `"${n}" has a role of its own in forwarding and cannot carry a certificate` });
    }
    clientCertificates = {
      ca,
      caFile,
      mode: cc.mode,
      hosts,
      allRequired: cc.mode === 'required' && Object.values(hosts).every((m) => m === 'required'),
      headers,
    };
  }
  if (issues.length > before) return null;
  return { host, port: cfg.port, h2c: cfg.h2c, maxConcurrentStreams: cfg.maxConcurrentStreams, tls: cfg.h2c ? null : tls, clientCertificates };
}

import { readFileSync } from 'node:fs';
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';
import type { ConfigIssue } from '../config/errors.js';
import type { ListenerTlsConfig, UpstreamTlsConfig } from './schema.js';

/**
 * Control-plane compile of the TLS settings: every file is read and parsed here (node:crypto X509Certificate), so a
 * missing file, a PEM that is not a certificate, a wrong passphrase or a key that does not belong to its certificate
 * is refused by `nanogate validate` with its path, and the old config keeps serving on a reload.
 */

/** one certificate the listener serves, for the expiry metric and warnings */
export interface PlanCertificate {
  /** "default", or the first SNI name of a `servers` entry */
  readonly name: string;
  readonly file: string;
  readonly subject: string;
  /** epoch ms */
  readonly notAfter: number;
}

export interface PlanServerCertificate {
  readonly hostname: string;
  readonly cert: string;
  readonly key: string;
  readonly passphrase?: string;
}

/** The listener's TLS, front-end neutral: paths (absolute) and options, plus what the certificates say. */
export interface PlanListenerTls {
  readonly cert: string;
  readonly key: string;
  readonly passphrase?: string;
  /** one entry per SNI name */
  readonly servers: readonly PlanServerCertificate[];
  readonly ciphers: string | null;
  readonly dhParams: string | null;
  readonly preferLowMemory: boolean;
  readonly watch: boolean;
  readonly expiryWarningDays: number;
  readonly certificates: readonly PlanCertificate[];
  /** every file the listener reads (certificates, keys, DH parameters): the watch list of a reload */
  readonly files: readonly string[];
  /** sha256 of the files' contents: the watch asks for a reload when it changes */
  readonly contentDigest: string;
  /** sha256 of the contents and the options: a worker opens a new listener when it changes */
  readonly digest: string;
}

/** An upstream's client TLS as undici's `connect` and node:https take it (PEM contents, read at compile). */
export interface PlanUpstreamTls {
  readonly ca: string | null;
  readonly servername: string | null;
  readonly rejectUnauthorized: boolean;
  readonly cert: string | null;
  readonly key: string | null;
  readonly passphrase: string | null;
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
}

const DAY_MS = 86_400_000;

/** a relative path is taken from the directory of the config file */
export function configPath(file: string, source: string): string {
  return isAbsolute(file) ? file : resolvePath(dirname(source), file);
}

function readPem(file: string, path: string, issues: ConfigIssue[]): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    issues.push({ path, message: `cannot read "${file}": ${(err as NodeJS.ErrnoException).code ?? err}` });
    return null;
  }
}

/**
 * Reads and checks a certificate and its key. Returns the parsed certificate, or null after adding an issue.
 * `where` is the config path of the object holding cert/key/passphrase.
 */
function certificatePair(certFile: string, keyFile: string, passphrase: string | undefined, where: string, issues: ConfigIssue[]): X509Certificate | null {
  const certPem = readPem(certFile, `${where}.cert`, issues);
  const keyPem = readPem(keyFile, `${where}.key`, issues);
  if (certPem === null || keyPem === null) return null;
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(certPem);
  } catch (err) {
    issues.push({ path: `${where}.cert`, message: `"${certFile}" is not a PEM certificate (${(err as Error).message})` });
    return null;
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: keyPem, passphrase });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const encrypted = /ENCRYPTED/.test(keyPem);
    issues.push({
      path: `${where}.${encrypted ? 'passphrase' : 'key'}`,
      message: encrypted ? `the key "${keyFile}" cannot be decrypted with ${passphrase === undefined ? 'no passphrase' : 'this passphrase'}` : `"${keyFile}" is not a PEM private key (${code || (err as Error).message})`,
    });
    return null;
  }
  if (!x509.checkPrivateKey(key)) {
    issues.push({ path: `${where}.key`, message: `"${keyFile}" is not the private key of the certificate "${certFile}"`, hint: 'give the key the certificate was issued for' });
    return null;
  }
  return x509;
}

/** the digest of what the listener reads; an unreadable file counts as empty (compile reports it) */
export function filesDigest(files: readonly string[], options: string): string {
  const h = createHash('sha256').update(options);
  for (const f of files) {
    h.update(`\u0000${f}\u0000`);
    try {
      h.update(readFileSync(f));
    } catch {
      // counted as empty
    }
  }
  return h.digest('hex');
}

/** days until `notAfter`, negative once expired */
export function daysLeft(notAfter: number, now = Date.now()): number {
  return (notAfter - now) / DAY_MS;
}

/** the expiry warnings of a listener's certificates (at load, and from the daily check of src/tls/watch.ts) */
export function expiryWarnings(tls: PlanListenerTls, now = Date.now()): string[] {
  if (tls.expiryWarningDays === 0) return [];
  const out: string[] = [];
  for (const c of tls.certificates) {
    const days = daysLeft(c.notAfter, now);
    if (days < 0) out.push(`listen.tls: the certificate "${c.name}" (${c.file}, ${c.subject}) expired on ${new Date(c.notAfter).toISOString()}`);
    else if (days < tls.expiryWarningDays) out.push(`listen.tls: the certificate "${c.name}" (${c.file}, ${c.subject}) expires in ${days.toFixed(1)} days, on ${new Date(c.notAfter).toISOString()}`);
  }
  return out;
}

export function compileListenerTls(tls: ListenerTlsConfig, source: string, issues: ConfigIssue[], warnings: string[]): PlanListenerTls | null {
  const before = issues.length;
  const certificates: PlanCertificate[] = [];
  const files: string[] = [];
  const add = (name: string, cert: string, key: string, passphrase: string | undefined, where: string) => {
    files.push(cert, key);
    const x509 = certificatePair(cert, key, passphrase, where, issues);
    if (x509) certificates.push({ name, file: cert, subject: x509.subject.replace(/\n/g, ', '), notAfter: Date.parse(x509.validTo) });
  };
  const cert = configPath(tls.cert, source);
  const key = configPath(tls.key, source);
  add('default', cert, key, tls.passphrase, 'listen.tls');
  const servers: PlanServerCertificate[] = [];
  const seen = new Set<string>();
  tls.servers.forEach((s, i) => {
    const where = `listen.tls.servers[${i}]`;
    const sc = configPath(s.cert, source);
    const sk = configPath(s.key, source);
    add(s.hostnames[0], sc, sk, s.passphrase, where);
    s.hostnames.forEach((h, j) => {
      const name = h.toLowerCase();
      if (seen.has(name)) issues.push({ path: `${where}.hostnames[${j}]`, message: `"${h}" is already served by another certificate` });
      seen.add(name);
      servers.push({ hostname: name, cert: sc, key: sk, ...(s.passphrase !== undefined ? { passphrase: s.passphrase } : {}) });
    });
  });
  let dhParams: string | null = null;
  if (tls.dhParams !== undefined) {
    dhParams = configPath(tls.dhParams, source);
    files.push(dhParams);
    const pem = readPem(dhParams, 'listen.tls.dhParams', issues);
    if (pem !== null && !pem.includes('-----BEGIN DH PARAMETERS-----')) issues.push({ path: 'listen.tls.dhParams', message: `"${dhParams}" holds no PEM DH parameters`, hint: 'make them with: openssl dhparam -out dh.pem 2048' });
  }
  if (issues.length > before) return null;
  const unique = [...new Set(files)];
  const plan: PlanListenerTls = {
    cert,
    key,
    ...(tls.passphrase !== undefined ? { passphrase: tls.passphrase } : {}),
    servers,
    ciphers: tls.ciphers ?? null,
    dhParams,
    preferLowMemory: tls.preferLowMemory,
    watch: tls.watch,
    expiryWarningDays: tls.expiryWarningDays,
    certificates,
    files: unique,
    contentDigest: filesDigest(unique, ''),
    digest: filesDigest(unique, JSON.stringify([tls, servers])),
  };
  warnings.push(...expiryWarnings(plan));
  return plan;
}

export function compileUpstreamTls(tls: UpstreamTlsConfig | undefined, name: string, source: string, issues: ConfigIssue[], warnings: string[]): PlanUpstreamTls | null {
  if (tls === undefined) return null;
  const where = `upstreams.${name}.tls`;
  let ca: string | null = null;
  if (tls.ca !== undefined) {
    const file = configPath(tls.ca, source);
    ca = readPem(file, `${where}.ca`, issues);
    if (ca !== null) {
      try {
        new X509Certificate(ca);
      } catch (err) {
        issues.push({ path: `${where}.ca`, message: `"${file}" is not a PEM certificate bundle (${(err as Error).message})` });
      }
    }
  }
  let cert: string | null = null;
  let key: string | null = null;
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    issues.push({ path: `${where}.${tls.cert === undefined ? 'cert' : 'key'}`, message: 'a client certificate needs both cert and key' });
  } else if (tls.cert !== undefined && tls.key !== undefined) {
    const certFile = configPath(tls.cert, source);
    const keyFile = configPath(tls.key, source);
    if (certificatePair(certFile, keyFile, tls.passphrase, where, issues)) {
      cert = readFileSync(certFile, 'utf8');
      key = readFileSync(keyFile, 'utf8');
    }
  }
  if (!tls.verify) {
    warnings.push(`${where}.verify is false: the certificates of upstream "${name}" are NOT checked, anyone on the network path can impersonate it (use tls.ca for a private CA instead)`);
  }
  return { ca, servername: tls.servername ?? null, rejectUnauthorized: tls.verify, cert, key, passphrase: tls.passphrase ?? null, minVersion: tls.minVersion };
}

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A CA made by openssl for a test: its certificate and key files. */
export interface TestCa {
  cert: string;
  key: string;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' });
}

export function makeCa(dir: string, name: string): TestCa {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}-key.pem`);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '30', '-subj', `/CN=${name}`]);
  return { cert, key };
}

/**
 * A leaf certificate signed by `ca` for `names` (subjectAltName DNS entries, plus IP:127.0.0.1), valid `days` days.
 * With `clientAuth` it is a client certificate. Writes `<file>.pem` and `<file>-key.pem`; returns their paths.
 */
export function makeLeaf(dir: string, file: string, ca: TestCa, names: string[], opts: { days?: number; clientAuth?: boolean } = {}): { cert: string; key: string } {
  const cert = join(dir, `${file}.pem`);
  const key = join(dir, `${file}-key.pem`);
  const csr = join(dir, `${file}.csr`);
  const ext = join(dir, `${file}.ext`);
  writeFileSync(ext, `subjectAltName=${[...names.map((n) => `DNS:${n}`), 'IP:127.0.0.1'].join(',')}\nextendedKeyUsage=${opts.clientAuth ? 'clientAuth' : 'serverAuth'}\n`);
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${names[0]}`]);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', cert, '-days', String(opts.days ?? 30), '-extfile', ext]);
  return { cert, key };
}

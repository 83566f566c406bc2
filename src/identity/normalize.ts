import * as crypto from 'node:crypto';
import type { ConfigIssue } from '../config/errors.js';
import { parseCidr, type Cidr } from '../shared/cidr.js';
import type { ConsumerSpec } from './table.js';
import type { ConsumerConfig } from './schema.js';

/** SHA-256 of an API key as it arrives (UTF-8); node:crypto's one-shot hash where it exists (Node >= 20.12). */
export const keyDigest: (key: string) => Buffer =
  typeof (crypto as { hash?: unknown }).hash === 'function'
    ? (key) => (crypto as unknown as { hash(alg: string, data: string, enc: 'buffer'): Buffer }).hash('sha256', key, 'buffer')
    : (key) => crypto.createHash('sha256').update(key, 'utf8').digest();

export interface NormalizeOptions {
  /** replace plain keys by their digests in the input (config consumers) */
  redact?: boolean;
  /**
   * report duplicate ids, keys and JWT mappings with their paths (config consumers). Off for registry documents,
   * where the table build refuses duplicates anyway, to save three 100,000-entry maps.
   */
  paths?: boolean;
}

/**
 * Checks consumers that passed the schema (unique ids, keys and JWT mappings; valid CIDR blocks) and turns them into
 * specs for the table. Problems go to `issues` with their path under `where` (e.g. "consumers[3].keys[0]").
 * With `redact`, a plain `key` in the input is replaced by its `keySha256` in place, so that the config object the
 * control plane keeps (and the admin API shows) never holds a key.
 */
export function normalizeConsumers(list: readonly ConsumerConfig[], where: string, issues: ConfigIssue[], opts: NormalizeOptions = {}): ConsumerSpec[] {
  const redact = opts.redact === true;
  const paths = opts.paths !== false;
  const out: ConsumerSpec[] = [];
  const ids = paths ? new Map<string, number>() : null;
  const keys = paths ? new Map<string, string>() : null;
  const jwts = paths ? new Map<string, string>() : null;
  const at = (i: number) => `${where}[${i}]`;
  for (let i = 0; i < list.length; i++) {
    const c = list[i];
    if (ids !== null) {
      const seen = ids.get(c.id);
      if (seen !== undefined) {
        issues.push({ path: `${at(i)}.id`, message: `duplicate consumer id "${c.id}" (also ${where}[${seen}])` });
        continue;
      }
      ids.set(c.id, i);
    }
    const digests: Uint8Array[] = [];
    for (let k = 0; k < c.keys.length; k++) {
      const entry = c.keys[k] as { key?: string; keySha256?: string };
      const digest = entry.key !== undefined ? keyDigest(entry.key) : Buffer.from(entry.keySha256!, 'hex');
      if (redact && entry.key !== undefined) {
        delete entry.key;
        entry.keySha256 = digest.toString('hex');
      }
      if (keys !== null) {
        const hex = digest.toString('hex');
        const owner = keys.get(hex);
        if (owner !== undefined) {
          issues.push({ path: `${at(i)}.keys[${k}]`, message: `this API key is already used by ${owner}`, hint: 'every key must identify exactly one consumer' });
          continue;
        }
        keys.set(hex, `${at(i)} ("${c.id}")`);
      }
      digests.push(digest);
    }
    const certs = certificateMappings(c.certificates ?? []);
    for (let j = 0; j < c.jwt.length; j++) {
      if (c.jwt[j].issuer.startsWith(CERT_NAMESPACE)) issues.push({ path: `${at(i)}.jwt[${j}].issuer`, message: 'an issuer may not start with U+0000 (reserved for certificate bindings)' });
    }
    for (let j = 0; jwts !== null && j < certs.length; j++) {
      const m = certs[j];
      const k = `${m.issuer}\n${m.subject}`;
      const owner = jwts.get(k);
      if (owner !== undefined) {
        issues.push({ path: `${at(i)}.certificates[${j}]`, message: `this certificate binding is already used by ${owner}`, hint: 'a certificate identifies exactly one consumer' });
        continue;
      }
      jwts.set(k, `${at(i)} ("${c.id}")`);
    }
    for (let j = 0; jwts !== null && j < c.jwt.length; j++) {
      const m = c.jwt[j];
      const k = `${m.issuer}\n${m.subject}`;
      const owner = jwts.get(k);
      if (owner !== undefined) {
        issues.push({ path: `${at(i)}.jwt[${j}]`, message: `issuer "${m.issuer}" subject "${m.subject}" is already mapped to ${owner}` });
        continue;
      }
      jwts.set(k, `${at(i)} ("${c.id}")`);
    }
    const allowIps: Cidr[] = [];
    for (let b = 0; b < c.allowIps.length; b++) {
      const cidr = parseCidr(c.allowIps[b]);
      if (cidr === null) issues.push({ path: `${at(i)}.allowIps[${b}]`, message: `"${c.allowIps[b]}" is not an IP address or CIDR block` });
      else allowIps.push(cidr);
    }
    out.push({
      id: c.id,
      plan: c.plan ?? null,
      keys: digests,
      // certificate bindings share the (issuer, subject) table of JWT mappings, under reserved issuer names
      jwt: [...c.jwt.map((m) => ({ issuer: m.issuer, subject: m.subject })), ...certs],
      subscriptions: c.subscriptions.map((s) => (typeof s === 'string' ? { api: s, environment: null } : { api: s.api, environment: s.environment ?? null })),
      scopes: c.scopes.length < 2 ? c.scopes : [...new Set(c.scopes)],
      roles: c.roles.length < 2 ? c.roles : [...new Set(c.roles)],
      allowIps,
    });
  }
  return out;
}

/**
 * Config consumers first, then registry ones. A registry consumer that clashes with a config consumer (same id, key
 * or JWT mapping) is left out: the config, which an operator reviewed, wins. Returns the merged list and the ids
 * left out.
 */
export function mergeConsumers(fromConfig: readonly ConsumerSpec[], fromRegistry: readonly ConsumerSpec[]): { specs: ConsumerSpec[]; skipped: string[] } {
  if (fromConfig.length === 0) return { specs: fromRegistry as ConsumerSpec[], skipped: [] };
  const ids = new Set(fromConfig.map((c) => c.id));
  const keys = new Set(fromConfig.flatMap((c) => c.keys.map((k) => Buffer.from(k).toString('hex'))));
  const jwts = new Set(fromConfig.flatMap((c) => c.jwt.map((m) => `${m.issuer}\n${m.subject}`)));
  const specs = [...fromConfig];
  const skipped: string[] = [];
  for (const c of fromRegistry) {
    const clash =
      ids.has(c.id) || c.keys.some((k) => keys.has(Buffer.from(k).toString('hex'))) || c.jwt.some((m) => jwts.has(`${m.issuer}\n${m.subject}`));
    if (clash) skipped.push(c.id);
    else specs.push(c);
  }
  return { specs, skipped };
}

/**
 * Certificate bindings live in the consumer table's (issuer, subject) index beside JWT mappings, under issuer names
 * no JWT can have (they start with U+0000, which normalizeConsumers refuses in a JWT issuer): one lookup structure
 * in shared memory for both, and the table layout unchanged.
 */
export const CERT_NAMESPACE = '\u0000cert:';
export const CERT_SHA256 = CERT_NAMESPACE + 'sha256';
export const CERT_SUBJECT = CERT_NAMESPACE + 'subject';
export const CERT_SAN = CERT_NAMESPACE + 'san';

/** a fingerprint as the listener computes it: lower-case hex, no colons */
export function normalizeFingerprint(v: string): string {
  return v.replace(/:/g, '').toLowerCase();
}

function certificateMappings(list: readonly { sha256?: string; subject?: string; san?: string }[]): { issuer: string; subject: string }[] {
  return list.map((b) =>
    b.sha256 !== undefined ? { issuer: CERT_SHA256, subject: normalizeFingerprint(b.sha256) } : b.subject !== undefined ? { issuer: CERT_SUBJECT, subject: b.subject } : { issuer: CERT_SAN, subject: b.san! },
  );
}

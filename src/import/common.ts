import { createHash } from 'node:crypto';

/**
 * What the Kong and APISIX converters share: the list of things they could not carry over, name and URL making,
 * and the pieces both products took from the same libraries (lua-resty-healthcheck's check shape, nginx-style
 * weights). The output is plain data in nanogate's config shape; the CLI turns it into YAML and checks it with the
 * same compile path as `nanogate validate`.
 */

/** One thing that was not converted, or not converted exactly: where in the source file, and why. */
export interface ImportIssue {
  /** the object in the source, e.g. `services[0].routes[1].paths[0]` or `routes[3] (id 12)` */
  path: string;
  reason: string;
}

export class ImportReport {
  readonly issues: ImportIssue[] = [];
  readonly #seen = new Set<string>();
  /** A plugin shared by many routes is reported once, at its own path. */
  add(path: string, reason: string): void {
    const key = `${path}\n${reason}`;
    if (this.#seen.has(key)) return;
    this.#seen.add(key);
    this.issues.push({ path, reason });
  }
}

/** The source file was not what the command expects (exit 1, nothing written). */
export class ImportError extends Error {}

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function asArray(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

export function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

export function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** nanogate names: letters, digits, dot, dash, underscore, at most 64, unique within `used`. */
export function uniqueName(raw: string, used: Set<string>): string {
  let base = raw.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 60);
  if (!base) base = 'x';
  let name = base;
  for (let i = 2; used.has(name); i++) name = `${base}-${i}`;
  used.add(name);
  return name;
}

/** `http://host:port` with IPv6 literals bracketed. */
export function nodeUrl(scheme: 'http' | 'https', host: string, port: number): string {
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `${scheme}://${h}:${port}`;
}

/** `host:port`, `[v6]:port` or a bare host (then `defaultPort`). */
export function splitHostPort(target: string, defaultPort: number): { host: string; port: number } | null {
  const m = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(target) ?? /^([^:[\]]+)(?::(\d+))?$/.exec(target);
  if (!m) return null;
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (!(port >= 1 && port <= 65535)) return null;
  return { host: m[1], port };
}

/**
 * Node weights scaled into nanogate's 0..1000 keeping their ratios (Kong's go to 65535, APISIX's are unbounded);
 * a non-zero weight stays at least 1. Returns null when nothing needed scaling.
 */
export function scaleWeights(weights: number[]): number[] | null {
  const max = Math.max(0, ...weights);
  if (max <= 1000) return null;
  return weights.map((w) => (w <= 0 ? 0 : Math.max(1, Math.round((w * 1000) / max))));
}

export function sha256Hex(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** Consumer ids are visible ASCII (they go into a header). */
export function consumerIdOk(id: string): boolean {
  return /^[\x21-\x7e]{1,256}$/.test(id);
}

/** API keys nanogate accepts: 16 to 512 visible ASCII characters. */
export function apiKeyProblem(key: string): string | null {
  if (!/^[\x21-\x7e]+$/.test(key)) return 'nanogate API keys are visible ASCII without spaces';
  if (key.length < 16) return `the key has ${key.length} characters; nanogate requires at least 16 (issue longer keys first)`;
  if (key.length > 512) return 'the key is longer than 512 characters';
  return null;
}

/** A JWT verification key in nanogate's shape, from a Kong jwt_secret or an APISIX jwt-auth consumer conf. */
export interface JwtKey {
  alg: string;
  secret?: string;
  publicKeyPem?: string;
}

const HS_BYTES: Record<string, number> = { HS256: 32, HS384: 48, HS512: 64 };
const PUBLIC_ALGS = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']);

/** The key, or why it cannot be one. */
export function jwtKey(alg: string, secret: string | undefined, publicKey: string | undefined): JwtKey | string {
  if (alg in HS_BYTES) {
    if (!secret) return `${alg} without a secret`;
    if (Buffer.byteLength(secret) < HS_BYTES[alg]) return `the ${alg} secret has ${Buffer.byteLength(secret)} bytes; nanogate requires at least ${HS_BYTES[alg]} for ${alg}`;
    return { alg, secret };
  }
  if (PUBLIC_ALGS.has(alg)) {
    if (!publicKey) return `${alg} without a public key`;
    return { alg, publicKeyPem: publicKey.trim() + '\n' };
  }
  return `algorithm "${alg}" is not supported by nanogate (HS*, RS*, PS*, ES*, EdDSA are)`;
}

export function sameJwtKey(a: JwtKey, b: JwtKey): boolean {
  return a.alg === b.alg && a.secret === b.secret && a.publicKeyPem === b.publicKeyPem;
}

/**
 * The active checks of lua-resty-healthcheck, which Kong (`upstreams[].healthchecks`) and APISIX
 * (`upstreams[].checks`) both use with the same field names; intervals and timeouts in seconds.
 */
export function convertActiveCheck(
  active: Obj,
  passive: Obj | undefined,
  where: string,
  report: ImportReport,
  defaults: { interval: number; successes: number; httpFailures: number; tcpFailures: number; timeouts: number },
): Obj | undefined {
  const healthy = isObj(active.healthy) ? active.healthy : {};
  const unhealthy = isObj(active.unhealthy) ? active.unhealthy : {};
  const type = str(active.type) ?? 'http';
  const intervals = [num(healthy.interval) ?? defaults.interval, num(unhealthy.interval) ?? defaults.interval];
  const on = intervals.filter((i) => i > 0);
  if (passive !== undefined) {
    const pu = isObj(passive.unhealthy) ? passive.unhealthy : {};
    const counts = [pu.http_failures, pu.tcp_failures, pu.timeouts].map((v) => num(v) ?? 0);
    if (counts.some((c) => c > 0)) {
      report.add(`${where}.passive`, 'passive counters are not carried over: nanogate ejects nodes that refuse, reset or time out by default (upstreams.NAME.outlierDetection, docs/resilience.md)');
    }
  }
  if (on.length === 0) return undefined; // active checks are off in the source too
  if (type !== 'http' && type !== 'tcp') {
    report.add(`${where}.active.type`, `"${type}" checks are not supported (http and tcp are); no active check`);
    return undefined;
  }
  if (on.length === 1 && intervals.includes(0)) {
    report.add(`${where}.active`, `only ${intervals[0] > 0 ? 'healthy' : 'unhealthy'} nodes are probed in the source; nanogate probes every node every ${on[0]} s`);
  } else if (intervals[0] !== intervals[1]) {
    report.add(`${where}.active`, `different intervals for healthy and unhealthy nodes; nanogate probes every node every ${Math.min(...on)} s`);
  }
  const failures = [num(unhealthy.http_failures) ?? defaults.httpFailures, num(unhealthy.tcp_failures) ?? defaults.tcpFailures, num(unhealthy.timeouts) ?? defaults.timeouts].filter((n) => n > 0);
  const out: Obj = { type, intervalMs: Math.max(100, Math.round(Math.min(...on) * 1000)) };
  if (type === 'http') {
    out.path = str(active.http_path) ?? '/';
    if (str(active.host)) out.host = active.host;
    const statuses = asArray(healthy.http_statuses).filter((s): s is number => typeof s === 'number' && s >= 100 && s <= 599);
    out.expectedStatuses = statuses.length ? statuses : [200, 302];
  }
  const timeout = num(active.timeout);
  if (timeout !== undefined) out.timeoutMs = Math.min(60_000, Math.max(10, Math.round(timeout * 1000)));
  const successes = num(healthy.successes) ?? defaults.successes;
  out.healthyThreshold = Math.min(100, Math.max(1, successes));
  if (failures.length) out.unhealthyThreshold = Math.min(100, Math.min(...failures));
  else report.add(`${where}.active.unhealthy`, 'no failure counter is set, so the source never marks a node down by its checks; nanogate marks it down after 2 failures');
  const concurrency = num(active.concurrency);
  if (concurrency !== undefined) out.concurrency = Math.min(256, Math.max(1, concurrency));
  if ((isObj(active.headers) && Object.keys(active.headers).length) || (Array.isArray(active.headers) && active.headers.length) || asArray(active.req_headers).length) {
    report.add(`${where}.active`, 'request headers of the check are not supported; the check is sent without them');
  }
  if (asArray(unhealthy.http_statuses).length) {
    report.add(`${where}.active.unhealthy.http_statuses`, 'nanogate counts every status outside expectedStatuses as a failure');
  }
  return out;
}

/** A CORS origin nanogate can match: "*", "null", exact, or one "*." host / ":*" port wildcard. */
export function corsOriginOk(origin: string): boolean {
  if (origin === '*' || origin === 'null') return true;
  return /^https?:\/\/(\*\.)?[A-Za-z0-9.-]+(:(\d+|\*))?$/.test(origin);
}

/** Seconds of a window as nanogate's `per`, or undefined when it is none of them. */
export function perOf(seconds: number): 'second' | 'minute' | 'hour' | 'day' | undefined {
  return ({ 1: 'second', 60: 'minute', 3600: 'hour', 86400: 'day' } as const)[seconds as 1 | 60 | 3600 | 86400];
}

/** Header name check of nanogate's schema (RFC 9110 token). */
export function headerNameOk(name: string): boolean {
  return /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) && name.length <= 256;
}

/** A route path nanogate takes literally as a prefix (no params, wildcards or regex). */
export function literalPathOk(path: string): boolean {
  return /^\/[A-Za-z0-9\-._~!$&'()+,;=@%/]*$/.test(path);
}

export function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { TSchema } from '@sinclair/typebox';
import type { Logger } from 'pino';
import { ConfigError, type ConfigIssue } from '../config/errors.js';
import { ConsulSource } from './consul.js';
import { DnsSource } from './dns.js';
import { FileSource } from './file.js';
import { KubernetesSource } from './kubernetes.js';
import {
  ConsulDiscoverySchema,
  DnsDiscoverySchema,
  FileDiscoverySchema,
  KubernetesDiscoverySchema,
  type DiscoveryConfig,
} from './schema.js';
import type { DiscoverySource } from './source.js';

export { DiscoveryConfigSchema, type DiscoveryConfig } from './schema.js';
export type { DiscoveredNode, DiscoverySource, DiscoveryStatus } from './source.js';

/**
 * Service discovery on the control plane: one source per upstream that names one, each behind DiscoverySource. The
 * owner (the upstream cluster) gets node sets through onNodes and reads status() for the admin API and metrics.
 *
 * @example
 *   const source = createDiscoverySource(parseDiscoveryConfig({ type: 'dns', name: 'api.internal', port: 8080 }), logger);
 *   source.start((nodes) => cluster.setNodes(nodes));
 *   // ... on shutdown or when the config drops the upstream:
 *   await source.stop();
 */
export function createDiscoverySource(config: DiscoveryConfig, logger: Logger): DiscoverySource {
  const log = logger.child({ discovery: config.type });
  switch (config.type) {
    case 'dns':
      return new DnsSource(config, log);
    case 'file':
      return new FileSource(config, log);
    case 'consul':
      return new ConsulSource(config, log);
    case 'kubernetes':
      return new KubernetesSource(config, log);
  }
}

const SCHEMAS: Record<DiscoveryConfig['type'], TSchema> = {
  dns: DnsDiscoverySchema,
  file: FileDiscoverySchema,
  consul: ConsulDiscoverySchema,
  kubernetes: KubernetesDiscoverySchema,
};
// verbose: an anyOf error carries its branches, so the message can list the allowed values
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, verbose: true });
const validators = new Map<string, ValidateFunction>();

/**
 * Validates a discovery section on its own (defaults filled in, unknown keys refused) and checks what a schema cannot
 * say (a port for A records, a TTL floor below its ceiling). The schema is chosen by `type` so that an error names the
 * one kind meant, not every branch of the union. Throws a ConfigError listing every problem; returns the value frozen.
 *
 * `path` is where the section sits in the config file, e.g. `upstreams.users.discovery`.
 */
export function parseDiscoveryConfig(value: unknown, path = 'discovery', file = 'config'): DiscoveryConfig {
  const issues = discoveryIssues(value, path);
  if (issues.length) throw new ConfigError(file, issues);
  return deepFreeze(value as DiscoveryConfig);
}

/** The problems of a discovery section (an empty list when it is valid); fills in defaults in place. */
export function discoveryIssues(value: unknown, path = 'discovery'): ConfigIssue[] {
  const type = (value as { type?: unknown } | null)?.type;
  if (typeof value !== 'object' || value === null || typeof type !== 'string' || !(type in SCHEMAS)) {
    return [{ path: `${path}.type`, message: `must be one of ${Object.keys(SCHEMAS).map((k) => `"${k}"`).join(', ')}` }];
  }
  let validate = validators.get(type);
  if (!validate) validators.set(type, (validate = ajv.compile(SCHEMAS[type as DiscoveryConfig['type']])));
  if (!validate(value)) {
    const errors = validate.errors ?? [];
    // A union that failed reports each branch as well; its one anyOf line is enough.
    const unions = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath));
    return errors.filter((e) => e.keyword === 'anyOf' || !unions.has(e.instancePath)).map((e) => toIssue(e, path));
  }
  return crossChecks(value as DiscoveryConfig, path);
}

function crossChecks(c: DiscoveryConfig, path: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  switch (c.type) {
    case 'dns':
      if (c.recordType === 'SRV' && c.port !== undefined) issues.push({ path: `${path}.port`, message: 'not allowed with recordType SRV', hint: 'SRV records carry the port' });
      if (c.recordType !== 'SRV' && c.port === undefined) issues.push({ path: `${path}.port`, message: `required with recordType ${c.recordType}`, hint: 'A and AAAA records carry no port' });
      if (c.minTtlSeconds > c.maxTtlSeconds) issues.push({ path: `${path}.minTtlSeconds`, message: `must not exceed maxTtlSeconds (${c.maxTtlSeconds})` });
      break;
    case 'consul':
      if (c.token !== undefined && c.tokenFile !== undefined) issues.push({ path: `${path}.token`, message: 'give token or tokenFile, not both' });
      if (c.retryMinMs > c.retryMaxMs) issues.push({ path: `${path}.retryMinMs`, message: `must not exceed retryMaxMs (${c.retryMaxMs})` });
      break;
    case 'kubernetes':
      if (c.retryMinMs > c.retryMaxMs) issues.push({ path: `${path}.retryMinMs`, message: `must not exceed retryMaxMs (${c.retryMaxMs})` });
      if (c.caFile !== undefined && !c.apiServer.startsWith('https:')) issues.push({ path: `${path}.caFile`, message: 'only used with an https apiServer' });
      break;
    case 'file':
      break;
  }
  return issues;
}

function toIssue(e: ErrorObject, path: string): ConfigIssue {
  const at = path + e.instancePath.replace(/\//g, '.');
  switch (e.keyword) {
    case 'additionalProperties':
      return { path: `${at}.${(e.params as { additionalProperty: string }).additionalProperty}`, message: 'unknown key' };
    case 'required':
      return { path: at, message: `missing required key "${(e.params as { missingProperty: string }).missingProperty}"` };
    case 'anyOf': {
      const allowed = (e.schema as { const?: unknown }[]).map((b) => b.const).filter((v) => v !== undefined);
      return { path: at, message: allowed.length ? `must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}` : 'matches none of the allowed forms' };
    }
    default:
      return { path: at, message: e.message ?? 'is invalid' };
  }
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object') {
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
    Object.freeze(v);
  }
  return v;
}

import type { Config } from '../config/schema.js';
import type { ConfigIssue } from '../config/errors.js';
import { normalizeConsumers } from './normalize.js';
import { buildConsumerTable } from './table.js';

/**
 * The consumer table of a config's own `consumers:` section, built at compile time so that `validate` reports every
 * problem with its path. Plain API keys are replaced by their digests in the config object here. The Gateway's
 * ConsumerService merges registry consumers in and stamps the generation before the plan goes to workers.
 */
export function compileConsumers(config: Config, issues: ConfigIssue[]): SharedArrayBuffer | null {
  const before = issues.length;
  const specs = normalizeConsumers(config.consumers ?? [], 'consumers', issues, { redact: true });
  const reg = config.consumerRegistry;
  if (reg && [reg.file, reg.url, reg.etcd].filter((v) => v !== undefined).length !== 1) {
    issues.push({ path: 'consumerRegistry', message: 'needs exactly one of "file", "url" or "etcd"' });
  }
  return issues.length > before ? null : buildConsumerTable(specs);
}

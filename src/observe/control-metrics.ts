import { readFileSync } from 'node:fs';
import type { PromWriter } from './prometheus.js';

export interface BuildInfo {
  version: string;
  /** the commit dist/ was built from (scripts/build.mjs writes dist/build-info.json), "unknown" without git */
  revision: string;
}

let build: BuildInfo | null = null;

/** package.json's version and the revision recorded at build time; read once. */
export function buildInfo(): BuildInfo {
  if (build !== null) return build;
  const read = (rel: string): Record<string, unknown> => {
    try {
      return JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as Record<string, unknown>;
    } catch {
      return {};
    }
  };
  // from dist/src/observe/: the package root is three levels up, dist/ two
  const pkg = read('../../../package.json');
  const built = read('../../build-info.json');
  build = { version: typeof pkg.version === 'string' ? pkg.version : 'unknown', revision: typeof built.revision === 'string' ? built.revision : 'unknown' };
  return build;
}

/** what a config change was: a file reload (SIGHUP, file watch, POST /reload), a config sent to the API, a rollback, new discovered nodes */
export const RELOAD_ACTIONS = ['reload', 'apply', 'rollback', 'discovery'] as const;
export type ReloadAction = (typeof RELOAD_ACTIONS)[number];

/**
 * Config changes as Prometheus sees them: outcomes by action, whether the last one succeeded, and when the config
 * in service was last applied (the start counts as the first success, as Prometheus's own reload metrics do).
 */
export class ReloadStats {
  readonly #counts = new Map<string, number>();
  lastSuccessful = true;
  lastSuccessAt = Date.now();

  record(action: ReloadAction, ok: boolean): void {
    const key = `${action}\u0000${ok ? 'success' : 'failure'}`;
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
    this.lastSuccessful = ok;
    if (ok) this.lastSuccessAt = Date.now();
  }

  render(out: PromWriter): void {
    out.help('nanogate_config_reloads_total', 'counter', 'config changes by action (reload, apply, rollback, discovery) and result (success, failure: the previous config kept serving)');
    for (const action of RELOAD_ACTIONS) {
      for (const result of ['success', 'failure']) {
        out.sample('nanogate_config_reloads_total', out.labels('action', action, 'result', result), this.#counts.get(`${action}\u0000${result}`) ?? 0);
      }
    }
    out.help('nanogate_config_last_reload_successful', 'gauge', '1 when the last config change was applied (or none was tried since the start), 0 when it was refused');
    out.sample('nanogate_config_last_reload_successful', '', this.lastSuccessful ? 1 : 0);
    out.help('nanogate_config_last_reload_success_timestamp_seconds', 'gauge', 'when the config in service was applied (the start, or the last successful change), unix seconds');
    out.sample('nanogate_config_last_reload_success_timestamp_seconds', '', Math.floor(this.lastSuccessAt / 1000));
  }
}

/** nanogate_build_info: 1, with the version, the revision and the Node.js version as labels */
export function renderBuildInfo(out: PromWriter): void {
  const b = buildInfo();
  out.help('nanogate_build_info', 'info', 'the running build: package version, source revision, Node.js version');
  out.sample('nanogate_build_info', out.labels('version', b.version, 'revision', b.revision, 'node_version', process.version), 1);
}

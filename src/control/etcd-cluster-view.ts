import type { EtcdNodeStatus } from './etcd-source.js';
import type { WatchState } from './etcd-watch.js';

/**
 * The cluster as `GET /etcd/nodes` and `nanogate status --cluster` show it: every node's report (etcd-source.ts) set
 * against the store. A node lags when it serves an older config or consumer registry than the newest one, its watch
 * is not ok, or its report is older than three of its check intervals (gone, hung, or cut off from etcd: `away`).
 *
 * The newest revision of a prefix is the newest mod_revision under it, or the newest any node applied if that is
 * higher: a delete leaves no key whose revision a range could show.
 */

export interface StoreRevisions {
  revision: number;
  config: number;
  consumers: number;
}

export interface ClusterNode {
  node: string;
  address: string | null;
  admin: string | null;
  configRevision: number;
  consumersRevision: number | null;
  /** when it last applied a config or consumer registry change (the newer of the two below) */
  appliedAt: string | null;
  configAppliedAt: string | null;
  consumersAppliedAt: string | null;
  /** the newest config revision it refused (its previous config serves), null if none since its last apply */
  refusedRevision: number | null;
  /** revisions behind the newest change: config, and consumers (null when the node reads no registry from etcd) */
  lag: { config: number; consumers: number | null };
  watch: WatchState;
  /** ms since the node last wrote its report */
  reportAgeMs: number;
  lagging: boolean;
}

export interface ClusterView {
  revision: number;
  config: number;
  consumers: number;
  nodes: ClusterNode[];
  lagging: number;
}

const WORST: readonly WatchState[] = ['ok', 'stalled', 'away'];
const worse = (a: WatchState, b: WatchState): WatchState => (WORST.indexOf(a) >= WORST.indexOf(b) ? a : b);

const newer = (a: string | null, b: string | null) => (a === null ? b : b === null ? a : a > b ? a : b);

export function clusterView(store: StoreRevisions, reports: readonly EtcdNodeStatus[], now = Date.now()): ClusterView {
  const config = Math.max(store.config, ...reports.map((r) => r.revision ?? 0));
  const consumers = Math.max(store.consumers, ...reports.map((r) => r.consumers?.revision ?? 0));
  const nodes = reports.map((r): ClusterNode => {
    const interval = r.checkIntervalMs ?? 5000;
    const age = Math.max(0, now - Date.parse(r.at));
    const stale = !(age <= 3 * interval);
    const watch = stale ? 'away' : worse(r.state ?? 'ok', r.consumers?.state ?? 'ok');
    const lag = { config: Math.max(0, config - (r.revision ?? 0)), consumers: r.consumers ? Math.max(0, consumers - r.consumers.revision) : null };
    return {
      node: r.node,
      address: r.address ?? null,
      admin: r.admin ?? null,
      configRevision: r.revision ?? 0,
      consumersRevision: r.consumers?.revision ?? null,
      appliedAt: newer(r.appliedAt ?? null, r.consumers?.appliedAt ?? null),
      configAppliedAt: r.appliedAt ?? null,
      consumersAppliedAt: r.consumers?.appliedAt ?? null,
      refusedRevision: r.refusedRevision ?? null,
      lag,
      watch,
      reportAgeMs: age,
      lagging: lag.config > 0 || (lag.consumers ?? 0) > 0 || watch !== 'ok',
    };
  });
  nodes.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  return { revision: store.revision, config, consumers, nodes, lagging: nodes.filter((n) => n.lagging).length };
}

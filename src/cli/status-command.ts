import { EXIT } from './args.js';
import { AdminUnavailable, adminRequest, adminTarget, unexpected } from './admin-client.js';

/**
 * `nanogate status [--cluster] [--json]`: a node's own status (GET /status), or with --cluster every node of its etcd
 * cluster (GET /etcd/nodes): id, address, config and consumer revisions, last apply, lag behind the store and watch
 * state, lagging nodes marked. Exit 0 when every node is in step, 1 when one lags (so a script or probe can act on
 * it), 4 when the admin API cannot be reached or has no etcd.
 */

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

interface Node {
  node: string;
  address: string | null;
  configRevision: number;
  consumersRevision: number | null;
  appliedAt: string | null;
  refusedRevision: number | null;
  lag: { config: number; consumers: number | null };
  watch: string;
  reportAgeMs: number;
  lagging: boolean;
}

export async function status(values: Values, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const target = adminTarget(values, env);
  try {
    if (!values.cluster) {
      const answer = await adminRequest(target, 'GET', '/status', { timeoutMs: 10_000 });
      if (answer.status !== 200) throw unexpected(answer, 'GET /status');
      if (values.json) console.log(JSON.stringify(answer.body, null, 2));
      else console.log(nodeSummary(answer.body));
      return EXIT.ok;
    }
    const answer = await adminRequest(target, 'GET', '/etcd/nodes', { timeoutMs: 10_000 });
    if (answer.status !== 200) throw unexpected(answer, 'GET /etcd/nodes');
    const view = answer.body as { prefix: string; revision: number; config: number; consumers: number; nodes: Node[]; lagging: number };
    if (values.json) console.log(JSON.stringify(view, null, 2));
    else console.log(clusterTable(view));
    return view.lagging > 0 ? EXIT.config : EXIT.ok;
  } catch (err) {
    if (!(err instanceof AdminUnavailable)) throw err;
    console.error(`nanogate status: ${err.message}`);
    return EXIT.admin;
  }
}

function nodeSummary(s: any): string {
  const lines = [`version ${s.version}, ${s.ready ? 'ready' : 'not ready'}, port ${s.port}, ${s.workers?.length ?? 0} worker(s)`];
  if (s.etcd) {
    const e = s.etcd;
    lines.push(`etcd ${e.node} (${e.prefix}): watch ${e.state ?? (e.up ? 'ok' : 'away')}, config revision ${e.appliedRevision}${e.refusedRevision ? `, refused ${e.refusedRevision}` : ''}`
      + (e.consumers ? `, consumers revision ${e.consumers.revision} (watch ${e.consumers.state})` : ''));
  }
  return lines.join('\n');
}

function clusterTable(view: { prefix: string; revision: number; config: number; consumers: number; nodes: Node[]; lagging: number }): string {
  const head = ['NODE', 'ADDRESS', 'CONFIG', 'CONSUMERS', 'APPLIED', 'LAG', 'WATCH', ''];
  const rows = view.nodes.map((n) => [
    n.node,
    n.address ?? '-',
    String(n.configRevision) + (n.refusedRevision ? ` (refused ${n.refusedRevision})` : ''),
    n.consumersRevision === null ? '-' : String(n.consumersRevision),
    n.appliedAt ?? '-',
    n.lag.consumers === null ? String(n.lag.config) : `${n.lag.config}/${n.lag.consumers}`,
    n.watch === 'away' ? `away (${Math.round(n.reportAgeMs / 1000)} s)` : n.watch,
    n.lagging ? 'LAGGING' : '',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  const title = `cluster ${view.prefix}: store revision ${view.revision}, newest config ${view.config}, newest consumers ${view.consumers}; `
    + `${view.nodes.length} node(s), ${view.lagging} lagging`;
  return [title, line(head), ...rows.map(line)].join('\n');
}

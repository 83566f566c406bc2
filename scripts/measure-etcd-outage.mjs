// The etcd outage figures of docs/etcd.md: three gateway processes sharing their config through a real etcd on
// loopback, closed-loop requests to all three while etcd is stopped for --seconds (default 30) and started again,
// then one config change. Prints the requests sent and failed during the outage, how long each node took to say
// etcd was away and back, and how long the change after the return took to reach all three. Run after `npm run build`:
//   node scripts/measure-etcd-outage.mjs [--seconds 30]
import { parseArgs } from 'node:util';
import { startEtcd } from '../dist/test/helpers/etcd.js';
import { startGatewayProcess } from '../dist/test/helpers/gateway-process.js';
import { startUpstream } from '../dist/test/helpers/upstream.js';
import { EtcdClient } from '../dist/src/control/etcd-client.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '30' } } });
const seconds = Number(values.seconds);
const shared = (port, mark) => `upstreams:\n  app: { nodes: [{ url: "http://127.0.0.1:${port}" }] }\nroutes:\n  - name: app\n    match: { prefix: / }\n    upstream: app\n    policies:\n      headers:\n        response: { set: { x-config: "${mark}" } }\n`;
const KEY = '/chaos/config/shared.yaml';

const etcd = await startEtcd();
const upstream = await startUpstream();
const client = new EtcdClient([etcd.url]);
const nodes = [];
try {
  await client.txn([{ key: KEY, value: shared(upstream.port, 'before') }], [], 2000);
  for (let i = 0; i < 3; i++) nodes.push(await startGatewayProcess('', { args: ['--etcd', etcd.url, '--etcd-prefix', '/chaos/', '--etcd-node', `n${i}`] }));
  const status = async (n) => (await n.status()).etcd;
  let running = true, sent = 0, failed = 0, wrong = 0;
  const load = (async () => {
    while (running) {
      const n = nodes[sent++ % 3];
      try {
        const r = await fetch(`${n.url}/x`);
        await r.arrayBuffer();
        if (r.status !== 200) failed++;
        else if (r.headers.get('x-config') !== 'before') wrong++;
      } catch {
        failed++;
      }
    }
  })();
  const until = async (pred) => {
    const t0 = performance.now();
    return Promise.all(nodes.map(async (n) => {
      while (!pred(await status(n))) await new Promise((r) => setTimeout(r, 10));
      return Math.round(performance.now() - t0);
    }));
  };
  await etcd.stop();
  const sawDown = await until((s) => !s.up);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  await etcd.start();
  const sawUp = await until((s) => s.up);
  running = false;
  await load;
  const t0 = performance.now();
  const revision = await client.txn([{ key: KEY, value: shared(upstream.port, 'after') }], [], 2000);
  await until((s) => s.appliedRevision >= revision);
  const converge = Math.round(performance.now() - t0);
  console.log(`etcd stopped for ${seconds} s under closed-loop load on 3 nodes (1 worker each)`);
  console.log(`requests: ${sent} sent, ${failed} failed, ${wrong} served another config`);
  console.log(`nodes saw etcd away after (ms): ${sawDown.join(', ')}; back after restart (ms): ${sawUp.join(', ')}`);
  console.log(`first change after the return applied on all 3 nodes in ${converge} ms`);
  const restarts = await Promise.all(nodes.map(async (n) => (await status(n)).watchRestarts));
  console.log(`watch restarts per node: ${restarts.join(', ')}`);
} finally {
  for (const n of nodes) await n.stop();
  client.close();
  await upstream.close();
  await etcd.close();
}

/**
 * Route lookup (Runtime.match: radix walk + method check) with 10, 1,000 and 10,000 routes, a third each exact,
 * :param and prefix routes (the same set as the routes-10k macro scenario), for hits of each kind and for misses.
 * This is the per-request cost of routing; it should grow with path depth, not with the number of routes.
 */
import { defineSuite, consume, type MicroCase } from '../../src/bench/micro-api.js';
import { routeSet, routeSetPaths } from '../../src/bench/gen-config.js';
import { loadConfigText } from '../../src/config/load.js';
import { compileConfig } from '../../src/config/compile.js';
import { Runtime, type MatchInput } from '../../src/worker/runtime.js';

const SIZES = [10, 1000, 10000];

function runtimeFor(count: number): Runtime {
  const config = {
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    // Never contacted: matching does not touch the upstream.
    upstreams: { origin: { nodes: [{ url: 'http://127.0.0.1:9' }] } },
    routes: routeSet(count),
  };
  const { plan } = compileConfig(loadConfigText(JSON.stringify(config), `routes-${count}.json`, {}), `routes-${count}.json`);
  return new Runtime(plan, null);
}

let runtimes: Runtime[] = [];

export default defineSuite({
  name: 'route-match',
  description: 'Runtime.match(host, path, input) at 10 / 1,000 / 10,000 mixed routes; hits by kind, and misses',
  cases() {
    const cases: MicroCase[] = [];
    runtimes = [];
    for (const n of SIZES) {
      const rt = runtimeFor(n);
      runtimes.push(rt);
      const paths = routeSetPaths(n);
      const input: MatchInput = { method: 'GET', headerNames: [], headerValues: [], headerCount: 0, query: '' };
      for (const [kind, list] of Object.entries(paths) as Array<[string, string[]]>) {
        // Check the inputs once, so a broken route set cannot be measured as fast misses.
        for (const p of list) {
          const hit = rt.match('', p, input) !== null;
          if (hit !== (kind !== 'miss')) throw new Error(`route-match: ${p} ${hit ? 'matched' : 'missed'} with ${n} routes`);
        }
        const reps = 64;
        cases.push({
          name: `${n} routes: ${kind === 'miss' ? 'miss' : `${kind} hit`}`,
          ops: reps * list.length,
          fn: () => {
            for (let r = 0; r < reps; r++) for (let i = 0; i < list.length; i++) consume(rt.match('', list[i], input));
          },
        });
      }
    }
    return cases;
  },
  teardown() {
    for (const rt of runtimes) for (const u of rt.upstreams) for (const p of u.pools) p.close();
    runtimes = [];
  },
});

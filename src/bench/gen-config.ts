/**
 * Gateway configs generated for a run (a scenario's `gateway.generate`), and the route sets of the route-match
 * micro-benchmark. A generator returns a plain config object; add a kind to GENERATORS to make it available to
 * scenario files.
 */

export interface GenerateContext {
  /** the upstream every generated route points to */
  upstreamUrl: string;
  /** the listen port chosen for the gateway */
  port: number;
}

type Generator = (options: Record<string, unknown>, ctx: GenerateContext) => Record<string, unknown>;

/**
 * `count` routes to one upstream, in three equal kinds, so that a lookup exercises every part of the router:
 *   i % 3 == 0   exact      /svc<i>/items            GET only
 *   i % 3 == 1   param      /svc<i>/users/:id        GET only
 *   i % 3 == 2   prefix     /pfx<i>                  any method
 * plus a final catch-all prefix "/" when `catchAll` is true (then nothing misses).
 */
export function routeSet(count: number, catchAll = false): Array<Record<string, unknown>> {
  const routes: Array<Record<string, unknown>> = [];
  for (let i = 0; i < count; i++) {
    switch (i % 3) {
      case 0:
        routes.push({ name: `r${i}`, match: { path: `/svc${i}/items`, methods: ['GET'] }, upstream: 'origin' });
        break;
      case 1:
        routes.push({ name: `r${i}`, match: { path: `/svc${i}/users/:id`, methods: ['GET'] }, upstream: 'origin' });
        break;
      default:
        routes.push({ name: `r${i}`, match: { prefix: `/pfx${i}` }, upstream: 'origin' });
    }
  }
  if (catchAll) routes.push({ name: 'catch-all', match: { prefix: '/' }, upstream: 'origin' });
  return routes;
}

/** Request paths that hit routes of routeSet(count): the last route of each kind, and some in the middle. */
export function routeSetPaths(count: number): { exact: string[]; param: string[]; prefix: string[]; miss: string[] } {
  const last = (kind: number, from: number): number => {
    for (let i = from; i >= 0; i--) if (i % 3 === kind) return i;
    return -1;
  };
  const picks = (kind: number): number[] => [...new Set([last(kind, count - 1), last(kind, Math.floor(count / 2)), last(kind, Math.floor(count / 7))])].filter((i) => i >= 0);
  return {
    exact: picks(0).map((i) => `/svc${i}/items`),
    param: picks(1).map((i) => `/svc${i}/users/${1000 + i}`),
    prefix: picks(2).map((i) => `/pfx${i}/a/b`),
    miss: [`/svc${count + 3}/items`, '/nothing/here', `/svc1/orders/7`],
  };
}

export const GENERATORS: Record<string, Generator> = {
  routes(options, ctx) {
    const count = Number(options.count ?? 10000);
    if (!Number.isInteger(count) || count < 1 || count > 1_000_000) throw new Error('generate routes: "count" must be a whole number from 1 to 1,000,000');
    return {
      listen: { host: '127.0.0.1', port: ctx.port },
      admin: { host: '127.0.0.1', port: 0 },
      upstreams: { origin: { nodes: [{ url: ctx.upstreamUrl }] } },
      routes: routeSet(count, options.catchAll === true),
    };
  },
};

export function generateConfig(kind: string, options: Record<string, unknown>, ctx: GenerateContext): Record<string, unknown> {
  const gen = GENERATORS[kind];
  if (!gen) throw new Error(`unknown config generator "${kind}" (known: ${Object.keys(GENERATORS).join(', ')})`);
  return gen(options, ctx);
}

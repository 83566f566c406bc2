/**
 * Cost of one rate-limit check on the request path (tinybench), per algorithm and key kind:
 *   - hot key: a fixed slot (key: route) and one run-time key hit again and again (key: ip, one client)
 *   - table key: 10,000 distinct client addresses in turn (hash, probe, compare-and-swap on a cold cache line)
 *   - the whole access + response hook of the policy (outcome object, headers) for one limit
 *   - a cluster check served from the local lease (what most cluster requests cost)
 * Run: npm run build && node dist/bench/micro/rate-limit.js
 */
import { Bench } from 'tinybench';
import { rateLimitPolicy, type CheckData } from '../../src/policies/rate-limit/index.js';
import { createLimiter, type Limiter } from '../../src/policies/rate-limit/limiter.js';
import { CL_LEASE, LEASE_MASK, Region } from '../../src/policies/rate-limit/layout.js';
import { nowUs, leaseAdd } from '../../src/policies/rate-limit/store-shared.js';
import { SharedRegistry } from '../../src/shared/registry.js';
import { REDIS_UP, STATUS_BYTES } from '../../src/policies/rate-limit/layout.js';
import type { PolicyContext } from '../../src/pipeline/policy.js';

const OPS = 64;
const KEYS = 10_000;

/** Just what the rate-limit hook reads and writes of a request. */
class FakeContext {
  clientIp = '10.0.0.1';
  consumerId: string | null = null;
  consumerIndex = -1;
  consumerPlan: string | null = null;
  slots: unknown[] = [undefined];
  headers = 0;
  aborted = false;
  header(): string | undefined {
    return undefined;
  }
  addResponseHeader(): void {
    this.headers++;
  }
  respondProblem(): void {}
  resume(): void {}
}

const shared = new SharedRegistry();
function compile(policy: unknown, routeName = 'bench'): ReturnType<NonNullable<typeof rateLimitPolicy.compile>> {
  const config = { tableSize: 16384, headers: { draft: true, legacy: true }, warnAt: [0.8, 0.9], onRedisDown: 'failOpen', limits: [], ...(policy as object) };
  for (const l of (config as { limits: Record<string, unknown>[] }).limits) {
    l.algorithm ??= 'tokenBucket';
    l.per ??= 'second';
    l.scope ??= 'local';
  }
  return rateLimitPolicy.compile!(config as never, {
    routeName,
    where: `routes[0].policies.rateLimit`,
    shared: (k, b) => shared.get(k, b),
    config: { redis: {} },
  });
}

function limiterOf(policy: unknown, services: Record<string, unknown> = {}): Limiter {
  const data = compile(policy);
  return createLimiter(data.base.limits[0] as CheckData, (services.rateLimit as never) ?? null, true);
}

const ips = Array.from({ length: KEYS }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
// Generous rates: the cases measure admissions, not refusals.
const big = { rate: 1_000_000, burst: 1_000_000 };

const tbRoute = limiterOf({ limits: [{ key: 'route', ...big }] });
const tbIp = limiterOf({ limits: [{ key: 'ip', ...big }] });
const swRoute = limiterOf({ limits: [{ key: 'route', algorithm: 'slidingWindow', rate: 1_000_000 }] });
const swIp = limiterOf({ limits: [{ key: 'ip', algorithm: 'slidingWindow', rate: 1_000_000 }] });
const quotaIp = (() => {
  const d = compile({ quota: { per: 'day', limit: 1_000_000_000, key: 'ip', scope: 'local' } });
  return createLimiter(d.base.quota as CheckData, null, true);
})();

// A cluster limit whose lease is kept full: the common case of a cluster check (no Redis round trip).
const status = new SharedArrayBuffer(STATUS_BYTES);
new Int32Array(status)[0] = REDIS_UP;
const cluster = limiterOf({ limits: [{ key: 'route', ...big, scope: 'cluster', lease: 1000 }] }, { rateLimit: { channel: 'bench-unused', status } });
const clusterRegion = new Region(cluster.data.region);

const hookData = compile({ limits: [{ key: 'ip', rate: 1_000_000, burst: 1_000_000 }] });
const hooks = rateLimitPolicy.create(hookData, { workerIndex: 0, slot: 0, routeName: 'bench', services: {} });

const ctx = new FakeContext();
const pctx = ctx as unknown as PolicyContext;
let sink = 0;
let k = 0;

function hot(lim: Limiter) {
  return () => {
    ctx.clientIp = '10.0.0.1';
    for (let i = 0; i < OPS; i++) sink += lim.check(pctx, nowUs());
  };
}
function table(lim: Limiter) {
  return () => {
    for (let i = 0; i < OPS; i++) {
      ctx.clientIp = ips[k++ % KEYS];
      sink += lim.check(pctx, nowUs());
    }
  };
}

const bench = new Bench({ time: 700, warmupTime: 200 });
bench
  .add('nowUs() alone', () => {
    for (let i = 0; i < OPS; i++) sink += nowUs();
  })
  .add('tokenBucket, key route (fixed slot)', hot(tbRoute))
  .add('tokenBucket, key ip, hot key', hot(tbIp))
  .add(`tokenBucket, key ip, ${KEYS} keys in turn`, table(tbIp))
  .add('slidingWindow, key route (fixed slot)', hot(swRoute))
  .add('slidingWindow, key ip, hot key', hot(swIp))
  .add(`slidingWindow, key ip, ${KEYS} keys in turn`, table(swIp))
  .add(`quota per day, key ip, ${KEYS} keys in turn`, table(quotaIp))
  .add('cluster tokenBucket, from the local lease', () => {
    leaseAdd(clusterRegion.i32, clusterRegion.base32(0) + CL_LEASE, 0, LEASE_MASK);
    for (let i = 0; i < OPS; i++) sink += cluster.check(pctx, nowUs());
  })
  .add('policy hooks (access + response), 1 limit, key ip, hot key', () => {
    ctx.clientIp = '10.0.0.1';
    for (let i = 0; i < OPS; i++) {
      sink += hooks.access!(pctx) as number;
      hooks.response!(pctx);
    }
  });

await bench.run();
const rows = bench.tasks.map((t) => {
  const r = t.result as unknown as { latency: { mean: number; rme: number } };
  return { case: t.name, 'ns/check': ((r.latency.mean * 1e6) / OPS).toFixed(1), '±%': r.latency.rme.toFixed(1) };
});
console.table(rows);
if (sink === 42) console.log('');

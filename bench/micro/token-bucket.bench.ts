/**
 * The shared-memory token bucket check (Limiter.check: key build, hash, table probe, compare-and-swap on the TAT
 * cell) on a fixed slot (key: route) and on one hot run-time key (key: ip, one client), as in rate-limit.ts.
 * The clock is a counter that advances one refill interval per check, so every check is an admission (the costlier
 * outcome, with the CAS) and the clock read itself (nowUs) is not part of the figure.
 */
import { defineSuite, consume, type MicroCase } from '../../src/bench/micro-api.js';
import { rateLimitPolicy, type CheckData } from '../../src/policies/rate-limit/index.js';
import { ADMIT, createLimiter, type Limiter } from '../../src/policies/rate-limit/limiter.js';
import { nowUs } from '../../src/policies/rate-limit/store-shared.js';
import { SharedRegistry } from '../../src/shared/registry.js';
import type { PolicyContext } from '../../src/pipeline/policy.js';

/** Just what the check reads of a request. */
class FakeContext {
  clientIp = '10.0.0.1';
  consumerId: string | null = null;
  consumerIndex = -1;
  consumerPlan: string | null = null;
  header(): string | undefined {
    return undefined;
  }
}

function limiter(shared: SharedRegistry, key: 'route' | 'ip'): Limiter {
  // Generous rate (1,000,000/s, the maximum): one token per µs.
  const config = { tableSize: 16384, headers: { draft: true, legacy: true }, warnAt: [0.8, 0.9], onRedisDown: 'failOpen', limits: [{ key, rate: 1_000_000, burst: 1_000_000, algorithm: 'tokenBucket', per: 'second', scope: 'local' }] };
  const data = rateLimitPolicy.compile!(config as never, {
    routeName: `bench-${key}`,
    where: 'routes[0].policies.rateLimit',
    shared: (k, b) => shared.get(k, b),
    config: { redis: {} },
  });
  return createLimiter(data.base.limits[0] as CheckData, null, true);
}

export default defineSuite({
  name: 'token-bucket',
  description: 'shared-memory tokenBucket Limiter.check, fixed slot and one hot ip key; admissions only, clock read excluded',
  cases() {
    const shared = new SharedRegistry();
    const pctx = new FakeContext() as unknown as PolicyContext;
    const reps = 64;
    let now = nowUs();
    const make = (name: string, lim: Limiter): MicroCase => {
      const step = lim.data.intervalUs;
      for (let i = 0; i < reps; i++) if (lim.check(pctx, (now += step)) !== ADMIT) throw new Error(`token-bucket: ${name} refused`);
      return {
        name,
        ops: reps,
        fn: () => {
          let admitted = 0;
          for (let i = 0; i < reps; i++) admitted += lim.check(pctx, (now += step)) === ADMIT ? 1 : 0;
          if (admitted !== reps) throw new Error(`token-bucket: ${name} refused`);
          consume(admitted);
        },
      };
    };
    return [make('fixed slot (key route)', limiter(shared, 'route')), make('one hot ip (key ip)', limiter(shared, 'ip'))];
  },
});

/**
 * Cost per request of the traffic split's decision (src/traffic/split.ts TrafficSplit.pick), 2 versions, over a
 * real shared region (the counter is an Atomics.add on a SharedArrayBuffer, the generation an Atomics.load): by
 * the schedule alone, sticky by header (a hash of the value), sticky by consumer, a targeting rule that does not
 * match before the schedule, and the affinity cookie of a returning client (a verified-cookie map lookup; the
 * first visit's HMAC is the last case). A route without `traffic` pays none of this: Exchange.start tests
 * `route.split !== null` once.
 */
import { createHmac } from 'node:crypto';
import { defineSuite, consume, type MicroCase } from '../../src/bench/micro-api.js';
import { SplitState } from '../../src/traffic/split-state.js';
import { TrafficSplit, type SplitRequest } from '../../src/traffic/split.js';
import type { PlanTraffic } from '../../src/traffic/compile.js';
import { applyConfiguredWeights } from '../../src/traffic/compile.js';
import { weightsHash } from '../../src/traffic/split-state.js';

const REPS = 64;

class Req implements SplitRequest {
  clientIp = '203.0.113.77';
  consumerId: string | null = 'consumer-12345';
  consumerIndex = 3;
  consumerPlan: string | null = 'gold';
  roles: readonly string[] | null = ['ops'];
  cookie: string | undefined = undefined;
  user = 'user-8f14e45f';
  setCookies = 0;
  header(name: string): string | undefined {
    return name === 'cookie' ? this.cookie : name === 'x-user' ? this.user : undefined;
  }
  addResponseHeader(_name: string, _value: string): void {
    this.setCookies++;
  }
}

function traffic(extra: Partial<PlanTraffic>): PlanTraffic {
  const versions = [{ name: 'stable', upstream: 0 }, { name: 'canary', upstream: 1 }];
  const weights = [950, 50];
  const region = new SharedArrayBuffer(SplitState.bytes(2));
  const t: PlanTraffic = { regionKey: 'bench', region, versions, weights, configHash: weightsHash(weights), sticky: null, targeting: null, affinity: null, ...extra };
  applyConfiguredWeights(t);
  return t;
}

function pickCase(name: string, split: TrafficSplit, req: Req, each?: (j: number) => void): MicroCase {
  return {
    name,
    ops: REPS,
    fn: () => {
      let s = 0;
      for (let j = 0; j < REPS; j++) {
        if (each) each(j);
        s += split.pick(req);
      }
      consume(s);
    },
  };
}

export default defineSuite({
  name: 'traffic-split',
  description: 'ns per split decision, 2 versions: schedule, sticky header/consumer, targeting miss, affinity cookie (returning and first visit)',
  cases() {
    const req = new Req();
    const users = Array.from({ length: 1024 }, (_, i) => `user-${i.toString(16)}-8f14e45f`);
    const byHeader = new TrafficSplit(traffic({ sticky: { by: 'header', name: 'x-user' } }), 'r', [0, 1], null, false);
    const byConsumer = new TrafficSplit(traffic({ sticky: { by: 'consumer', name: null } }), 'r', [0, 1], null, false);
    const targeted = new TrafficSplit(traffic({ targeting: [{ version: 1, kind: 'header', name: 'x-canary-version', value: 'v2.1.0' }, { version: 1, kind: 'consumer', ids: null, plans: ['beta'], roles: null, subscription: null }] }), 'r', [0, 1], null, false);
    const affinity = { cookie: 'ng-version', ttlSeconds: 3600, secret: 'bench-secret-0123456789abcdef' };
    const affine = new TrafficSplit(traffic({ affinity }), 'r', [0, 1], null, false);
    // a returning client's cookie, as the gateway set it
    const first = new Req();
    let setCookie = '';
    first.addResponseHeader = (_n: string, v: string) => void (setCookie = v);
    affine.pick(first);
    const returning = new Req();
    returning.cookie = `theme=dark; ${setCookie.slice(0, setCookie.indexOf(';'))}; lang=en`;
    // cookies this worker has not verified yet (more than its verified-cookie map keeps): an HMAC each
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const unseen = Array.from({ length: 16_384 }, (_, i) => {
      const v = i & 1 ? 'canary' : 'stable';
      const sig = createHmac('sha256', affinity.secret).update(`r\n${v}\n${exp + (i >> 1)}`).digest('base64url');
      return `ng-version=${v}.${exp + (i >> 1)}.${sig}`;
    });
    const other = new Req();
    let k = 0;
    let u = 0;
    return [
      pickCase('schedule (shared counter + 1000-slot table)', new TrafficSplit(traffic({}), 'r', [0, 1], null, false), req),
      pickCase('sticky by header (FNV-1a of the value, range table)', byHeader, req, (j) => (req.user = users[(k++ + j) & 1023])),
      pickCase('sticky by consumer', byConsumer, req),
      pickCase('two targeting rules that do not match, then the schedule', targeted, req),
      pickCase('affinity cookie of a returning client (verified-cookie map hit)', affine, returning),
      pickCase('affinity cookie this worker has not seen (verified by HMAC-SHA256)', affine, other, () => (other.cookie = unseen[u++ & 16_383])),
      {
        // what a first visit adds: one signature for its Set-Cookie (reused by assignments in the same second)
        name: 'HMAC-SHA256 of one affinity cookie value',
        fn: () => consume(createHmac('sha256', affinity.secret).update(`r\ncanary\n${exp + (k++ & 1023)}`).digest('base64url')),
      },
    ];
  },
});

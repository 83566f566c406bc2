/**
 * Consumer lookup by API-key digest (ConsumerTable.byKeyDigest: probe + constant-time compare) in a table of
 * 100,000 consumers, and the cached API-key path: resolveApiKey on a key this worker has verified before, and the
 * whole auth hook (apiKey) for such a key, as in auth-api-key.ts.
 */
import { createHash } from 'node:crypto';
import { defineSuite, consume } from '../../src/bench/micro-api.js';
import { authPolicy } from '../../src/policies/auth/index.js';
import { resolveApiKey } from '../../src/policies/auth/api-key.js';
import { buildConsumerTable, ConsumerTable, type ConsumerSpec } from '../../src/identity/table.js';
import { consumerLookup, CONSUMERS_SERVICE } from '../../src/identity/consumers.js';
import type { CompileContext, PolicyContext, PolicyEnv } from '../../src/pipeline/policy.js';
import { BenchContext } from './bench-context.js';

const N = 100_000;
const WARM = 1000;
const keyOf = (i: number) => `key-${i}-${'x'.repeat(24)}`;
const digest = (s: string) => createHash('sha256').update(s).digest();


export default defineSuite({
  name: 'consumer-lookup',
  description: `API-key digest lookup in ${N.toLocaleString('en-US')} consumers; resolveApiKey and the apiKey auth hook on cached keys`,
  cases() {
    const specs: ConsumerSpec[] = [];
    const digests: Buffer[] = [];
    for (let i = 0; i < N; i++) {
      const d = digest(keyOf(i));
      digests.push(d);
      specs.push({ id: `consumer-${i}`, plan: i % 2 ? 'gold' : 'free', keys: [d], jwt: [], subscriptions: [{ api: 'orders', environment: null }], scopes: ['orders:read'], roles: [], allowIps: [] });
    }
    const sab = buildConsumerTable(specs, 1);
    const services: Record<string, unknown> = { [CONSUMERS_SERVICE]: sab };
    const table = new ConsumerTable(sab);
    const lookup = consumerLookup(services)!;
    const cc = { routeName: 'orders', where: 'policies.auth', shared: () => new SharedArrayBuffer(8), config: {} } as CompileContext;
    const env: PolicyEnv = { workerIndex: 0, slot: 0, routeName: 'orders', services };
    const hook = authPolicy.create(authPolicy.compile!({ methods: { apiKey: {} }, anonymous: false, hideCredentials: false, realm: 'bench' }, cc), env);

    // Probe inputs: 1,024 digests spread over the table, each checked to hit its own consumer.
    const probe = Array.from({ length: 1024 }, (_, i) => (i * 97) % N);
    for (const i of probe) if (table.byKeyDigest(digests[i]) !== i) throw new Error(`consumer-lookup: digest ${i} not found`);
    const probeDigests = probe.map((i) => digests[i]);
    // Warm keys: a working set of 1,000 consumers verified once (the per-worker cache holds 16,384).
    const warmKeys = Array.from({ length: WARM }, (_, i) => keyOf(i * 97));
    const ctx = new BenchContext('x-api-key');
    const pctx = ctx as unknown as PolicyContext;
    for (const k of warmKeys) {
      ctx.use(k);
      if (hook.access!(pctx) !== 0 || ctx.consumerId === null) throw new Error('consumer-lookup: warm-up failed');
    }
    let p = 0;
    let w = 0;
    const reps = 16;
    return [
      {
        name: `table probe by key digest, ${N} consumers`,
        ops: reps,
        fn: () => {
          for (let i = 0; i < reps; i++) consume(table.byKeyDigest(probeDigests[p++ & 1023]));
        },
      },
      {
        name: 'resolveApiKey, cache hit',
        ops: reps,
        fn: () => {
          for (let i = 0; i < reps; i++) consume(resolveApiKey(lookup, warmKeys[w++ % WARM]));
        },
      },
      {
        name: 'auth hook (apiKey), cache hit',
        ops: reps,
        fn: () => {
          for (let i = 0; i < reps; i++) {
            ctx.use(warmKeys[w++ % WARM]);
            consume(hook.access!(pctx) + ctx.consumerIndex);
          }
        },
      },
    ];
  },
});

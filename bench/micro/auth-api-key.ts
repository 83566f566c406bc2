/**
 * Per-request cost of API-key authentication, each case isolated (tinybench), against a table of 100,000 consumers.
 *
 *   npx tsc -p . ; node dist/bench/micro/auth-api-key.js
 *
 * Cases:
 *   - the auth hook (apiKey, identity headers on and off) with the key already verified by this worker: what a
 *     repeat request pays;
 *   - SHA-256 of the key + table probe: what the first request with a key pays (and every request with an unknown key);
 *   - the table probe alone (digest given), and the digest alone, to split the above.
 * The context is a stand-in with the worker Exchange's header lookup and upstream-header string building, so the
 * figures are the policy's own cost.
 */
import * as crypto from 'node:crypto';
import { createHash } from 'node:crypto';
import { Bench } from 'tinybench';
import { authPolicy } from '../../src/policies/auth/index.js';
import { resolveApiKey } from '../../src/policies/auth/api-key.js';
import { buildConsumerTable, ConsumerTable, type ConsumerSpec } from '../../src/identity/table.js';
import { consumerLookup, CONSUMERS_SERVICE } from '../../src/identity/consumers.js';
import type { CompileContext, PolicyContext, PolicyEnv, PolicyHooks } from '../../src/pipeline/policy.js';
import { BenchContext } from './bench-context.js';

const N = 100_000;
const oneShot = (s: string): Buffer => (crypto as unknown as { hash(a: string, d: string, e: 'buffer'): Buffer }).hash('sha256', s, 'buffer');
const keyOf = (i: number) => `key-${i}-${'x'.repeat(24)}`;
const digest = (s: string) => createHash('sha256').update(s).digest();


const specs: ConsumerSpec[] = [];
for (let i = 0; i < N; i++) {
  specs.push({
    id: `consumer-${i}`,
    plan: i % 2 ? 'gold' : 'free',
    keys: [digest(keyOf(i))],
    jwt: [],
    subscriptions: [{ api: 'orders', environment: null }],
    scopes: ['orders:read'],
    roles: [],
    allowIps: [],
  });
}
const sab = buildConsumerTable(specs, 1);
const services: Record<string, unknown> = { [CONSUMERS_SERVICE]: sab };
const table = new ConsumerTable(sab);
const lookup = consumerLookup(services)!;

function hook(identityHeaders: Record<string, string> | undefined): PolicyHooks {
  const cc = { routeName: 'orders', where: 'policies.auth', shared: () => new SharedArrayBuffer(8), config: {} } as CompileContext;
  const data = authPolicy.compile!({ methods: { apiKey: {} }, anonymous: false, hideCredentials: false, realm: 'bench', identityHeaders }, cc);
  const env: PolicyEnv = { workerIndex: 0, slot: 0, routeName: 'orders', services };
  return authPolicy.create(data, env);
}
const plainHook = hook(undefined);
const identityHook = hook({ consumerId: 'X-Consumer-Id', plan: 'X-Consumer-Plan', scopes: 'X-Scopes' });

// Warm keys: a working set of 1,000 consumers verified once (the per-worker cache holds 16,384).
const WARM = 1000;
const warmKeys = Array.from({ length: WARM }, (_, i) => keyOf(i * 97));
const ctx = new BenchContext('x-api-key');
for (const k of warmKeys) {
  ctx.use(k);
  if (plainHook.access!(ctx as unknown as PolicyContext) !== 0 || ctx.consumerId === null) throw new Error('warm-up failed');
}
// Cold keys: never the same twice within a run, so every one is hashed and probed.
const coldKeys = Array.from({ length: N }, (_, i) => keyOf(i));
const coldDigests = coldKeys.map(digest);
let cold = 0;
let warm = 0;
let sink = 0;

const bench = new Bench({ time: 1000, warmup: true });
bench
  .add('auth hook, key verified before (cache hit), no identity headers', () => {
    ctx.use(warmKeys[warm++ % WARM]);
    sink += plainHook.access!(ctx as unknown as PolicyContext) + ctx.consumerIndex;
  })
  .add('auth hook, key verified before, 3 identity headers set', () => {
    ctx.use(warmKeys[warm++ % WARM]);
    sink += identityHook.access!(ctx as unknown as PolicyContext) + ctx.upstreamExtra.length;
  })
  .add('auth hook, unknown key (digest + probe, 401 prepared)', () => {
    ctx.use('unknown-key-' + (cold++ % 1000) + 'zzzzzzzzzzzzzzzz');
    sink += plainHook.access!(ctx as unknown as PolicyContext);
  })
  .add('resolveApiKey, cache hit', () => {
    sink += resolveApiKey(lookup, warmKeys[warm++ % WARM]);
  })
  .add('SHA-256 + table probe (uncached path)', () => {
    sink += table.byKeyDigest(createHash('sha256').update(coldKeys[cold++ % N]).digest());
  })
  .add('table probe alone (digest given, constant-time compare)', () => {
    sink += table.byKeyDigest(coldDigests[cold++ % N]);
  })
  .add('SHA-256 alone, createHash().update().digest()', () => {
    sink += createHash('sha256').update(coldKeys[cold++ % N]).digest()[0];
  })
  .add('SHA-256 alone, crypto.hash one-shot (what apiKey uses)', () => {
    sink += oneShot(coldKeys[cold++ % N])[0];
  });

await bench.run();
console.log(`consumer table: ${N} consumers, ${(table.bytes / 1048576).toFixed(1)} MiB`);
console.table(
  bench.tasks.map((t) => {
    const r = t.result as { latency?: { mean: number; p99?: number }; throughput?: { mean: number } } | undefined;
    return {
      case: t.name,
      'ns/op (mean)': r?.latency ? Math.round(r.latency.mean * 1e6) : null,
      'ns/op (p99)': r?.latency?.p99 !== undefined ? Math.round(r.latency.p99 * 1e6) : null,
      'ops/s': r?.throughput ? Math.round(r.throughput.mean) : null,
    };
  }),
);
if (sink === -1) console.log(sink);

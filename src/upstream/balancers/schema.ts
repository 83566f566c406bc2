import { Type, type Static } from '@sinclair/typebox';
import { HASH_SOURCE_PATTERN } from './hash.js';
import { DEFAULT_LOAD_FACTOR, DEFAULT_TABLE_SIZE, MAX_TABLE_SIZE, isPrime } from './maglev.js';
import { DEFAULT_DECAY_MS } from './peak-ewma.js';
import { DEFAULT_AGGRESSION, DEFAULT_MIN_WEIGHT_PERCENT } from './slow-start.js';

/**
 * The balancer part of an upstream's config, for composing into the upstream schema (src/config/schema.ts):
 *
 *   balancing: BalancingSchema        // then, after Ajv: balancingIssues(upstream.balancing, 'upstreams.x.balancing')
 *
 * One object with the algorithm's name and one optional section per algorithm, rather than a union of shapes:
 * Ajv fills defaults only outside anyOf/oneOf, and this way every knob has its default in the validated config.
 * A section for an algorithm that is not selected is allowed and ignored (switching algorithms is one line).
 * What JSON Schema cannot say (the table size must be prime) is checked by balancingIssues().
 */

export const ALGORITHMS = ['round-robin', 'least-request', 'consistent-hash', 'peak-ewma'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

const LeastRequest = Type.Object(
  {
    choices: Type.Integer({ minimum: 2, maximum: 16, default: 2, description: 'random candidates compared per pick when weights are equal (Envoy choice_count)' }),
    activeRequestBias: Type.Number({
      minimum: 0,
      maximum: 16,
      default: 1,
      description: 'with unequal weights a node is chosen in proportion to weight / (inFlight + 1)^bias (Envoy active_request_bias); 0 ignores load',
    }),
  },
  { additionalProperties: false, default: {}, description: 'balancer: least-request: the node with fewer requests in flight (across all workers) of a few picked at random' },
);

const HashSource = Type.String({
  pattern: HASH_SOURCE_PATTERN,
  description: 'ip, consumer, path, header:<name>, cookie:<name> or query:<name>',
});

const ConsistentHash = Type.Object(
  {
    hashOn: Type.Array(HashSource, {
      minItems: 1,
      maxItems: 8,
      default: ['ip'],
      description: 'the first source present in the request gives the key; none present: the client address',
    }),
    tableSize: Type.Integer({
      minimum: 3,
      maximum: MAX_TABLE_SIZE,
      default: DEFAULT_TABLE_SIZE,
      description: 'Maglev lookup table entries; must be prime, and well above 100 × the node count for an even spread (Envoy table_size)',
    }),
    boundedLoad: Type.Boolean({ default: true, description: 'walk past nodes holding more than loadFactor × their share of the in-flight requests' }),
    loadFactor: Type.Number({
      minimum: 1,
      maximum: 100,
      default: DEFAULT_LOAD_FACTOR,
      description: 'bounded load c: no node above ceil(c × its weighted share of in-flight requests) (Envoy hash_balance_factor / 100)',
    }),
  },
  { additionalProperties: false, default: {}, description: 'balancer: consistent-hash: the same key goes to the same node (Maglev), and few keys move when nodes change' },
);

const PeakEwma = Type.Object(
  {
    decayMs: Type.Integer({ minimum: 100, maximum: 600_000, default: DEFAULT_DECAY_MS, description: 'time constant τ of the latency average in ms (Finagle decayTime)' }),
  },
  { additionalProperties: false, default: {}, description: 'balancer: peak-ewma: picks the lower of two nodes by latency average × (in flight + 1)' },
);

const SlowStart = Type.Object(
  {
    windowMs: Type.Integer({ minimum: 1000, maximum: 3_600_000, description: 'how long a node that became available ramps up to its full weight' }),
    aggression: Type.Number({ exclusiveMinimum: 0, maximum: 100, default: DEFAULT_AGGRESSION, description: '1: linear ramp; above 1 faster early, below 1 slower early' }),
    minWeightPercent: Type.Number({ minimum: 0, maximum: 100, default: DEFAULT_MIN_WEIGHT_PERCENT, description: 'lowest share of its weight a ramping node gets' }),
  },
  { additionalProperties: false, description: 'ramps a new or recovered node up to its weight (round-robin, least-request, peak-ewma, bounded load)' },
);

/** The algorithm is the upstream's `balancer` key; this holds each algorithm's knobs. */
export const BalancingSchema = Type.Object(
  {
    leastRequest: LeastRequest,
    consistentHash: ConsistentHash,
    peakEwma: PeakEwma,
    slowStart: Type.Optional(SlowStart),
  },
  { additionalProperties: false, default: {}, description: 'knobs of the balancer algorithms (the one chosen by `balancer` applies); see docs/balancing.md' },
);

export const BalancerSchema = Type.Union(
  [...ALGORITHMS.map((a) => Type.Literal(a)), Type.Literal('least-connections')],
  {
    default: 'round-robin',
    description: 'round-robin (smooth weighted), least-request (P2C over in-flight counts of all workers), consistent-hash (Maglev, bounded load), peak-ewma (latency-aware P2C); least-connections is the old name of least-request',
  },
);

export type BalancingConfig = Static<typeof BalancingSchema> & { readonly algorithm: Algorithm };

export interface BalancingIssue {
  path: string;
  message: string;
  hint?: string;
}

/** Checks JSON Schema cannot express, on a config Ajv has already validated. Same shape as the config's ConfigIssue. */
export function balancingIssues(config: BalancingConfig, path: string): BalancingIssue[] {
  const issues: BalancingIssue[] = [];
  const size = config.consistentHash.tableSize;
  if (!isPrime(size)) {
    issues.push({ path: `${path}.consistentHash.tableSize`, message: `${size} is not a prime number`, hint: `the nearest primes are ${prevPrime(size)} and ${nextPrime(size)}` });
  }
  return issues;
}

function nextPrime(n: number): number {
  let p = n + 1;
  while (!isPrime(p)) p++;
  return p;
}

function prevPrime(n: number): number {
  let p = n - 1;
  while (p > 2 && !isPrime(p)) p--;
  return p;
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ajv } from 'ajv';
import { BalancerSchema, BalancingSchema, balancingIssues, type BalancingConfig } from '../../src/upstream/balancers/schema.js';
import { compileHashKey } from '../../src/upstream/balancers/hash.js';

// The options src/config/load.ts validates the config with.
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, verbose: true });
const validate = ajv.compile(BalancingSchema);
const validateName = ajv.compile(BalancerSchema);

/** `algorithm` stands for the upstream's `balancer` key, checked by its own schema; the rest is `balancing`. */
function check(value: unknown): { ok: boolean; errors: string[]; config: BalancingConfig } {
  const { algorithm = "round-robin", ...rest } = value as { algorithm?: unknown } & Record<string, unknown>;
  const okName = validateName(algorithm);
  const nameErrors = (validateName.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
  const okRest = validate(rest);
  const errors = [...nameErrors, ...(validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`)];
  return { ok: okName && okRest, errors, config: { ...rest, algorithm } as unknown as BalancingConfig };
}

test('an empty section gets every default', () => {
  const r = check({});
  assert.ok(r.ok, r.errors.join('; '));
  assert.deepEqual(r.config, {
    algorithm: 'round-robin',
    leastRequest: { choices: 2, activeRequestBias: 1 },
    consistentHash: { hashOn: ['ip'], tableSize: 65537, boundedLoad: true, loadFactor: 1.25 },
    peakEwma: { decayMs: 10000 },
  });
  assert.deepEqual(balancingIssues(r.config, 'upstreams.api.balancing'), []);
  const s = check({ slowStart: { windowMs: 30000 } });
  assert.ok(s.ok);
  assert.deepEqual(s.config.slowStart, { windowMs: 30000, aggression: 1, minWeightPercent: 10 });
});

test('refused: load factor below 1, negative bias, unknown hash source, unknown algorithm or key', () => {
  const refused: Array<[unknown, RegExp]> = [
    [{ consistentHash: { loadFactor: 0.9 } }, /loadFactor must be >= 1/],
    [{ leastRequest: { activeRequestBias: -0.5 } }, /activeRequestBias must be >= 0/],
    [{ consistentHash: { hashOn: ['body:x'] } }, /hashOn\/0 must match pattern/],
    [{ consistentHash: { hashOn: ['header:'] } }, /must match pattern/],
    [{ consistentHash: { hashOn: [] } }, /must NOT have fewer than 1 items/],
    [{ algorithm: 'random' }, /must be equal to constant/],
    [{ algorithm: 'round-robin', hashOn: ['ip'] }, /must NOT have additional properties/],
    [{ slowStart: { windowMs: 10000, aggression: 0 } }, /aggression must be > 0/],
    [{ slowStart: {} }, /must have required property 'windowMs'/],
  ];
  for (const [value, re] of refused) {
    const r = check(value);
    assert.equal(r.ok, false, JSON.stringify(value));
    assert.match(r.errors.join('; '), re, JSON.stringify(value));
  }
});

test('every source the schema accepts compiles; the table size must be prime', () => {
  const r = check({ algorithm: 'consistent-hash', consistentHash: { hashOn: ['header:x-user', 'cookie:sid', 'query:tenant', 'consumer', 'path', 'ip'], tableSize: 65536 } });
  assert.ok(r.ok, r.errors.join('; '));
  assert.doesNotThrow(() => compileHashKey(r.config.consistentHash.hashOn));
  assert.deepEqual(balancingIssues(r.config, 'upstreams.api.balancing'), [
    { path: 'upstreams.api.balancing.consistentHash.tableSize', message: '65536 is not a prime number', hint: 'the nearest primes are 65521 and 65537' },
  ]);
  assert.equal(check({ consistentHash: { tableSize: 2 } }).ok, false, 'below 3');
  assert.equal(check({ consistentHash: { tableSize: 5000012 } }).ok, false, 'above Envoy bound');
});

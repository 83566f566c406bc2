import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigSchema } from '../../src/config/schema.js';
import { REDACTED, redactConfig, redactUrl, scrub, secretValues } from '../../src/config/secrets.js';
import { loadConfigText } from '../../src/config/load.js';

/**
 * Credentials are found by the schema's `secret` annotation (src/config/secrets.ts), not by key names. These tests
 * keep the annotation complete: a new field whose name looks like a credential must say whether it is one.
 */

/** Words of a field name that suggest a credential (camelCase and snake_case split into words). */
const CREDENTIAL_WORDS = new Set([
  'secret', 'secrets', 'password', 'passwords', 'passwd', 'pass', 'passphrase', 'token', 'tokens', 'credential',
  'credentials', 'key', 'keys', 'apikey', 'pem', 'jwk', 'private', 'cookie', 'cookies', 'auth', 'authorization',
  'url', 'uri', 'endpoint', 'dsn', 'headers',
]);

function words(name: string): string[] {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase().split(/[^a-z0-9]+/).filter(Boolean);
}

interface Field {
  path: string;
  name: string;
  schema: Record<string, any>;
}

/** Every named property of the schema (through objects, records, arrays and unions), with a readable path. */
function fields(schema: any, path = '', out: Field[] = [], seen = new Set<unknown>()): Field[] {
  if (schema === null || typeof schema !== 'object' || seen.has(schema)) return out;
  seen.add(schema);
  for (const [k, v] of Object.entries<any>(schema.properties ?? {})) {
    out.push({ path: path ? `${path}.${k}` : k, name: k, schema: v });
    fields(v, path ? `${path}.${k}` : k, out, new Set(seen));
  }
  for (const v of Object.values<any>(schema.patternProperties ?? {})) fields(v, `${path}.*`, out, new Set(seen));
  if (typeof schema.additionalProperties === 'object') fields(schema.additionalProperties, `${path}.*`, out, new Set(seen));
  if (schema.items) for (const it of [schema.items].flat()) fields(it, `${path}[]`, out, new Set(seen));
  for (const k of ['anyOf', 'oneOf', 'allOf']) for (const b of schema[k] ?? []) fields(b, path, out, new Set(seen));
  return out;
}

test('every config field whose name looks like a credential says whether it is one (secret: true, "url" or false)', () => {
  const all = fields(ConfigSchema);
  assert.ok(all.length > 100, 'the walk reaches the policy and identity schemas');
  const undecided = all.filter((f) => words(f.name).some((w) => CREDENTIAL_WORDS.has(w)) && f.schema.secret === undefined).map((f) => f.path);
  assert.deepEqual([...new Set(undecided)], [], 'annotate these fields in their schema with secret: true, secret: "url" or secret: false');
});

test('secret annotations have one of the three known values', () => {
  const bad = fields(ConfigSchema).filter((f) => f.schema.secret !== undefined && ![true, false, 'url'].includes(f.schema.secret)).map((f) => `${f.path}: ${JSON.stringify(f.schema.secret)}`);
  assert.deepEqual(bad, []);
});

test('the credentials the review named are annotated as secret', () => {
  const byPath = new Map(fields(ConfigSchema).map((f) => [f.path, f.schema.secret]));
  for (const [path, kind] of [
    ['policies.auth.methods.jwt.keys[].secret', true],
    ['routes[].policies.auth.methods.jwt.keys[].secret', true],
    ['policies.auth.methods.jwt.keys[].jwk.k', true],
    ['policies.auth.methods.introspection.clientSecret', true],
    ['redis.password', true],
    ['redis.url', 'url'],
    ['listen.tls.passphrase', true],
    ['admin.token', true],
    ['consumers[].keys[].key', true],
    ['consumerRegistry.headers', true],
    ['observability.tracing.headers', true],
  ] as const) {
    assert.equal(byPath.get(path), kind, path);
  }
});

test('redactUrl hides the password of a userinfo (or a lone userinfo), in a URL and inside a message', () => {
  assert.equal(redactUrl('redis://app:s3cr3t@10.0.0.5:6379/0'), `redis://app:${REDACTED}@10.0.0.5:6379/0`);
  assert.equal(redactUrl('redis://s3cr3t@10.0.0.5:6379'), `redis://${REDACTED}@10.0.0.5:6379`);
  assert.equal(redactUrl('https://idp.example/jwks'), 'https://idp.example/jwks');
  assert.equal(redactUrl('cannot fetch http://u:pw@127.0.0.1:1/x: refused'), `cannot fetch http://u:${REDACTED}@127.0.0.1:1/x: refused`);
});

test('redactConfig walks config and schema together: secrets go, everything else and the shape stay', () => {
  const config = loadConfigText(
    JSON.stringify({
      admin: { token: 'admin-token-0123456789' },
      redis: { url: 'redis://app:redis-pass-1234@127.0.0.1:6379/0', password: 'redis-pass-5678' },
      consumers: [{ id: 'c1', keys: [{ key: 'consumer-key-0123456789' }, { keySha256: 'a'.repeat(64) }] }],
      policies: {
        auth: { methods: { jwt: { keys: [{ kid: 'k1', alg: 'HS256', secret: 'hmac-secret-that-is-long-enough-0123' }, { alg: 'HS256', jwk: { kty: 'oct', k: 'b2N0LXNlY3JldA' } }] } } },
        headers: { request: { set: { authorization: 'Basic dXBzdHJlYW0=' } }, response: { set: { 'x-served-by': 'edge' } } },
      },
    }),
    'test.json',
  );
  const before = JSON.stringify(config);
  const out = redactConfig(config, ConfigSchema) as any;
  assert.equal(JSON.stringify(config), before, 'the config itself is not changed');
  assert.equal(out.admin.token, REDACTED);
  assert.equal(out.redis.url, `redis://app:${REDACTED}@127.0.0.1:6379/0`);
  assert.equal(out.redis.password, REDACTED);
  assert.equal(out.consumers[0].keys[0].key, REDACTED);
  assert.equal(out.consumers[0].keys[1].keySha256, 'a'.repeat(64), 'a digest is not a secret');
  assert.equal(out.policies.auth.methods.jwt.keys[0].secret, REDACTED);
  assert.equal(out.policies.auth.methods.jwt.keys[0].kid, 'k1');
  assert.deepEqual(out.policies.auth.methods.jwt.keys[1].jwk, { kty: 'oct', k: REDACTED });
  assert.deepEqual(out.policies.headers.request.set, { authorization: REDACTED }, 'names stay, values go');
  assert.deepEqual(out.policies.headers.response.set, { 'x-served-by': 'edge' });
  assert.equal(out.admin.port, 9901);

  const secrets = secretValues(config, ConfigSchema);
  for (const s of ['admin-token-0123456789', 'redis-pass-1234', 'redis-pass-5678', 'consumer-key-0123456789', 'b2N0LXNlY3JldA', 'Basic dXBzdHJlYW0=']) {
    assert.ok(secrets.includes(s), s);
  }
  assert.ok(!secrets.includes('edge'));
  assert.equal(scrub('key b2N0LXNlY3JldA is too short', secrets), `key ${REDACTED} is too short`);
});

test('a credential that fails its pattern is not quoted in the validation message', () => {
  const err = (() => {
    try {
      loadConfigText(JSON.stringify({ consumers: [{ id: 'c1', keys: [{ key: 'has a space in the key 0123' }] }] }), 'test.json');
    } catch (e) {
      return e as Error;
    }
    return null;
  })();
  assert.ok(err, 'the key is refused');
  assert.match(err.message, /consumers\[0\]\.keys\[0\]\.key: the value does not have the expected form/);
  assert.doesNotMatch(err.message, /has a space/);
});

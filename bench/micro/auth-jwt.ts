/**
 * Per-request cost of bearer-token authentication, each case isolated (tinybench).
 *
 *   npx tsc -p . ; node dist/bench/micro/auth-jwt.js
 *
 * Cases:
 *   - jwt authenticate() with the token already verified by this worker (the cache hit every repeat request takes),
 *     with one token and with 10,000 distinct tokens in the cache; the same through the whole auth hook;
 *   - introspection authenticate() on a cached answer;
 *   - an uncached verification (JwtVerifier.verify with the cache off: header parse, key selection, jose jwtVerify)
 *     for RS256 (2048-bit), ES256, EdDSA and HS256: what the first request with a new token pays;
 *   - floors: the bare signature check with synchronous node:crypto (what the thread-pool round trip of jose's
 *     WebCrypto path adds); baseline: jose jwtVerify with the RS256 key imported from PEM on every call (what
 *     importing once saves).
 * The context is a stand-in with the worker Exchange's header lookup, so the figures are the method's own cost.
 */
import { createHmac, createPublicKey, verify } from 'node:crypto';
import { Bench } from 'tinybench';
import { SignJWT, exportSPKI, generateKeyPair, importSPKI, jwtVerify, exportJWK } from 'jose';
import { jwtAuthenticator, JwtVerifier, type JwtData } from '../../src/policies/auth/jwt.js';
import { introspectionAuthenticator } from '../../src/policies/auth/introspection.js';
import { authPolicy } from '../../src/policies/auth/index.js';
import { AUTH_OK, AUTH_PENDING, type AuthFailure, type AuthMethod } from '../../src/policies/auth/authenticator.js';
import type { CompileContext, PolicyContext, PolicyEnv } from '../../src/pipeline/policy.js';
import { BenchContext } from './bench-context.js';


const env: PolicyEnv = { workerIndex: 0, slot: 0, routeName: 'orders', services: {} };
const cc: CompileContext = { routeName: 'orders', where: 'bench', config: {}, shared: () => new SharedArrayBuffer(8) };
/** distinct tokens for the "many" case: below cacheSize (10,000) so that none is evicted */
const DISTINCT = 9_000;
const SECRET = 'bench-secret-of-at-least-thirty-two-bytes';
const hsKey = new TextEncoder().encode(SECRET);
const claims = { iss: 'https://issuer.example', aud: 'orders', sub: 'svc-orders', scope: 'orders.read orders.write' };
const sign = (key: Parameters<SignJWT['sign']>[0], alg: string, extra: Record<string, unknown> = {}) =>
  new SignJWT({ ...claims, ...extra }).setProtectedHeader({ alg, kid: alg }).setIssuedAt().setExpirationTime('1h').sign(key);

async function main(): Promise<void> {
  const pairs = {
    RS256: await generateKeyPair('RS256', { extractable: true }),
    ES256: await generateKeyPair('ES256', { extractable: true }),
    EdDSA: await generateKeyPair('EdDSA', { extractable: true }),
  };
  const rsPem = await exportSPKI(pairs.RS256.publicKey);
  const keys = [
    { kid: 'HS256', alg: 'HS256', secret: SECRET },
    { kid: 'RS256', alg: 'RS256', publicKeyPem: rsPem },
    { kid: 'ES256', alg: 'ES256', jwk: (await exportJWK(pairs.ES256.publicKey)) as Record<string, unknown> },
    { kid: 'EdDSA', alg: 'EdDSA', jwk: (await exportJWK(pairs.EdDSA.publicKey)) as Record<string, unknown> },
  ];
  const config = { keys, issuer: claims.iss, audience: 'orders', clockSkewSeconds: 30, requiredClaims: ['sub'], maxTokenBytes: 8192, cacheSize: 10_000, cacheMaxSeconds: 300, jwksRefreshSeconds: 60, jwksMaxAgeSeconds: 600, jwksTimeoutMs: 3000, mapConsumer: 'off' as const };
  const data = jwtAuthenticator.compile!(config as never, cc) as JwtData;
  const method: AuthMethod = jwtAuthenticator.create(data, env);
  const uncached = new JwtVerifier({ ...data, id: 'uncached', cacheSize: 0 });

  const tokens = {
    HS256: await sign(hsKey, 'HS256'),
    RS256: await sign(pairs.RS256.privateKey, 'RS256'),
    ES256: await sign(pairs.ES256.privateKey, 'ES256'),
    EdDSA: await sign(pairs.EdDSA.privateKey, 'EdDSA'),
  };
  const ctx = new BenchContext('authorization');
  const failure: AuthFailure = { code: 'NG_ERR_AUTH_MISSING', detail: '' };
  const noop = () => {};

  // Warm the cache: one token, then 10,000 distinct ones (different jti).
  const warm = async (t: string) => {
    const r = method.authenticate(ctx.use(`Bearer ${t}`) as unknown as PolicyContext, failure, noop);
    if (r === AUTH_PENDING) await new Promise((res) => setTimeout(res, 0));
  };
  await warm(tokens.RS256);
  for (let i = 0; i < 20 && method.authenticate(ctx.use(`Bearer ${tokens.RS256}`) as unknown as PolicyContext, failure, noop) !== AUTH_OK; i++) await new Promise((r) => setTimeout(r, 5));
  const many: string[] = [];
  for (let i = 0; i < DISTINCT; i++) many.push(await sign(hsKey, 'HS256', { jti: `t${i}` }));
  for (let i = 0; i < many.length; i += 500) await Promise.all(many.slice(i, i + 500).map((t) => (uncached.verify(t) as Promise<unknown>).then(() => warm(t))));
  await new Promise((r) => setTimeout(r, 50));
  for (const t of many) if (method.authenticate(ctx.use(`Bearer ${t}`) as unknown as PolicyContext, failure, noop) !== AUTH_OK) throw new Error('cache not warm');

  // The whole auth hook on the same warm verifier (shared by configuration digest).
  const hook = authPolicy.create(authPolicy.compile!({ methods: { jwt: config }, anonymous: false, hideCredentials: false, realm: 'bench' } as never, cc), env);

  // Introspection with a cached answer.
  const idata = introspectionAuthenticator.compile!({ url: 'http://127.0.0.1:9/introspect', clientId: 'gw', clientSecret: 's', cacheSeconds: 60, timeoutMs: 1000, cacheSize: 10_000, maxTokenBytes: 8192, mapConsumer: 'off' } as never, cc);
  const imethod = introspectionAuthenticator.create(idata, env) as unknown as { introspector: { cache: { set(t: string, v: unknown, now: number): void } } } & AuthMethod;
  imethod.introspector.cache.set('opaque-token-0123456789abcdef', { expiresAt: Date.now() + 3_600_000, subject: 'svc', issuer: '', scopes: ['a'], roles: null }, Date.now());

  // Synchronous node:crypto verification of the same tokens (signature only, no claims): the floor under jose's
  // WebCrypto path, which hands every verify to the libuv thread pool and back.
  const rsObject = createPublicKey(rsPem);
  const [rsHead, rsBody, rsSig] = tokens.RS256.split('.');
  const rsSigned = Buffer.from(`${rsHead}.${rsBody}`);
  const rsSignature = Buffer.from(rsSig, 'base64url');
  const [hsHead, hsBody, hsSig] = tokens.HS256.split('.');
  const bench = new Bench({ time: 1500, warmupTime: 300 });
  const hit = `Bearer ${tokens.RS256}`;
  let n = 0;
  bench
    .add('jwt authenticate(), cached token', () => {
      if (method.authenticate(ctx.use(hit) as unknown as PolicyContext, failure, noop) !== AUTH_OK) throw new Error('miss');
    })
    .add('jwt authenticate(), cached, 9,000 distinct HS256 tokens', () => {
      if (method.authenticate(ctx.use(`Bearer ${many[n++ % many.length]}`) as unknown as PolicyContext, failure, noop) !== AUTH_OK) throw new Error('miss');
    })
    .add('auth hook (jwt), cached token', () => {
      hook.access!(ctx.use(hit) as unknown as PolicyContext);
    })
    .add('introspection authenticate(), cached answer', () => {
      if (imethod.authenticate(ctx.use('Bearer opaque-token-0123456789abcdef') as unknown as PolicyContext, failure, noop) !== AUTH_OK) throw new Error('miss');
    })
    .add('uncached verify RS256 (2048-bit)', async () => {
      await uncached.verify(tokens.RS256);
    })
    .add('uncached verify ES256', async () => {
      await uncached.verify(tokens.ES256);
    })
    .add('uncached verify EdDSA', async () => {
      await uncached.verify(tokens.EdDSA);
    })
    .add('uncached verify HS256', async () => {
      await uncached.verify(tokens.HS256);
    })
    .add('floor: node:crypto RS256 signature check, synchronous', () => {
      if (!verify('sha256', rsSigned, rsObject, rsSignature)) throw new Error('bad');
    })
    .add('floor: node:crypto HS256 signature check, synchronous', () => {
      if (createHmac('sha256', SECRET).update(`${hsHead}.${hsBody}`).digest('base64url') !== hsSig) throw new Error('bad');
    })
    .add('baseline: RS256 jwtVerify, key imported from PEM per call', async () => {
      await jwtVerify(tokens.RS256, await importSPKI(rsPem, 'RS256'), { issuer: claims.iss, audience: 'orders' });
    });
  for (const [alg, t] of Object.entries(tokens)) {
    const r = await uncached.verify(t);
    if (!('subject' in (r as object))) throw new Error(`${alg} does not verify: ${JSON.stringify(r)}`);
  }
  await bench.run();
  console.table(
    bench.tasks.map((t) => {
      const r = t.result as unknown as { latency?: { mean: number; p50?: number; p99?: number }; throughput?: { mean: number } } | undefined;
      return {
        case: t.name,
        'median µs': r?.latency?.p50 !== undefined ? (r.latency.p50 * 1000).toFixed(2) : '?',
        'mean µs': r?.latency ? (r.latency.mean * 1000).toFixed(2) : '?',
        'p99 µs': r?.latency?.p99 !== undefined ? (r.latency.p99 * 1000).toFixed(2) : '?',
        'ops/s': r?.throughput ? Math.round(r.throughput.mean).toLocaleString('en') : '?',
      };
    }),
  );
}

main().catch((err: Error) => {
  console.error(err.stack ?? err.message);
  process.exitCode = 1;
});

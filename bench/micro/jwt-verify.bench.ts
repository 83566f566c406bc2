/**
 * Bearer-token authentication: the jwt authenticator's authenticate() on a token this worker has verified before
 * (the cache hit every repeat request takes), and an uncached HS256 verification (JwtVerifier.verify with the
 * cache off: header parse, key selection, jose jwtVerify, async), what the first request with a new token pays.
 * Same setup as auth-jwt.ts, HS256 only.
 */
import { SignJWT } from 'jose';
import { defineSuite, consume } from '../../src/bench/micro-api.js';
import { jwtAuthenticator, JwtVerifier, type JwtData } from '../../src/policies/auth/jwt.js';
import { AUTH_OK, type AuthFailure } from '../../src/policies/auth/authenticator.js';
import type { CompileContext, PolicyContext, PolicyEnv } from '../../src/pipeline/policy.js';
import { BenchContext } from './bench-context.js';

const SECRET = 'bench-secret-of-at-least-thirty-two-bytes';
const claims = { iss: 'https://issuer.example', aud: 'orders', sub: 'svc-orders', scope: 'orders.read orders.write' };


export default defineSuite({
  name: 'jwt-verify',
  description: 'jwt authenticate() on a cached token; uncached HS256 JwtVerifier.verify (async, jose)',
  async cases() {
    const env: PolicyEnv = { workerIndex: 0, slot: 0, routeName: 'orders', services: {} };
    const cc: CompileContext = { routeName: 'orders', where: 'bench', config: {}, shared: () => new SharedArrayBuffer(8) };
    const config = { keys: [{ kid: 'HS256', alg: 'HS256', secret: SECRET }], issuer: claims.iss, audience: 'orders', clockSkewSeconds: 30, requiredClaims: ['sub'], maxTokenBytes: 8192, cacheSize: 10_000, cacheMaxSeconds: 300, jwksRefreshSeconds: 60, jwksMaxAgeSeconds: 600, jwksTimeoutMs: 3000, mapConsumer: 'off' as const };
    const data = jwtAuthenticator.compile!(config as never, cc) as JwtData;
    const method = jwtAuthenticator.create(data, env);
    const uncached = new JwtVerifier({ ...data, id: 'uncached', cacheSize: 0 });
    const token = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: 'HS256' }).setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));

    const ctx = new BenchContext('authorization');
    const pctx = ctx as unknown as PolicyContext;
    const failure: AuthFailure = { code: 'NG_ERR_AUTH_MISSING', detail: '' };
    const noop = () => {};
    const hit = `Bearer ${token}`;
    // Warm the cache: the first call verifies in the background, later ones hit.
    for (let i = 0; i < 40 && method.authenticate(ctx.use(hit) as unknown as PolicyContext, failure, noop) !== AUTH_OK; i++) await new Promise((r) => setTimeout(r, 5));
    if (method.authenticate(ctx.use(hit) as unknown as PolicyContext, failure, noop) !== AUTH_OK) throw new Error('jwt-verify: cache not warm');
    const r = await uncached.verify(token);
    if (!('subject' in (r as object))) throw new Error(`jwt-verify: HS256 does not verify: ${JSON.stringify(r)}`);

    const reps = 16;
    return [
      {
        name: 'authenticate(), cached token',
        ops: reps,
        fn: () => {
          for (let i = 0; i < reps; i++) {
            const res = method.authenticate(ctx.use(hit) as unknown as PolicyContext, failure, noop);
            if (res !== AUTH_OK) throw new Error('jwt-verify: cache miss');
            consume(res);
          }
        },
      },
      {
        name: 'uncached verify HS256',
        fn: async () => {
          consume(await uncached.verify(token));
        },
      },
    ];
  },
});

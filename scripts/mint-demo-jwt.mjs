#!/usr/bin/env node
// Prints a JWT that config/examples/auth-jwt.yaml accepts (HS256, the example's demo secret), for curl:
//   curl -H "Authorization: Bearer $(node scripts/mint-demo-jwt.mjs)" localhost:8080/orders/42
// Options change one thing at a time, to see each refusal:
//   --sub NAME       subject (default demo-app, the consumer the example maps)
//   --exp SECONDS    expiry relative to now (default 3600; negative for an expired token)
//   --scope "a b"    scope claim (default none: the consumer's scopes apply)
//   --aud NAME       audience (default nanogate-demo)
//   --secret TEXT    signing secret (default $NANOGATE_DEMO_JWT_SECRET or the example's default)
import { SignJWT } from 'jose';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
};
if (args.includes('--help')) {
  console.log('usage: node scripts/mint-demo-jwt.mjs [--sub NAME] [--exp SECONDS] [--scope "a b"] [--aud NAME] [--secret TEXT]');
  process.exit(0);
}
const secret = opt('secret', process.env.NANOGATE_DEMO_JWT_SECRET || 'demo-secret-change-me-0123456789abcdef');
const now = Math.floor(Date.now() / 1000);
const claims = { sub: opt('sub', 'demo-app') };
const scope = opt('scope', undefined);
if (scope) claims.scope = scope;
const token = await new SignJWT(claims)
  .setProtectedHeader({ alg: 'HS256', kid: 'demo-1', typ: 'JWT' })
  .setIssuer('https://demo.nanogate.local')
  .setAudience(opt('aud', 'nanogate-demo'))
  .setIssuedAt(now)
  .setExpirationTime(now + Number(opt('exp', '3600')))
  .sign(new TextEncoder().encode(secret));
console.log(token);

import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair, type JWK, type JWTPayload, type CryptoKey } from 'jose';

/**
 * A real identity provider on a free loopback port, for the jwt and introspection tests:
 *   GET  /jwks        the public keys in `keys` (a JWKS), or `jwksStatus` when it is not 200
 *   POST /introspect  RFC 7662: looks the form's token up in `tokens` ({active:false} when absent); checks HTTP Basic
 * Each endpoint counts its requests, so tests can see refetches and cache hits.
 */
export interface TestIdp {
  url: string;
  jwksUrl: string;
  introspectUrl: string;
  /** the JWKS served: push or replace to rotate keys */
  keys: JWK[];
  jwksStatus: number;
  jwksRequests: number;
  /** token -> introspection answer */
  tokens: Map<string, Record<string, unknown>>;
  introspectStatus: number;
  introspectRequests: number;
  /** the Authorization and body of the last introspection call */
  lastIntrospection: { authorization: string | undefined; body: string } | null;
  /** the client credentials the introspection endpoint accepts, "id:secret" */
  client: string;
  close(): Promise<void>;
}

export async function startIdp(opts: { clientId?: string; clientSecret?: string } = {}): Promise<TestIdp> {
  const sockets = new Set<Socket>();
  const clientId = opts.clientId ?? 'gateway';
  const clientSecret = opts.clientSecret ?? 'gateway-secret';
  const idp: TestIdp = {
    url: '',
    jwksUrl: '',
    introspectUrl: '',
    keys: [],
    jwksStatus: 200,
    jwksRequests: 0,
    tokens: new Map(),
    introspectStatus: 200,
    introspectRequests: 0,
    lastIntrospection: null,
    client: `${clientId}:${clientSecret}`,
    close: async () => {},
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (req.method === 'GET' && req.url === '/jwks') {
        idp.jwksRequests++;
        if (idp.jwksStatus !== 200) {
          res.writeHead(idp.jwksStatus, { 'content-type': 'text/plain' });
          return res.end('unavailable');
        }
        res.writeHead(200, { 'content-type': 'application/jwk-set+json' });
        return res.end(JSON.stringify({ keys: idp.keys }));
      }
      if (req.method === 'POST' && req.url === '/introspect') {
        idp.introspectRequests++;
        idp.lastIntrospection = { authorization: req.headers.authorization, body };
        if (idp.introspectStatus !== 200) {
          res.writeHead(idp.introspectStatus);
          return res.end();
        }
        if (basicCredentials(req.headers.authorization) !== `${clientId}:${clientSecret}`) {
          res.writeHead(401, { 'content-type': 'application/json' });
          return res.end('{"error":"invalid_client"}');
        }
        const token = new URLSearchParams(body).get('token') ?? '';
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify(idp.tokens.get(token) ?? { active: false }));
      }
      res.writeHead(404);
      res.end();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  idp.url = `http://127.0.0.1:${port}`;
  idp.jwksUrl = `${idp.url}/jwks`;
  idp.introspectUrl = `${idp.url}/introspect`;
  idp.close = () =>
    new Promise<void>((r) => {
      server.close(() => r());
      for (const s of sockets) s.destroy();
    });
  return idp;
}

/** "id:secret" from HTTP Basic, each part form-decoded (RFC 6749 section 2.3.1). */
export function basicCredentials(h: string | undefined): string | null {
  if (!h?.startsWith('Basic ')) return null;
  const raw = Buffer.from(h.slice(6), 'base64').toString('utf8');
  const colon = raw.indexOf(':');
  if (colon < 0) return null;
  const dec = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));
  return `${dec(raw.slice(0, colon))}:${dec(raw.slice(colon + 1))}`;
}

export interface SigningKey {
  alg: string;
  kid: string | undefined;
  privateKey: CryptoKey;
  /** the public JWK with kid/alg/use, as a JWKS serves it */
  publicJwk: JWK;
  publicPem: string;
}

/** A fresh key pair for `alg` (RS256, PS256, ES256, EdDSA...). */
export async function signingKey(alg: string, kid?: string): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  return { alg, kid, privateKey, publicJwk: { ...jwk, ...(kid ? { kid } : {}), alg, use: 'sig' }, publicPem: await exportSPKI(publicKey) };
}

/** Signs `claims` (exp defaults to one hour from now; pass exp: undefined in `claims` to leave it out). */
export async function signToken(
  claims: JWTPayload,
  key: { privateKey: CryptoKey | Uint8Array; alg: string; kid?: string },
  header: Record<string, unknown> = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload: JWTPayload = { iat: now, exp: now + 3600, ...claims };
  for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
  return new SignJWT(payload).setProtectedHeader({ alg: key.alg, ...(key.kid ? { kid: key.kid } : {}), ...header }).sign(key.privateKey);
}

/** An unsigned token (alg "none"), which jose will not make. */
export function unsignedToken(claims: JWTPayload): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`;
}

/** Reads a problem+json answer: status, code and the WWW-Authenticate header. */
export async function problemOf(res: Response): Promise<{ status: number; code: string; detail: string; challenge: string | null }> {
  const body = (await res.json()) as { code: string; detail: string };
  return { status: res.status, code: body.code, detail: body.detail, challenge: res.headers.get('www-authenticate') };
}

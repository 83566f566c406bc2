import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Gateway } from './gateway.js';

/**
 * The admin API, on its own port and served by the control plane (never by a worker), so operations traffic cannot
 * slow requests. /health and /ready answer without a token (for probes); everything else needs the bearer token
 * when one is configured.
 */
export class AdminServer {
  readonly #gateway: Gateway;
  readonly #server: Server;
  readonly #tokenDigest: Buffer | null;
  port = 0;

  constructor(gateway: Gateway) {
    this.#gateway = gateway;
    const token = gateway.config.admin.token;
    this.#tokenDigest = token ? createHash('sha256').update(token).digest() : null;
    this.#server = createServer((req, res) => {
      this.#route(req, res).catch(() => json(res, 500, { code: 'NG_ERR_GATEWAY_INTERNAL', title: 'admin request failed' }));
    });
  }

  listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.port = (this.#server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  #authorized(req: IncomingMessage): boolean {
    if (this.#tokenDigest === null) return true;
    const header = req.headers.authorization ?? '';
    const given = header.startsWith('Bearer ') ? header.slice(7) : '';
    // Compare digests: equal length always, so timingSafeEqual never throws and leaks nothing about the length.
    return timingSafeEqual(createHash('sha256').update(given).digest(), this.#tokenDigest);
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const g = this.#gateway;
    if (url.pathname === '/health') return json(res, 200, { status: 'ok' });
    if (url.pathname === '/ready') return json(res, g.ready ? 200 : 503, { ready: g.ready, version: g.plan?.version });
    if (!this.#authorized(req)) {
      res.setHeader('www-authenticate', 'Bearer realm="nanogate-admin"');
      return json(res, 401, { code: 'NG_ERR_ADMIN_UNAUTHORIZED', title: 'a valid bearer token is required' });
    }
    if (req.method === 'GET' && url.pathname === '/status') return json(res, 200, g.status());
    if (req.method === 'GET' && url.pathname === '/config') return json(res, 200, { version: g.plan.version, config: redact(g.config), history: g.history });
    if (req.method === 'POST' && url.pathname === '/reload') {
      try {
        const r = await g.reload();
        return json(res, 200, r);
      } catch (err) {
        return json(res, 422, { code: 'NG_ERR_CONFIG_INVALID', title: 'the config was refused; the previous one keeps serving', detail: (err as Error).message });
      }
    }
    if (req.method === 'POST' && url.pathname === '/_fault/crash-worker') {
      const ok = g.crashWorker(Number(url.searchParams.get('index') ?? 0));
      return json(res, ok ? 202 : 404, { crashed: ok });
    }
    return json(res, 404, { code: 'NG_ERR_ADMIN_NOT_FOUND', title: 'no such admin endpoint' });
  }
}

function redact(config: unknown): unknown {
  return JSON.parse(JSON.stringify(config, (k, v) => (k === 'token' || k === 'passphrase' ? '[redacted]' : v)));
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': status >= 400 && status !== 503 ? 'application/problem+json' : 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

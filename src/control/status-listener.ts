import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { problem } from './admin.js';
import * as probes from './probes.js';
import type { Gateway } from './gateway.js';
import { closeServer, listenOn } from '../shared/http-server.js';

const PATHS: Readonly<Record<string, (g: Gateway, req: IncomingMessage, res: ServerResponse) => void>> = {
  '/health': (_g, _req, res) => probes.health(res),
  '/ready': (g, _req, res) => probes.ready(g, res),
  '/metrics': (g, req, res) => probes.metrics(g, req, res),
};

/**
 * The status listener (`status: { host, port }`): /health, /ready and /metrics on a port of their own, without the
 * admin token, for probes and scrapers that should not hold it. It serves nothing else: every other path is 404,
 * whatever the token, so the admin API (config, routes, drain…) is never reachable here. Read-only, GET and HEAD.
 * Served by the control plane like the admin API.
 */
export class StatusListener {
  readonly #server: Server;
  port = 0;

  constructor(gateway: Gateway) {
    this.#server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?', 1)[0];
      const serve = Object.hasOwn(PATHS, path) ? PATHS[path] : undefined;
      if (serve === undefined) return problem(res, 'NG_ERR_ADMIN_NOT_FOUND', `the status listener serves only ${Object.keys(PATHS).join(', ')}`);
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        return problem(res, 'NG_ERR_ADMIN_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}`, { allow: 'GET, HEAD' });
      }
      try {
        serve(gateway, req, res);
      } catch (err) {
        gateway.log.error({ err: (err as Error).message, url: path }, 'status request failed');
        if (!res.headersSent) problem(res, 'NG_ERR_ADMIN_INTERNAL');
        else res.destroy();
      }
    });
  }

  async listen(host: string, port: number): Promise<void> {
    this.port = await listenOn(this.#server, host, port);
  }

  close(): Promise<void> {
    return closeServer(this.#server);
  }
}

import uWS from 'uWebSockets.js';
import type { PlanListenerTls } from './compile.js';

/**
 * The worker's uWS listen side: a plain App, or an SSLApp with the default certificate and one SNI entry per host
 * name (`addServerName`). uWS 20.30 cannot swap the certificate of a running SSLApp's default context, so a
 * certificate reload opens a new SSLApp on the same port (SO_REUSEPORT, as the workers already share it) and then
 * closes the old listen socket: new connections reach the new app, connections already open stay with the old app
 * until they end. The old apps are closed when the thread exits.
 *
 * What uWS 20.30 (uSockets' OpenSSL context) lets one set: certificate, key, passphrase, DH parameters, the cipher
 * list (TLS 1.2 suites) and the low-memory mode; the protocol floor is TLS 1.2, fixed by uSockets; TLS 1.3 suites,
 * curves, session tickets, OCSP stapling and ALPN are not configurable.
 */


function options(tls: PlanListenerTls, cert: string, key: string, passphrase: string | undefined): uWS.AppOptions {
  const o: uWS.AppOptions = { cert_file_name: cert, key_file_name: key };
  if (passphrase !== undefined) o.passphrase = passphrase;
  if (tls.ciphers !== null) o.ssl_ciphers = tls.ciphers;
  if (tls.dhParams !== null) o.dh_params_file_name = tls.dhParams;
  if (tls.preferLowMemory) o.ssl_prefer_low_memory_usage = true;
  return o;
}

/** Puts the gateway's handlers on one router of an app (the app itself, or an SNI name's router). */
export type Register = (router: uWS.TemplatedApp) => void;

export function createApp(tls: PlanListenerTls | null, register: Register): { app: uWS.TemplatedApp; routers: uWS.TemplatedApp[] } {
  if (tls === null) {
    const app = uWS.App();
    register(app);
    return { app, routers: [app] };
  }
  const app = uWS.SSLApp(options(tls, tls.cert, tls.key, tls.passphrase));
  register(app);
  const routers = [app];
  // uWS keeps a router per server name: `domain(name)` selects the one later handlers go to, so each SNI entry
  // gets the same handlers (routing by host stays nanogate's own, from the Host header).
  const domains = (app as unknown as { domain(name: string): uWS.TemplatedApp }).domain.bind(app);
  for (const s of tls.servers) {
    app.addServerName(s.hostname, options(tls, s.cert, s.key, s.passphrase));
    const router = domains(s.hostname);
    register(router);
    routers.push(router);
  }
  // A name no entry has is served the default certificate; the callback only keeps uWS from logging about it.
  if (tls.servers.length > 0) app.missingServerName(() => {});
  return { app, routers };
}

export class Listener {
  readonly #host: string;
  readonly #register: Register;
  #app: uWS.TemplatedApp;
  #routers: uWS.TemplatedApp[];
  #socket: uWS.us_listen_socket | null = null;
  #port = 0;
  readonly #retired: uWS.TemplatedApp[] = [];

  constructor(tls: PlanListenerTls | null, host: string, register: Register) {
    this.#host = host;
    this.#register = register;
    ({ app: this.#app, routers: this.#routers } = createApp(tls, register));
  }

  /** the routers of the app that takes new connections, for handlers registered after it was made */
  get routers(): readonly uWS.TemplatedApp[] {
    return this.#routers;
  }

  /** listens on host:port; calls back with the bound port, or 0 when it could not */
  listen(port: number, done: (port: number) => void): void {
    this.#app.listen(this.#host, port, (token) => {
      if (!token) return done(0);
      this.#socket = token;
      this.#port = uWS.us_socket_local_port(token);
      done(this.#port);
    });
  }

  /**
   * New certificates for new connections: the new app listens first, then the old listen socket closes, so the port
   * is never without a listener. Returns false (the old app keeps serving) when the new one cannot listen.
   */
  swap(tls: PlanListenerTls | null): boolean {
    if (this.#socket === null) return false;
    let next: uWS.TemplatedApp;
    let routers: uWS.TemplatedApp[];
    try {
      ({ app: next, routers } = createApp(tls, this.#register));
    } catch {
      return false;
    }
    let ok = false;
    next.listen(this.#host, this.#port, (token) => {
      if (!token) return;
      ok = true;
      uWS.us_listen_socket_close(this.#socket!);
      this.#socket = token;
      this.#retired.push(this.#app);
      this.#app = next;
      this.#routers = routers;
    });
    if (!ok) (next as unknown as { close(): void }).close();
    return ok;
  }

  closeListen(): void {
    if (this.#socket !== null) {
      uWS.us_listen_socket_close(this.#socket);
      this.#socket = null;
    }
  }

  /** closes every connection of every app (thread exit: an open uWS handle would abort the process) */
  close(): void {
    this.closeListen();
    for (const app of [this.#app, ...this.#retired]) (app as unknown as { close(): void }).close();
  }
}

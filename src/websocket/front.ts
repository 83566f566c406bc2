import { performance } from 'node:perf_hooks';
import uWS, { type HttpRequest, type HttpResponse, type TemplatedApp, type WebSocketBehavior, type us_socket_context_t } from 'uWebSockets.js';
import { randomBytes } from 'node:crypto';
import type { ErrorCode } from '../errors/codes.js';
import type { HandlerState } from '../worker/handler.js';
import { firstUntrusted, hasDotSegment, upstreamPath } from '../worker/handler.js';
import type { RouteRuntime } from '../worker/runtime.js';
import { clock } from '../shared/clock.js';
import { createLimiter, type Limiter } from '../policies/rate-limit/limiter.js';
import { ConnectionTable } from './connection-table.js';
import { UpgradeRequest } from './request.js';
import { WsConnection, type WsHost, type WsUserData } from './connection.js';
import { GOING_AWAY } from './close-codes.js';
import { MESSAGE_CEILING } from './schema.js';
import { peerAddress } from '../worker/peer-address.js';

/**
 * The WebSocket front end of a worker: one `app.ws('/*')` whose upgrade handler matches the route with the worker's
 * router. A route without a `websocket` section yields the request (req.setYield) to the HTTP handler, which
 * forwards it as before; a WebSocket route gets its access phase, its upstream handshake and then the relay
 * (connection.ts). The handler is registered only once a plan has a WebSocket route: until then upgrade requests
 * cost nothing more than before.
 *
 * uWS's own limits are set once for the App, so they are the widest any route may ask for: messages up to
 * MESSAGE_CEILING (each route's maxMessageBytes is checked on every message, and a larger one closes with 1009);
 * no uWS idle timeout or automatic pings (per-route timers run from the worker's clock, once a second).
 */

/** uWS drops a send beyond this backlog; the relay pauses the upstream far below it (backpressureBytes). */
const UWS_MAX_BACKPRESSURE = 64 * 1024 * 1024 + 2 * MESSAGE_CEILING;
const TICK_MS = 1000;

export class WebSocketFront implements WsHost {
  readonly #state: HandlerState;
  readonly #open = new Set<WsConnection>();
  /** connections between upgrade request and open (access phase, upstream handshake) */
  #pending = 0;
  readonly #idPrefix: string;
  #seq = 0;
  readonly proto: string;
  #registered = false;
  #unregisterTick: (() => void) | null = null;
  #lastTick = 0;
  /** per route runtime: its consumer message limiter and connection table (made on first use) */
  readonly #limiters = new WeakMap<RouteRuntime, Limiter>();
  readonly #tables = new WeakMap<RouteRuntime, ConnectionTable>();
  /** called when the last connection ended (the worker may be waiting for it to exit) */
  onIdle: (() => void) | null = null;

  constructor(state: HandlerState, workerIndex: number) {
    this.#state = state;
    this.#idPrefix = randomBytes(4).toString('hex') + workerIndex.toString(36) + '-ws';
    this.proto = state.tls ? 'https' : 'http';
  }

  get viaValue(): string {
    return this.#state.viaValue;
  }
  get requestIdHeader(): string {
    return this.#state.runtime.plan.proxy.requestIdHeader;
  }
  /** open connections plus those still in their handshake */
  get active(): number {
    return this.#open.size + this.#pending;
  }

  /** Registers the ws handler when the plan has a WebSocket route (once; uWS cannot take it back). */
  attach(routers: readonly TemplatedApp[], routes: readonly RouteRuntime[]): void {
    if (this.#registered || !routes.some((r) => r.plan.websocket !== null)) return;
    this.#registered = true;
    for (const router of routers) router.ws<WsUserData>('/*', this.#behavior());
    this.#unregisterTick = clock.register((now) => this.#tick(now));
  }

  /** a router made after attach (the listener's app for new certificates) takes WebSockets too once they are on */
  registerOn(router: TemplatedApp): void {
    if (this.#registered) router.ws<WsUserData>('/*', this.#behavior());
  }

  #behavior(): WebSocketBehavior<WsUserData> {
    return {
      maxPayloadLength: MESSAGE_CEILING,
      maxBackpressure: UWS_MAX_BACKPRESSURE,
      closeOnBackpressureLimit: 0,
      idleTimeout: 0,
      sendPingsAutomatically: false,
      compression: uWS.DISABLED,
      upgrade: (res, req, context) => this.#upgrade(res, req, context),
      open: (ws) => ws.getUserData().c.opened(ws),
      message: (ws, message, isBinary) => ws.getUserData().c.fromClient(message, isBinary),
      drain: (ws) => ws.getUserData().c.drained(),
      pong: (ws) => ws.getUserData().c.pong(),
      close: (ws, code, message) => ws.getUserData().c.clientClosed(code, message),
    };
  }

  #upgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t): void {
    const t0 = performance.now();
    const state = this.#state;
    const rt = state.runtime;
    const r = new UpgradeRequest(req, rt.plan.proxy.requestIdHeader);
    let host = '';
    if (rt.hostRouting) {
      host = r.host.toLowerCase();
      const colon = host.lastIndexOf(':');
      if (colon > 0 && host.indexOf(']') < colon) host = host.slice(0, colon);
    }
    const route = rt.match(host, r.path, r);
    if (route === null || route.plan.websocket === null) {
      // Not a WebSocket route: the HTTP handler takes the request, as it did before WebSocket routes existed.
      req.setYield(true);
      return;
    }
    state.counters.add(0 /* REQUESTS */);
    const requestId = r.requestId !== null && /^[\x21-\x7e]{1,200}$/.test(r.requestId) ? r.requestId : this.#idPrefix + (++this.#seq).toString(36);
    const peer = peerAddress(res);
    const trusted = rt.trusted.size > 0 && rt.trusted.has(peer);
    const clientIp = trusted && r.xff !== null ? firstUntrusted(r.xff, peer, rt) : peer;
    const c = new WsConnection(res, context, this, route, r, requestId, peer, trusted, clientIp, t0);
    res.onAborted(c.onAborted);
    this.#pending++;
    const limits = rt.plan.limits;
    if (r.bytes > limits.maxHeaderBytes) return c.refuse('NG_ERR_REQUEST_HEADERS_TOO_LARGE', `the header section exceeds ${limits.maxHeaderBytes} bytes`);
    if (r.hostCount !== 1) return c.refuse('NG_ERR_REQUEST_BAD_HEADER', r.hostCount === 0 ? 'the Host header is missing' : 'more than one Host header');
    if (hasDotSegment(r.path)) return c.refuse('NG_ERR_REQUEST_BAD_PATH', 'the path has "." or ".." segments');
    if (state.draining) return c.refuse('NG_ERR_GATEWAY_DRAINING', 'this gateway is shutting down; retry');
    if (Atomics.load(rt.flags, route.flagCell) !== 0) return c.refuse('NG_ERR_ROUTE_DISABLED', `route "${route.plan.name}" is disabled`);
    // RFC 6455 section 4.2.2: an unsupported version is answered 426 with the versions the server speaks.
    if (r.version !== '13') return c.refuse('NG_ERR_WS_VERSION', 'Sec-WebSocket-Version must be 13', ['sec-websocket-version', '13']);
    c.setTarget(upstreamPath(route, r.path));
    c.run();
  }

  // ------------------------------------------------------------------------------------ WsHost

  refused(code: ErrorCode, route: RouteRuntime): void {
    this.#state.counters.add(7 /* GATEWAY_ERRORS */);
    this.#state.rejected(code, route);
  }

  opened(c: WsConnection): void {
    this.#pending--;
    this.#open.add(c);
    this.#state.counters.status(101);
  }

  finished(c: WsConnection): void {
    if (!this.#open.delete(c)) this.#pending--;
    if (this.active === 0 && this.onIdle !== null) this.onIdle();
  }

  limiter(route: RouteRuntime): Limiter | null {
    const check = route.plan.websocket?.consumerMessages ?? null;
    if (check === null) return null;
    let l = this.#limiters.get(route);
    if (l === undefined) this.#limiters.set(route, (l = createLimiter(check, null, true)));
    return l;
  }

  table(route: RouteRuntime): ConnectionTable | null {
    const sab = route.plan.websocket?.connections ?? null;
    if (sab === null) return null;
    let t = this.#tables.get(route);
    if (t === undefined) this.#tables.set(route, (t = new ConnectionTable(sab)));
    return t;
  }

  // ------------------------------------------------------------------------------------ timers, drain

  #tick(now: number): void {
    if (now - this.#lastTick < TICK_MS) return;
    this.#lastTick = now;
    for (const c of this.#open) c.tick(now);
  }

  /** The drain timeout passed: every open connection is closed with 1001, both ways. */
  closeAll(reason: string): void {
    for (const c of [...this.#open]) c.close(GOING_AWAY, reason);
  }

  stop(): void {
    this.#unregisterTick?.();
    this.#unregisterTick = null;
  }
}

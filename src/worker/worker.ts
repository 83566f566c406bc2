import { parentPort, workerData } from 'node:worker_threads';
import uWS from 'uWebSockets.js';
import type { Plan } from '../config/plan.js';
import { Runtime, type RouteRuntime } from './runtime.js';
import { createHandler, setCertificateHeaders, type HandlerState } from './handler.js';
import { WorkerCounters, IN_FLIGHT } from '../shared/counters.js';
import { clock } from '../shared/clock.js';
import { Rebalancer } from './rebalance.js';
import type { Exchange } from './exchange.js';
import type { ToWorker, FromWorker } from '../control/messages.js';
import { CONSUMERS_SERVICE } from '../identity/consumers.js';
import { ERRORS, type ErrorCode } from '../errors/codes.js';
import { WorkerMetrics } from '../observe/worker-metrics.js';
import { ROUTE_UNMATCHED, type ObserveService } from '../observe/metrics-layout.js';
import { flushAccessLogs, reopenAccessLogs } from '../observe/access-log-sink.js';
import { closeSpanExporters } from '../observe/span-exporter.js';
import { purgeHere, setPurgeBroadcaster } from '../policies/cache/purge-local.js';
import { setL2Logger } from '../policies/cache/l2-redis.js';
import { setApqLogger } from '../policies/graphql/persisted-redis.js';
import { WebSocketFront } from '../websocket/front.js';
import { Listener } from '../tls/uws-listener.js';
import { NodeListener, certificateHeaderNames } from '../node-listener/listener.js';
import { keepBuiltinPrototypesFast } from '../shared/fast-prototypes.js';

// every module of this thread is loaded now (ioredis among them, for the cache's L2): see src/shared/fast-prototypes.ts
keepBuiltinPrototypesFast();

/**
 * A data-plane thread: its own uWS App on the shared port (SO_REUSEPORT), the current plan's runtime, and nothing
 * else. It takes new plans from the control plane without dropping a request: requests already running keep the
 * route object they started with; new ones see the new runtime.
 */

interface WorkerInit {
  index: number;
  workers: number;
  plan: Plan;
  counters: SharedArrayBuffer;
}

const init = workerData as WorkerInit;
const port = parentPort!;
const send = (msg: FromWorker) => port.postMessage(msg);
const counters = new WorkerCounters(init.counters, init.index);
const rebalancer = new Rebalancer(init.counters, init.index, init.workers);
let draining = false;
// observability: the metrics region comes with the plan (absent when a plan was compiled without a Gateway)
const observeService = init.plan.services.observe as ObserveService | undefined;
const metrics = observeService === undefined ? null : new WorkerMetrics(observeService, init.index, (slot, name) => send({ type: 'metrics-plan', index: init.index, slot, name }));

/** a plan prepared and waiting for its commit (see the 'plan-prepare' message) */
let pending: Runtime | null = null;
let drainTimer: NodeJS.Timeout | null = null;

/**
 * The worker's side of every exchange (HandlerState). A class, not an object literal: V8 keeps an object literal
 * with getters in a shape its optimizing compiler does not specialise, so every `host.closing`, `host.finished`…
 * of the request path was a generic property load (≈100 instructions each, ~20 a request, found in --trace-turbo
 * graphs); on a class instance they are a field load or an inlined call.
 */
class WorkerState implements HandlerState {
  runtime = new Runtime(init.plan, null, init.index);
  readonly tls = init.plan.listen.tls !== null;
  draining = false;
  inFlight = 0;
  readonly counters = counters;

  // During a drain every response closes its connection; otherwise a busy worker sheds a few (rebalance.ts).
  get closing(): boolean {
    return draining || rebalancer.shouldClose();
  }

  get viaValue(): string {
    return this.runtime.viaValue;
  }

  onInternalError(err: Error): void {
    send({ type: 'internal-error', index: init.index, message: err.message, stack: err.stack ?? '' });
  }

  started(): void {
    this.inFlight++;
    counters.add(IN_FLIGHT);
  }

  rejected(code: ErrorCode, route: RouteRuntime | null): void {
    metrics?.rejected(code, ERRORS[code].status, route === null ? ROUTE_UNMATCHED : route.metricsSlot);
  }

  attempted(ex: Exchange): void {
    metrics?.attempted(ex);
  }

  attemptFailed(ex: Exchange, code: ErrorCode): void {
    metrics?.attemptFailed(ex, code);
  }

  finished(ex: Exchange): void {
    this.inFlight--;
    counters.add(IN_FLIGHT, -1);
    counters.status(ex.status || 499);
    metrics?.finished(ex);
    // Not inside the cork that is still writing this response: exit once it has left.
    if (this.draining && this.inFlight === 0 && websockets.active === 0) setImmediate(exit, 0);
  }
}

const state = new WorkerState();

// an invalidation in this worker's cache reaches the other workers through the control plane
setPurgeBroadcaster((kind, value) => send({ type: 'cache-invalidate', index: init.index, kind, value }));
// the cache L2's Redis transitions are logged by the control plane (a worker has no logger of its own)
const bridgeLog = {
  info: (fields: object, msg: string) => send({ type: 'log', index: init.index, level: 'info', msg, fields: fields as Record<string, unknown> }),
  warn: (fields: object, msg: string) => send({ type: 'log', index: init.index, level: 'warn', msg, fields: fields as Record<string, unknown> }),
  error: (fields: object, msg: string) => send({ type: 'log', index: init.index, level: 'error', msg, fields: fields as Record<string, unknown> }),
};
setL2Logger(bridgeLog);
// so are the GraphQL APQ store's
setApqLogger(bridgeLog);

const unregisterSweep = clock.register((now) => {
  state.runtime.sweep(now);
  rebalancer.tick(now);
});
metrics?.startGauges(() => state.runtime);

// uWS adds "uWebSockets: 20" to every response it writes (HttpResponse::writeMark) unless its event loop is
// "silent": a server fingerprint that no headers policy could remove. The switch is the addon's `_cfg("silent")`
// (uWS_cfg in addon.cpp, which sets LoopData::noMark); the loop is per thread, so every worker sets it before its
// App answers anything. test/regressions/uws-fingerprint-header.test.ts checks that no response carries it.
uWS._cfg('silent');

const plan = init.plan;
// WebSocket routes (src/websocket/): registered with the first plan that has one, on every router of the listener
const websockets = new WebSocketFront(state, init.index);
const handler = createHandler(state, init.index);
// plain or TLS (SNI certificates, reload without a restart: src/tls/uws-listener.ts); an app made for new
// certificates gets the same handlers
const listener = new Listener(plan.listen.tls, plan.listen.host, (router) => {
  router.any('/*', handler);
  websockets.registerOn(router);
});
websockets.attach(listener.routers, state.runtime.routes);

// The node:http2 listener (listen.http2, src/node-listener/): one per gateway, in worker 0 (Node 20 cannot share a
// port between threads' own listeners); it calls a handler of its own, over the same state and runtime.
const h2 = plan.listen.http2;
const nodeListener = h2 !== null && init.index === 0 ? new NodeListener(h2, createHandler(state, init.index, !h2.h2c, h2.clientCertificates !== null)) : null;
// the client-certificate headers are dropped from client requests on every listener of every worker
setCertificateHeaders(certificateHeaderNames(h2));

listener.listen(plan.listen.port, (bound) => {
  if (bound === 0) {
    send({ type: 'listen-failed', index: init.index, reason: `cannot listen on ${plan.listen.host}:${plan.listen.port}` });
    process.exit(3);
  }
  if (nodeListener === null) return send({ type: 'listening', index: init.index, port: bound });
  nodeListener.listen((http2Port) => {
    if (http2Port === 0) {
      closeListen();
      listener.close();
      send({ type: 'listen-failed', index: init.index, reason: `cannot listen on ${h2!.host}:${h2!.port} (listen.http2)` });
      setImmediate(() => process.exit(3));
      return;
    }
    send({ type: 'listening', index: init.index, port: bound, http2Port });
  });
});

function closeListen(): void {
  listener.closeListen();
  nodeListener?.closeListen();
}

let exiting = false;

function exit(code: number): void {
  if (exiting) return;
  exiting = true;
  closeListen();
  // Idle keep-alive connections are uWS handles too: a thread that ends with any open aborts the process.
  listener.close();
  nodeListener?.close();
  unregisterSweep();
  websockets.stop();
  for (const u of state.runtime.upstreams) for (const p of u.pools) p.close();
  for (const p of state.runtime.mirrors.pools()) p.close();
  for (const p of state.runtime.retiring) p.close();
  if (pending !== null) pending.discard(state.runtime);
  if (drainTimer) clearTimeout(drainTimer);
  send({ type: 'exited', index: init.index, inFlight: state.inFlight });
  metrics?.stop();
  // Let the message leave before the thread ends; buffered access-log lines and queued spans get one last try.
  const flushed = Promise.all([flushAccessLogs(), closeSpanExporters()]);
  const limit = new Promise((resolve) => setTimeout(resolve, 1000));
  void Promise.race([flushed, limit]).finally(() => setImmediate(() => process.exit(code)));
}

// A thread that dies with uWS sockets open takes the whole process down (Node aborts), so an uncaught error
// closes every socket first and exits this thread alone; the control plane starts a fresh one.
process.on('uncaughtException', (err) => {
  send({ type: 'internal-error', index: init.index, message: err.message, stack: err.stack ?? '' });
  exit(70);
});

port.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    // A new plan comes in two steps so that it applies to every worker or to none: prepare builds the runtime
    // (the slow part: pools, policy hooks) while the current one keeps serving; commit swaps it in with one
    // assignment, so each request sees a whole old or a whole new plan; abort drops it.
    case 'plan-prepare': {
      if (pending !== null) pending.discard(state.runtime);
      pending = null;
      try {
        pending = new Runtime(msg.plan, state.runtime, init.index);
        send({ type: 'plan-prepared', index: init.index, version: msg.plan.version });
      } catch (err) {
        send({ type: 'plan-failed', index: init.index, version: msg.plan.version, message: (err as Error).message });
      }
      break;
    }
    case 'plan-commit': {
      if (pending === null || pending.plan.version !== msg.version) break;
      const old = state.runtime;
      state.runtime = pending;
      pending = null;
      old.retire(state.runtime);
      websockets.attach(listener.routers, state.runtime.routes);
      // changed certificate files (or TLS options): new connections get the new ones
      if (old.plan.listen.tls?.digest !== state.runtime.plan.listen.tls?.digest && !listener.swap(state.runtime.plan.listen.tls)) {
        send({ type: 'internal-error', index: init.index, message: 'the listener could not reopen with the new certificates; the previous ones keep serving', stack: '' });
      }
      const nextH2 = state.runtime.plan.listen.http2;
      setCertificateHeaders(certificateHeaderNames(nextH2));
      if (nodeListener !== null && nextH2 !== null && nextH2 !== old.plan.listen.http2 && !nodeListener.swap(nextH2)) {
        send({ type: 'internal-error', index: init.index, message: 'listen.http2: this change (client certificates on/off, all required or not, h2c) needs a restart; the previous settings keep serving', stack: '' });
      }
      send({ type: 'plan-applied', index: init.index, version: msg.version });
      break;
    }
    case 'plan-abort': {
      if (pending !== null && pending.plan.version === msg.version) {
        pending.discard(state.runtime);
        pending = null;
      }
      break;
    }
    case 'upstream-load': {
      // Per-node requests in flight on this worker, for the admin API (GET /upstreams).
      const rt = state.runtime;
      send({
        type: 'upstream-load',
        index: init.index,
        id: msg.id,
        version: rt.plan.version,
        upstreams: rt.upstreams.map((u) => ({ name: u.name, inFlight: u.pools.map((p) => p.inFlight), resent: u.pools.map((p) => p.resent ?? 0), lastErrors: u.lastErrors })),
      });
      break;
    }
    case 'consumers': {
      // Policies read the table through services (src/identity/lookup.ts) and see this one from the next request.
      state.runtime.plan.services[CONSUMERS_SERVICE] = msg.table;
      if (pending !== null) pending.plan.services[CONSUMERS_SERVICE] = msg.table;
      send({ type: 'consumers-applied', index: init.index, generation: msg.generation });
      break;
    }
    case 'reopen-logs':
      reopenAccessLogs();
      break;
    case 'cache-purge':
      send({ type: 'cache-purged', index: init.index, id: msg.id, removed: purgeHere(msg.kind, msg.value) });
      break;
    case 'drain': {
      // Stop accepting; finish what is in flight (each response closes its connection); then exit.
      state.draining = true;
      draining = true;
      closeListen();
      if (state.inFlight === 0 && websockets.active === 0) return exit(0);
      // WebSocket connections stay open until the drain timeout, then close with 1001 both ways; the thread exits
      // once their upstreams have answered the close, or a second later.
      websockets.onIdle = () => {
        if (state.inFlight === 0) setImmediate(exit, 0);
      };
      drainTimer = setTimeout(() => {
        if (websockets.active === 0) return exit(0);
        websockets.closeAll('gateway shutting down');
        drainTimer = setTimeout(() => exit(0), 1000);
      }, msg.timeoutMs);
      break;
    }
    case 'crash':
      // Fault injection for tests of the supervisor (only reachable when NANOGATE_FAULT_INJECTION=1).
      setImmediate(() => {
        throw new Error('injected worker crash');
      });
      break;
  }
});

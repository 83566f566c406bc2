import { parentPort, workerData } from 'node:worker_threads';
import uWS from 'uWebSockets.js';
import type { Plan } from '../config/plan.js';
import { Runtime } from './runtime.js';
import { createHandler, type HandlerState } from './handler.js';
import { WorkerCounters, IN_FLIGHT } from '../shared/counters.js';
import { clock } from '../shared/clock.js';
import type { Exchange } from './exchange.js';
import type { ToWorker, FromWorker } from '../control/messages.js';

/**
 * A data-plane thread: its own uWS App on the shared port (SO_REUSEPORT), the current plan's runtime, and nothing
 * else. It takes new plans from the control plane without dropping a request: requests already running keep the
 * route object they started with; new ones see the new runtime.
 */

interface WorkerInit {
  index: number;
  plan: Plan;
  counters: SharedArrayBuffer;
}

const init = workerData as WorkerInit;
const port = parentPort!;
const send = (msg: FromWorker) => port.postMessage(msg);
const counters = new WorkerCounters(init.counters, init.index);

let listenSocket: uWS.us_listen_socket | null = null;
let drainTimer: NodeJS.Timeout | null = null;

const state: HandlerState = {
  runtime: new Runtime(init.plan, null, init.index),
  tls: init.plan.listen.tls !== null,
  draining: false,
  closing: false,
  inFlight: 0,
  counters,
  get viaValue() {
    return state.runtime.viaValue;
  },
  onInternalError(err: Error) {
    send({ type: 'internal-error', index: init.index, message: err.message, stack: err.stack ?? '' });
  },
  started() {
    state.inFlight++;
    counters.add(IN_FLIGHT);
  },
  finished(ex: Exchange) {
    state.inFlight--;
    counters.add(IN_FLIGHT, -1);
    counters.status(ex.status || 499);
    if (state.draining && state.inFlight === 0) exit(0);
  },
};

const unregisterSweep = clock.register((now) => state.runtime.sweep(now));

const plan = init.plan;
const app = plan.listen.tls
  ? uWS.SSLApp({ cert_file_name: plan.listen.tls.cert, key_file_name: plan.listen.tls.key, passphrase: plan.listen.tls.passphrase })
  : uWS.App();

app.any('/*', createHandler(state, init.index));

app.listen(plan.listen.host, plan.listen.port, (token) => {
  if (!token) {
    send({ type: 'listen-failed', index: init.index, reason: `cannot listen on ${plan.listen.host}:${plan.listen.port}` });
    process.exit(3);
  }
  listenSocket = token;
  send({ type: 'listening', index: init.index, port: uWS.us_socket_local_port(token) });
});

function closeListen(): void {
  if (listenSocket !== null) {
    uWS.us_listen_socket_close(listenSocket);
    listenSocket = null;
  }
}

function exit(code: number): void {
  closeListen();
  // Idle keep-alive connections are uWS handles too: a thread that ends with any open aborts the process.
  (app as unknown as { close(): void }).close();
  unregisterSweep();
  for (const u of state.runtime.upstreams) for (const p of u.pools) p.close();
  if (drainTimer) clearTimeout(drainTimer);
  send({ type: 'exited', index: init.index, inFlight: state.inFlight });
  // Let the message leave before the thread ends.
  setImmediate(() => process.exit(code));
}

port.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'plan': {
      const old = state.runtime;
      const next = new Runtime(msg.plan, old, init.index);
      state.runtime = next;
      old.retire(next);
      send({ type: 'plan-applied', index: init.index, version: msg.plan.version });
      break;
    }
    case 'drain': {
      // Stop accepting; finish what is in flight (each response closes its connection); then exit.
      state.draining = true;
      state.closing = true;
      closeListen();
      if (state.inFlight === 0) return exit(0);
      drainTimer = setTimeout(() => exit(0), msg.timeoutMs);
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

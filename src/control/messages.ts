import type { Plan } from '../config/plan.js';

/** Messages between the control plane and a worker thread. */
export type ToWorker =
  | { type: 'plan'; plan: Plan }
  | { type: 'drain'; timeoutMs: number }
  | { type: 'crash' };

export type FromWorker =
  | { type: 'listening'; index: number; port: number }
  | { type: 'listen-failed'; index: number; reason: string }
  | { type: 'plan-applied'; index: number; version: number }
  | { type: 'exited'; index: number; inFlight: number }
  | { type: 'internal-error'; index: number; message: string; stack: string };

/**
 * The load-generator process: forked by the orchestrator, it runs one load phase at a time and sends back encoded
 * histograms and counters. It has its own event loop, shared with nothing that is measured.
 */
import { OpenLoop } from './openloop.js';
import { runMax } from './maxload.js';
import { runWs } from './wsload.js';
import type { FromLoadgen, ToLoadgen } from './load-types.js';

const send = (msg: FromLoadgen): void => {
  process.send?.(msg);
};

process.on('message', (msg: ToLoadgen) => {
  if (msg.type === 'exit') {
    process.exit(0);
  }
  if (msg.type !== 'run') return;
  const { id, job } = msg;
  const progress = (responses: number, elapsedMs: number) => send({ type: 'progress', id, responses, elapsedMs });
  const run = job.websocket ? runWs(job, progress) : job.kind === 'fixed' ? new OpenLoop(job).run(progress) : runMax(job, progress);
  run.then(
    (result) => send({ type: 'result', id, result }),
    (err: Error) => send({ type: 'failed', id, message: err.message }),
  );
});

// The orchestrator went away (crash, kill): nothing to report to, so stop.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });

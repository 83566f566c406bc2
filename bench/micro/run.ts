// Entry point for the micro-benchmarks without the CLI: node dist/bench/micro/run.js [--compare] [--save] ...
// (the same as `nanogate bench micro`; --help lists the options).
import { microMain } from '../../src/bench/micro.js';

microMain(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: Error) => { console.error(err.stack ?? err.message); process.exitCode = 1; },
);

#!/usr/bin/env -S node --no-memory-reducer
// Launcher. The CLI is TypeScript compiled into dist/ (`npm run build`, which `npm install` runs through `prepare`);
// a checkout whose dist/ is missing, or older than a file in src/, is built here first.
// --no-memory-reducer (above, and in `npm start`, the systemd unit and the image): V8's memory reducer would compact
// the control plane's heap ~8 s after start-up, a 15-20 ms stall of the CPU a worker needs (docs/performance.md,
// "The control plane's start-up garbage"). A V8 flag of the main thread can only be given on node's command line.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';

// Until a command takes signals over (start and bench do, before anything listens), SIGTERM/SIGINT end the process
// at once and cleanly: nothing is serving yet. Without a handler Node would die of the signal (exit 143/130).
// Once a command listens too, the signal is its business.
const early = (signal) => {
  if (process.listenerCount(signal) === 1) process.exit(0);
};
process.on('SIGTERM', early);
process.on('SIGINT', early);

const root = fileURLToPath(new URL('..', import.meta.url));
const entry = join(root, 'dist', 'src', 'cli', 'main.js');

/** Why dist/ must be built first, or null when it is up to date. */
function staleReason() {
  if (!existsSync(entry)) return 'dist/ is missing';
  const src = join(root, 'src');
  if (!existsSync(src)) return null; // an installed package without sources: dist/ is what there is
  const built = statSync(entry).mtimeMs;
  for (const name of readdirSync(src, { recursive: true })) {
    if (!name.endsWith('.ts')) continue;
    if (statSync(join(src, name)).mtimeMs > built) return `src/${name} changed after the last build`;
  }
  return null;
}

const reason = staleReason();
if (reason !== null) {
  const build = join(root, 'scripts', 'build.mjs');
  console.error(`nanogate: ${reason}; building (npm run build)`);
  // the build's output goes to stderr: stdout stays the command's own (nanogate schema > file)
  const r = spawnSync(process.execPath, [build], { cwd: root, stdio: ['ignore', 2, 2] });
  if (r.status !== 0) {
    if (!existsSync(entry)) {
      console.error('nanogate: the build failed and there is no dist/ to run; run `npm install` (with dev dependencies), then `npm run build`');
      process.exit(1);
    }
    console.error('nanogate: the build failed; running the previous build in dist/');
  }
}

const { main } = await import(pathToFileURL(entry).href);
main(process.argv.slice(2)).then(
  (code) => {
    // start: the gateway has stopped and said so; nothing left may hold the process (a late timer or handle of a
    // dependency), so it ends here. Other commands end when their output has been written.
    if (typeof code === 'number') process.exitCode = code;
    // (after what was written has left: pipes are asynchronous on some systems)
    if (process.argv[2] === 'start') process.stdout.write('', () => process.stderr.write('', () => process.exit()));
  },
  (err) => { console.error(`nanogate: ${err && err.message ? err.message : err}`); process.exitCode = 1; },
);

// `npm run build`: TypeScript into dist/, then the config validator compiled ahead of time (see below).
// bin/nanogate.js runs this too when dist/ is missing or older than src/.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);

let tsc;
try {
  tsc = require.resolve('typescript/bin/tsc');
} catch {
  console.error('build: TypeScript is not installed (a dev dependency): run `npm install` without --omit=dev');
  process.exit(1);
}
const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);

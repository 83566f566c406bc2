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
  // A production install (npm ci --omit=dev) runs `prepare` and `prestart` too: the dist/ built before is what runs.
  const { existsSync } = await import('node:fs');
  if (existsSync(fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url)))) {
    console.error('build: TypeScript is not installed (a dev dependency); keeping the dist/ that is there');
    process.exit(0);
  }
  console.error('build: TypeScript is not installed (a dev dependency) and there is no dist/: run `npm install` without --omit=dev');
  process.exit(1);
}
const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);

// The config validator as Ajv standalone code (src/config/validator.ts says why), from the schema just compiled.
const { writeFileSync } = await import('node:fs');
const { pathToFileURL } = await import('node:url');
const { join } = await import('node:path');
const dist = join(root, 'dist', 'src', 'config');
const standaloneCode = require('ajv/dist/standalone').default;
const { ConfigSchema } = await import(pathToFileURL(join(dist, 'schema.js')).href);
const { createAjv, GENERATED, schemaDigest } = await import(pathToFileURL(join(dist, 'validator.js')).href);
const ajv = createAjv({ code: { source: true } });
const code = standaloneCode(ajv, ajv.compile(ConfigSchema));
writeFileSync(GENERATED, `${code}\nmodule.exports.schemaDigest = ${JSON.stringify(schemaDigest())};\n`);

// The commit being built, for nanogate_build_info (src/observe/control-metrics.ts): NANOGATE_REVISION when set (an
// image built from a tarball has no .git), else git's, else "unknown".
const git = spawnSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, encoding: 'utf8' });
const revision = process.env.NANOGATE_REVISION || (git.status === 0 ? git.stdout.trim() : '') || 'unknown';
writeFileSync(join(root, 'dist', 'build-info.json'), `${JSON.stringify({ revision })}\n`);

import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * Which Node.js runs the gateway. Two things decide it:
 * - the dependencies' floor: 20.19 (undici 7 and the rest of package.json `engines`);
 * - the uWebSockets.js build (`@trufflesuite/uws-js-unofficial` 20.30) ships native binaries for Node ABIs 93, 108
 *   and 115 only (Node 16, 18, 20: binaries/uws_<platform>_<arch>_<abi>.node). On any other Node its loader prints a
 *   warning and falls back to a JavaScript implementation (src/uws.js and dist/index.js in that package) on which
 *   the workers cannot even listen (measured with UWS_USE_FALLBACK=1: "cannot start: cannot listen on ...").
 * So: Node 20.19 or a later 20.x, on a platform that has a binary for ABI 115.
 */
export const SUPPORTED_NODE = '>=20.19 <21';
export const SUPPORTED_MAJOR = 20;
export const SUPPORTED_MIN_MINOR = 19;

export interface RuntimeFacts {
  /** process.version, e.g. "v20.19.1" */
  version: string;
  /** process.versions.modules, the ABI number, e.g. "115" */
  modules: string;
  platform: string;
  arch: string;
  /** file names in the uWS package's binaries/ folder */
  binaries: readonly string[];
  /** UWS_USE_FALLBACK: asks the uWS loader for its JavaScript implementation */
  useFallback?: string;
}

/** Returns null when the gateway can run on `facts`, otherwise one line saying why and what runs. */
export function checkRuntime(facts: RuntimeFacts): string | null {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(facts.version);
  const want = `nanogate runs on Node.js ${SUPPORTED_MAJOR}.${SUPPORTED_MIN_MINOR} or a later ${SUPPORTED_MAJOR}.x`;
  if (m === null) return `nanogate: cannot read the Node.js version "${facts.version}"; ${want}`;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  if (major !== SUPPORTED_MAJOR || minor < SUPPORTED_MIN_MINOR) {
    const why = major > SUPPORTED_MAJOR ? ' (its uWebSockets.js build has no binary for newer Node ABIs)' : '';
    return `nanogate: Node.js ${facts.version} is not supported; ${want}${why}`;
  }
  const binary = `uws_${facts.platform}_${facts.arch}_${facts.modules}.node`;
  if (!facts.binaries.includes(binary)) {
    const have = facts.binaries
      .map((f) => /^uws_(.+)_(\d+)\.node$/.exec(f))
      .filter((x): x is RegExpExecArray => x !== null && x[2] === facts.modules)
      .map((x) => x[1].replace('_', '/'));
    return `nanogate: uWebSockets.js has no binary for ${facts.platform}/${facts.arch} on Node ABI ${facts.modules} (${binary}); it has ${have.length ? have.join(', ') : 'none for this ABI'}`;
  }
  const fallback = facts.useFallback;
  if (fallback === 'true' || fallback === 'True' || fallback === 'TRUE' || fallback === '1') {
    return 'nanogate: UWS_USE_FALLBACK is set, and the gateway cannot serve with the JavaScript fallback of uWebSockets.js; unset it';
  }
  return null;
}

/** The facts of this process. */
export function currentRuntime(): RuntimeFacts {
  let binaries: string[] = [];
  try {
    // the package's main is src/uws.js; its binaries sit beside src/
    const main = createRequire(import.meta.url).resolve('uWebSockets.js');
    binaries = readdirSync(join(dirname(main), '..', 'binaries'));
  } catch {
    // not installed: checkRuntime reports that no binary fits
  }
  return {
    version: process.version,
    modules: process.versions.modules,
    platform: process.platform,
    arch: process.arch,
    binaries,
    useFallback: process.env.UWS_USE_FALLBACK,
  };
}

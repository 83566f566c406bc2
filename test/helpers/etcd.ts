import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closedPort } from './upstream.js';

export interface TestEtcd {
  port: number;
  url: string;
  /** SIGTERM, waits for the exit; the data directory is kept so start() brings the same store back */
  stop(): Promise<void>;
  /** starts it again on the same ports and data directory (after stop) */
  start(): Promise<void>;
  /** stops it and removes its data directory */
  close(): Promise<void>;
}

/** from the PATH unless ETCD names one; scripts/ensure-test-deps.mjs (npm test's pretest) installs it */
export const ETCD = process.env.ETCD ?? 'etcd';

async function healthy(url: string): Promise<boolean> {
  try {
    const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(500) });
    return r.ok && ((await r.json()) as { health?: string }).health === 'true';
  } catch {
    return false;
  }
}

/**
 * A real single-member etcd on free loopback ports with a temporary data directory. Progress notifications every
 * second (`--experimental-watch-progress-notify-interval`) so that watch liveness is seen within a test's time.
 */
export async function startEtcd(): Promise<TestEtcd> {
  const port = await closedPort();
  const peer = await closedPort();
  const dir = mkdtempSync(join(tmpdir(), 'nanogate-etcd-'));
  const url = `http://127.0.0.1:${port}`;
  let child: ChildProcess | null = null;
  const start = async () => {
    const c = spawn(ETCD, [
      '--name', 'test',
      '--data-dir', dir,
      '--listen-client-urls', url,
      '--advertise-client-urls', url,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `test=http://127.0.0.1:${peer}`,
      '--experimental-watch-progress-notify-interval', '1s',
      '--log-level', 'error',
    ], { stdio: 'ignore' });
    child = c;
    // a missing binary fails the test loudly (never a skip): run node scripts/ensure-test-deps.mjs
    let failed: Error | null = null;
    c.once('error', (err) => (failed = new Error(`cannot run ${ETCD}: ${err.message} (node scripts/ensure-test-deps.mjs installs it)`)));
    c.once('exit', (code) => (failed ??= new Error(`etcd exited (${code}) before it was healthy`)));
    const deadline = Date.now() + 10_000;
    while (!(await healthy(url))) {
      if (failed) throw failed;
      if (Date.now() > deadline) throw new Error(`etcd did not become healthy on ${port}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async () => {
    const c = child;
    child = null;
    if (c === null || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGTERM');
    });
  };
  await start();
  return {
    port,
    url,
    start,
    stop,
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

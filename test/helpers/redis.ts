import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { closedPort } from './upstream.js';

export interface TestRedis {
  port: number;
  url: string;
  /** stops the server (SIGKILL-free: SHUTDOWN NOSAVE semantics via SIGTERM) and waits for the port to close */
  stop(): Promise<void>;
  /** starts it again on the same port (after stop) */
  start(): Promise<void>;
  /** SIGSTOP: a server that still accepts connections (the kernel does) and answers nothing, until resume() */
  pause(): void;
  /** SIGCONT after pause(): it answers what was sent meanwhile, then serves again */
  resume(): void;
  /** sends one inline command and returns the raw reply (e.g. "FLUSHALL") */
  command(line: string): Promise<string>;
}

/** from the PATH unless REDIS_SERVER names one; scripts/ensure-test-deps.mjs (npm test's pretest) installs it */
export const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server';

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => s.write('PING\r\n'));
    s.once('data', (d) => {
      s.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * A real redis-server on a free loopback port, without persistence (--save '' --appendonly no). Stop it with
 * stop() in `after`; start() brings it back on the same port (for reconnection tests).
 */
export async function startRedis(): Promise<TestRedis> {
  const port = await closedPort();
  let child: ChildProcess | null = null;
  const start = async () => {
    child = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], {
      stdio: 'ignore',
    });
    // a missing binary fails the test loudly (never a skip): run node scripts/ensure-test-deps.mjs
    let failed: Error | null = null;
    child.once('error', (err) => (failed = new Error(`cannot run ${REDIS_SERVER}: ${err.message} (node scripts/ensure-test-deps.mjs installs it)`)));
    const deadline = Date.now() + 5000;
    while (!(await ping(port))) {
      if (failed) throw failed;
      if (Date.now() > deadline) throw new Error(`redis-server did not start on ${port}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const stop = async () => {
    const c = child;
    child = null;
    if (c === null || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGCONT'); // a paused server would take SIGTERM only once continued
      c.kill('SIGTERM');
    });
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    start,
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    command: (line) =>
      new Promise((resolve, reject) => {
        const s = connect(port, '127.0.0.1');
        s.once('connect', () => s.write(line + '\r\n'));
        s.once('data', (d) => {
          s.destroy();
          resolve(d.toString());
        });
        s.once('error', reject);
      }),
  };
}

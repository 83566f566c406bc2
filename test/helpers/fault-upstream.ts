import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('./fault-upstream-main.js', import.meta.url));

export interface FaultUpstream {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  /** "ok", "hang", "500", "flaky:P" (P % of answers 500) or "slow:MS" */
  setMode(mode: string): Promise<void>;
  /** requests the process received so far */
  received(): Promise<number>;
  /** the same, with how many of them were health checks (GET /health), read at one moment */
  counts(): Promise<{ received: number; healthChecks: number }>;
  /** SIGKILL, as a crashed node */
  kill(): Promise<void>;
  /** starts it again on the same port (after kill) */
  restart(): Promise<void>;
  /** restart() when it is not running */
  restartIfDead(): Promise<void>;
  stop(): Promise<void>;
}

function reply<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: { type: string } & T) => {
      if (m.type !== type) return;
      child.off('message', onMessage);
      child.off('exit', onExit);
      resolve(m);
    };
    const onExit = () => reject(new Error(`fault upstream exited while waiting for ${type}`));
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** A real upstream in its own process (fault-upstream-main.ts) that can be killed, hung, failed or slowed. */
export async function startFaultUpstream(name: string, port = 0): Promise<FaultUpstream> {
  let child: ChildProcess;
  let actualPort = port;
  const spawnIt = async () => {
    child = fork(MAIN, [], { env: { ...process.env, FAULT_NAME: name, FAULT_PORT: String(actualPort) }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const m = await reply<{ port: number }>(child, 'listening');
    actualPort = m.port;
  };
  await spawnIt();
  const exited = () => new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
  return {
    name,
    get port() {
      return actualPort;
    },
    get url() {
      return `http://127.0.0.1:${actualPort}`;
    },
    async setMode(mode: string) {
      const done = reply(child, 'mode-set');
      child.send({ type: 'mode', mode });
      await done;
    },
    async received() {
      const done = reply<{ received: number }>(child, 'count');
      child.send({ type: 'count' });
      return (await done).received;
    },
    async counts() {
      const done = reply<{ received: number; healthChecks: number }>(child, 'count');
      child.send({ type: 'count' });
      const { received, healthChecks } = await done;
      return { received, healthChecks };
    },
    async kill() {
      child.kill('SIGKILL');
      await exited();
    },
    restart: spawnIt,
    async restartIfDead() {
      if (child.exitCode !== null || child.signalCode !== null) await spawnIt();
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited();
      }
    },
  };
}

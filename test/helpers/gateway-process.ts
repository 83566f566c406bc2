import { spawn, type ChildProcess } from 'node:child_process';
import { BIN, ROOT } from './cli.js';
import { writeConfig } from './gateway.js';
import { closedPort } from './upstream.js';

export interface GatewayProcess {
  child: ChildProcess;
  port: number;
  adminPort: number;
  url: string;
  adminUrl: string;
  /** the config file it was started with (rewrite it and send SIGHUP to reload) */
  configFile: string;
  /** every log line so far (pino JSON) */
  logs: string[];
  /** admin GET /status as JSON */
  status(): Promise<Record<string, unknown>>;
  /** SIGTERM, then waits for the exit */
  stop(): Promise<void>;
}

/**
 * A gateway node as its own process (`node bin/nanogate.js start --config FILE`), on free loopback ports, as a
 * cluster member would run. `yaml` must not set listen or admin.
 */
export async function startGatewayProcess(
  yaml: string,
  opts: { workers?: number; timeoutMs?: number; port?: number; reusePort?: boolean; admin?: string; args?: readonly string[]; nodeArgs?: readonly string[]; logLevel?: string } = {},
): Promise<GatewayProcess> {
  const port = opts.port ?? (await closedPort());
  const adminPort = await closedPort();
  const reuse = opts.reusePort !== undefined ? `, reusePort: ${opts.reusePort}` : '';
  const file = writeConfig(`listen: { host: 127.0.0.1, port: ${port}${reuse} }\nadmin: { host: 127.0.0.1, port: ${adminPort}${opts.admin ? `, ${opts.admin}` : ''} }\n${yaml}`);
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), BIN, 'start', '--config', file, '--workers', String(opts.workers ?? 1), ...(opts.args ?? [])], {
    cwd: ROOT,
    env: { ...process.env, NANOGATE_LOG_LEVEL: opts.logLevel ?? 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  let partial = '';
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway process did not start:\n${logs.join('\n')}`)), opts.timeoutMs ?? 20_000);
    const onData = (d: Buffer) => {
      partial += d.toString();
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        logs.push(line);
        if (line.includes('nanogate is serving')) {
          clearTimeout(timer);
          resolve();
        }
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway process exited (${code}):\n${logs.join('\n')}`));
    });
  });
  await ready;
  return {
    child,
    port,
    adminPort,
    url: `http://127.0.0.1:${port}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    configFile: file,
    logs,
    status: async () => (await (await fetch(`http://127.0.0.1:${adminPort}/status`)).json()) as Record<string, unknown>,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

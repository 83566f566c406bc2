import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository root, from dist/test/helpers/cli.js. */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN = fileURLToPath(new URL('../../../bin/nanogate.js', import.meta.url));

export interface CliResult {
  /** exit code, or null when the process had to be killed */
  code: number | null;
  stdout: string;
  stderr: string;
  /** the process did not exit by itself within the time limit */
  timedOut: boolean;
}

/** Runs `node bin/nanogate.js ...args` as a child process; kills it (by its own pid) after `timeoutMs`. */
export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, NANOGATE_LOG_LEVEL: 'error', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 15_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut });
    });
  });
}

import { spawn, fork, execFileSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DIST_BENCH, NANOGATE_BIN } from './paths.js';
import type { FromLoadgen, LoadJob, LoadResult, ToLoadgen } from './load-types.js';

/**
 * The bench's child processes (upstream, gateway, load generator): started here, stopped by PID, and killed on the
 * way out whatever happens (an 'exit' hook sends SIGKILL to any still alive).
 */

const live = new Set<Proc>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const p of live) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
}

let clkTck = 0;
function clockTicksPerSecond(): number {
  if (clkTck) return clkTck;
  try {
    clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    clkTck = 100;
  }
  return clkTck;
}

export class Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly log: WriteStream | null;
  exited = false;
  exitCode: number | null = null;
  readonly #exit: Promise<void>;
  /** the last lines it wrote, for error messages */
  readonly tail: string[] = [];

  constructor(name: string, child: ChildProcess, logFile: string | null) {
    this.name = name;
    this.child = child;
    if (child.pid === undefined) throw new Error(`${name}: could not start`);
    this.pid = child.pid;
    this.log = logFile ? createWriteStream(logFile, { flags: 'a' }) : null;
    live.add(this);
    installExitHook();
    this.#exit = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exited = true;
        this.exitCode = code ?? (signal ? 128 : null);
        live.delete(this);
        resolve();
      });
    });
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      stream.on('data', (d: Buffer) => {
        this.log?.write(d);
        const lines = d.toString('utf8').split('\n').filter(Boolean);
        this.tail.push(...lines);
        if (this.tail.length > 20) this.tail.splice(0, this.tail.length - 20);
      });
    }
  }

  /** utime + stime of the process (all its threads), in µs; null where /proc is not available. */
  cpuMicros(): number | null {
    try {
      const stat = readFileSync(`/proc/${this.pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return ((Number(f[11]) + Number(f[12])) / clockTicksPerSecond()) * 1e6;
    } catch {
      return null;
    }
  }

  waitExit(): Promise<void> {
    return this.#exit;
  }

  /** SIGTERM, then SIGKILL after graceMs. Resolves with the exit code. */
  async stop(graceMs = 15_000): Promise<number | null> {
    if (!this.exited) {
      try {
        process.kill(this.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
      const timer = setTimeout(() => {
        try {
          process.kill(this.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }, graceMs);
      await this.#exit;
      clearTimeout(timer);
    }
    await new Promise<void>((r) => (this.log ? this.log.end(r) : r()));
    return this.exitCode;
  }
}

/** Stops every child still running (used on SIGINT and on failure). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop(5000)));
}

function firstLine<T>(proc: Proc, what: string, timeoutMs: number, pick: (line: string) => T | undefined): Promise<T> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: proc.child.stdout! });
    const timer = setTimeout(() => finish(new Error(`${proc.name}: no ${what} within ${timeoutMs / 1000} s; last output:\n  ${proc.tail.join('\n  ')}`)), timeoutMs);
    const onExit = () => finish(new Error(`${proc.name} exited (code ${proc.exitCode}) before ${what}; last output:\n  ${proc.tail.join('\n  ')}`));
    proc.child.once('exit', () => setTimeout(onExit, 50));
    let done = false;
    function finish(err: Error | null, value?: T) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      rl.close();
      // Keep draining stdout (to the log) so the child never blocks on a full pipe.
      proc.child.stdout?.resume();
      if (err) reject(err);
      else resolve(value as T);
    }
    rl.on('line', (line) => {
      const v = pick(line);
      if (v !== undefined) finish(null, v);
    });
  });
}

export interface UpstreamProc {
  proc: Proc;
  url: string;
  port: number;
}

export async function startUpstream(runDir: string): Promise<UpstreamProc> {
  const child = spawn(process.execPath, [join(DIST_BENCH, 'upstream-server.js'), '--host', '127.0.0.1', '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  const proc = new Proc('bench upstream', child, join(runDir, 'upstream.log'));
  const port = await firstLine(proc, 'port line', 10_000, (line) => {
    try {
      const v = JSON.parse(line) as { port?: number };
      return typeof v.port === 'number' ? v.port : undefined;
    } catch {
      return undefined;
    }
  });
  return { proc, port, url: `http://127.0.0.1:${port}` };
}

export interface GatewayProc {
  proc: Proc;
  port: number;
  adminPort: number;
  workers: number;
}

export async function startGateway(configFile: string, workers: number | undefined, env: Record<string, string>, logFile: string): Promise<GatewayProc> {
  // as the launchers run it (bin/nanogate.js's first line, npm start, deploy/): see collectStartupGarbage
  const args = ['--no-memory-reducer', NANOGATE_BIN, 'start', '--config', configFile];
  if (workers !== undefined) args.push('--workers', String(workers));
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env, NANOGATE_LOG_LEVEL: process.env.NANOGATE_LOG_LEVEL ?? 'info' },
  });
  const proc = new Proc('gateway', child, logFile);
  const serving = await firstLine(proc, '"nanogate is serving" log line', 120_000, (line) => {
    if (!line.includes('nanogate is serving')) return undefined;
    try {
      return JSON.parse(line) as { port: number; admin: number; workers: number };
    } catch {
      return undefined;
    }
  });
  const gw: GatewayProc = { proc, port: serving.port, adminPort: serving.admin, workers: serving.workers };
  // Every worker listens before /ready answers 200.
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${gw.adminPort}/ready`);
      await r.arrayBuffer();
      if (r.status === 200) break;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline || proc.exited) throw new Error(`gateway did not become ready; last output:\n  ${proc.tail.join('\n  ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return gw;
}

/** The load-generator process: one phase at a time. */
export class Loadgen {
  readonly proc: Proc;
  #nextId = 1;
  #pending = new Map<number, { resolve: (r: LoadResult) => void; reject: (e: Error) => void; progress?: (responses: number, elapsedMs: number) => void }>();

  private constructor(proc: Proc) {
    this.proc = proc;
    proc.child.on('message', (msg: FromLoadgen) => {
      if (msg.type === 'ready') return;
      const p = this.#pending.get(msg.id);
      if (!p) return;
      if (msg.type === 'progress') p.progress?.(msg.responses, msg.elapsedMs);
      else {
        this.#pending.delete(msg.id);
        if (msg.type === 'result') p.resolve(msg.result);
        else p.reject(new Error(`load generator: ${msg.message}`));
      }
    });
    proc.child.once('exit', (code) => {
      for (const p of this.#pending.values()) p.reject(new Error(`load generator exited (code ${code}); last output:\n  ${proc.tail.join('\n  ')}`));
      this.#pending.clear();
    });
  }

  static async start(runDir: string): Promise<Loadgen> {
    const child = fork(join(DIST_BENCH, 'loadgen.js'), [], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const proc = new Proc('load generator', child, join(runDir, 'loadgen.log'));
    const lg = new Loadgen(proc);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('load generator did not start')), 10_000);
      child.once('message', () => { clearTimeout(t); resolve(); });
      child.once('exit', () => { clearTimeout(t); reject(new Error(`load generator exited; ${proc.tail.join(' ')}`)); });
    });
    return lg;
  }

  run(job: LoadJob, progress?: (responses: number, elapsedMs: number) => void): Promise<LoadResult> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, progress });
      this.proc.child.send({ type: 'run', id, job } satisfies ToLoadgen);
    });
  }

  async stop(): Promise<void> {
    if (!this.proc.exited) this.proc.child.send({ type: 'exit' } satisfies ToLoadgen);
    await this.proc.stop(5000);
  }
}

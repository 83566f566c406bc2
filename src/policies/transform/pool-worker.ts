import { BodyProgram } from './program.js';
import { transformBody, type PoolResult, type PoolTask } from './run.js';

/** A piscina thread: programs are built once per config (by key) and kept while the thread lives. */
const programs = new Map<string, BodyProgram>();

export default function run(task: PoolTask): PoolResult {
  let program = programs.get(task.key);
  if (program === undefined) {
    // a reload brings new keys; the old programs are few and small, but do not keep them forever
    if (programs.size >= 256) programs.clear();
    program = new BodyProgram(task.program, task.side);
    programs.set(task.key, program);
  }
  return transformBody(program, task.kind, task.body, task.scopes, task.version);
}

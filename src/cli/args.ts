import { parseArgs, type ParseArgsConfig } from 'node:util';
import { didYouMean } from '../config/errors.js';

/**
 * Exit codes of every command (docs/config-tooling.md has the table):
 *   0  done (diff: no change)      1  the config was refused (diff: there are changes)
 *   2  usage: unknown command or option, a missing or bad argument
 *   3  diff: the config was refused  4  the admin API could not be reached, or refused the request
 */
export const EXIT = { ok: 0, config: 1, changes: 1, usage: 2, diffConfig: 3, admin: 4 } as const;

/** A command line that cannot be run as given: printed with a pointer to the command's help, exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * parseArgs for one command, strict: an unknown option, an option without its value and a stray argument are
 * UsageErrors, the first with a did-you-mean from the command's own options.
 */
export function parseCommand(command: string, args: string[], options: Options, positionals: 'none' | 'some') {
  try {
    return parseArgs({ args, options, allowPositionals: positionals === 'some', strict: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const quoted = /'([^']+)'/.exec(e.message)?.[1];
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && quoted) {
      const given = quoted.replace(/^-+/, '').split('=')[0];
      const known = Object.keys(options).map((o) => `--${o}`);
      const hint = didYouMean(`--${given}`, known);
      throw new UsageError(`nanogate ${command}: unknown option "${quoted}"${hint ? ` (${hint})` : ''}; options: ${known.join(', ') || 'none'}`);
    }
    if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') throw new UsageError(`nanogate ${command}: ${e.message.replace(/\.$/, '')}`);
    if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') throw new UsageError(`nanogate ${command}: takes no arguments, got "${quoted ?? args.find((a) => !a.startsWith('-'))}"`);
    throw new UsageError(`nanogate ${command}: ${e.message}`);
  }
}

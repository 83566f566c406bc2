/**
 * Progress on stderr while a run goes (stdout gets the final table): one line per finished phase, and on a
 * terminal a live line with elapsed time and responses so far.
 */
export class Progress {
  readonly #out: NodeJS.WriteStream;
  readonly #quiet: boolean;
  readonly #tty: boolean;
  #live = false;

  constructor(quiet = false, out: NodeJS.WriteStream = process.stderr) {
    this.#out = out;
    this.#quiet = quiet;
    this.#tty = Boolean(out.isTTY);
  }

  #clear(): void {
    if (this.#live) {
      this.#out.write('\r\x1b[K');
      this.#live = false;
    }
  }

  line(text: string): void {
    if (this.#quiet) return;
    this.#clear();
    this.#out.write(text + '\n');
  }

  /** A callback for the load generator's progress messages during one phase. */
  phase(label: string, seconds: number): (responses: number, elapsedMs: number) => void {
    if (this.#quiet || !this.#tty) return () => {};
    return (responses, elapsedMs) => {
      const t = Math.min(elapsedMs / 1000, seconds);
      this.#out.write(`\r\x1b[K${label}  ${t.toFixed(1)}/${seconds} s  ${responses.toLocaleString('en-US')} responses`);
      this.#live = true;
    };
  }

  done(label: string, summary: string): void {
    this.line(summary ? `${label}  ${summary}` : `${label}  done`);
  }
}

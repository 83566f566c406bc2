import { watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Calls `onChange` once things are quiet after the config file may have changed.
 *
 * It watches the file's directory, not the file: editors that save by writing a temporary file and renaming it over
 * the original (vim, most IDEs, `kubectl` ConfigMap symlink swaps) replace the inode, and a watch on the old inode
 * would never fire again. Any event in the directory (re)starts the debounce timer; the gateway then compares the
 * file's content digest with the last one it read, so unrelated files in the same directory cost one read, not a
 * reload. Events come in bursts (truncate, write, rename): the debounce also keeps a half-written file from being
 * read in most cases, and a half-written file that is read anyway is refused like any invalid config and retried on
 * the next event.
 */
export class ConfigWatcher {
  readonly file: string;
  readonly debounceMs: number;
  readonly #onChange: () => void;
  readonly #onError: (err: Error) => void;
  #watcher: FSWatcher | null = null;
  #timer: NodeJS.Timeout | null = null;

  constructor(file: string, debounceMs: number, onChange: () => void, onError: (err: Error) => void) {
    this.file = file;
    this.debounceMs = debounceMs;
    this.#onChange = onChange;
    this.#onError = onError;
  }

  start(): void {
    if (this.#watcher) return;
    this.#watcher = watch(dirname(this.file), { persistent: false }, () => this.#poke());
    this.#watcher.on('error', (err) => this.#onError(err));
  }

  #poke(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#onChange();
    }, this.debounceMs);
    this.#timer.unref();
  }

  close(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#watcher?.close();
    this.#watcher = null;
  }
}

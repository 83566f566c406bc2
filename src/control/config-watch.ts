import { watch, type FSWatcher } from 'node:fs';

/**
 * Calls `onChange` once things are quiet after a config file may have changed.
 *
 * It watches the directories of the config files (and a config directory itself), not the files: editors that save by writing a temporary file and renaming it over
 * the original (vim, most IDEs, `kubectl` ConfigMap symlink swaps) replace the inode, and a watch on the old inode
 * would never fire again. Any event in the directory (re)starts the debounce timer; the gateway then compares the
 * file's content digest with the last one it read, so unrelated files in the same directory cost one read, not a
 * reload. Events come in bursts (truncate, write, rename): the debounce also keeps a half-written file from being
 * read in most cases, and a half-written file that is read anyway is refused like any invalid config and retried on
 * the next event.
 */
export class ConfigWatcher {
  readonly dirs: readonly string[];
  readonly debounceMs: number;
  readonly #onChange: () => void;
  readonly #onError: (err: Error) => void;
  #watchers: FSWatcher[] = [];
  #timer: NodeJS.Timeout | null = null;

  constructor(dirs: readonly string[], debounceMs: number, onChange: () => void, onError: (err: Error) => void) {
    this.dirs = [...new Set(dirs)];
    this.debounceMs = debounceMs;
    this.#onChange = onChange;
    this.#onError = onError;
  }

  start(): void {
    if (this.#watchers.length) return;
    for (const dir of this.dirs) {
      const w = watch(dir, { persistent: false }, () => this.#poke());
      w.on('error', (err) => this.#onError(err));
      this.#watchers.push(w);
    }
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
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
  }
}

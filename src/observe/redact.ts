import { compilePattern, REDACTED } from '../shared/pii.js';

/**
 * Redaction for access logs: query parameters by name, header values by name, and free-form PII patterns (regular
 * expressions compiled once per route) over path, query and logged header values. The patterns, their checks and
 * the mask are those of the transform policy's body masking (src/shared/pii.ts).
 */
export { REDACTED };

export type QueryMode = 'keep' | 'redact' | 'drop';

export class Redactor {
  readonly #mode: QueryMode;
  readonly #params: ReadonlySet<string>;
  readonly #headers: ReadonlySet<string>;
  readonly #pii: readonly RegExp[];

  constructor(mode: QueryMode, params: readonly string[], headers: readonly string[], pii: readonly string[]) {
    this.#mode = mode;
    this.#params = new Set(params.map((p) => p.toLowerCase()));
    this.#headers = new Set(headers.map((h) => h.toLowerCase()));
    this.#pii = pii.map(compilePattern);
  }

  /** The query string as it may be logged ('' for none). */
  query(query: string): string {
    if (query === '' || this.#mode === 'drop') return '';
    if (this.#mode === 'keep' || this.#params.size === 0) return this.pii(query);
    const parts = query.split('&');
    for (let i = 0; i < parts.length; i++) {
      const eq = parts[i].indexOf('=');
      const raw = eq < 0 ? parts[i] : parts[i].slice(0, eq);
      let name: string;
      try {
        name = decodeURIComponent(raw.replace(/\+/g, ' ')).toLowerCase();
      } catch {
        name = raw.toLowerCase();
      }
      if (this.#params.has(name)) parts[i] = raw + '=' + REDACTED;
    }
    return this.pii(parts.join('&'));
  }

  /** A header value as it may be logged. */
  header(name: string, value: string): string {
    return this.#headers.has(name) ? REDACTED : this.pii(value);
  }

  pii(s: string): string {
    for (let i = 0; i < this.#pii.length; i++) s = s.replace(this.#pii[i], REDACTED);
    return s;
  }
}

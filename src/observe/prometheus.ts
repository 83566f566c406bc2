/**
 * A writer for the Prometheus text exposition format 0.0.4: `# HELP`/`# TYPE` once per family, then samples.
 * Label values are escaped (backslash, double quote, newline); names are fixed by the code.
 */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export class PromWriter {
  #out: string[] = [];

  help(name: string, type: 'counter' | 'gauge' | 'histogram', help: string): void {
    this.#out.push(`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`);
  }

  /** `labels` is the inside of the braces (from labels()), '' for none */
  sample(name: string, labels: string, value: number): void {
    this.#out.push(`${name}${labels ? `{${labels}}` : ''} ${formatValue(value)}`);
  }

  labels(...kv: string[]): string {
    let s = '';
    for (let i = 0; i < kv.length; i += 2) s += `${i ? ',' : ''}${kv[i]}="${escapeLabel(kv[i + 1])}"`;
    return s;
  }

  text(): string {
    return this.#out.join('\n') + '\n';
  }
}

export function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

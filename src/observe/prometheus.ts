/**
 * A writer for the Prometheus text exposition format 0.0.4: `# HELP`/`# TYPE` once per family, then its samples.
 * Each family's lines come out as one group (the format asks for it, and OpenMetrics parsers refuse a family that
 * reappears), in the order the families were declared, whatever order the samples were written in: the hub walks
 * nodes and routes once and writes several families per row. Label values are escaped (backslash, double quote,
 * newline); names are fixed by the code.
 */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export class PromWriter {
  readonly #families = new Map<string, string[]>();

  help(name: string, type: 'counter' | 'gauge' | 'histogram', help: string): void {
    this.#families.set(name, [`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`]);
  }

  /** `labels` is the inside of the braces (from labels()), '' for none; its family is declared first with help() */
  sample(name: string, labels: string, value: number): void {
    let family = this.#families.get(name);
    if (family === undefined) family = this.#families.get(name.slice(0, name.lastIndexOf('_'))); // _bucket, _sum, _count
    if (family === undefined) this.#families.set(name, (family = [])); // undeclared: a group of its own, untyped
    family.push(`${name}${labels ? `{${labels}}` : ''} ${formatValue(value)}`);
  }

  labels(...kv: string[]): string {
    let s = '';
    for (let i = 0; i < kv.length; i += 2) s += `${i ? ',' : ''}${kv[i]}="${escapeLabel(kv[i + 1])}"`;
    return s;
  }

  text(): string {
    let out = '';
    for (const lines of this.#families.values()) out += lines.join('\n') + '\n';
    return out;
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

/**
 * A writer for the two exposition formats a scraper may ask for: the Prometheus text format 0.0.4 and OpenMetrics
 * 1.0.0 (`Accept: application/openmetrics-text`, what Prometheus asks for first). Families are declared once with
 * help(), then get samples; each family's lines come out as one group (both formats ask for it, and OpenMetrics
 * parsers refuse a family that reappears), in the order the families were declared, whatever order the samples were
 * written in: the hub walks nodes and routes once and writes several families per row. Label values are escaped
 * (backslash, double quote, newline); names are fixed by the code.
 *
 * What differs in OpenMetrics, all decided here: a counter family is named without its `_total` (the samples keep
 * it), an `info` family is named without `_info` and typed `info` (0.0.4: a gauge), HELP escapes double quotes too,
 * integral `le` bounds are written as floats ("1.0"), an undeclared family is `unknown`, and the text ends with
 * `# EOF`.
 */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

export type ExpositionFormat = 'prometheus' | 'openmetrics';
export type MetricType = 'counter' | 'gauge' | 'histogram' | 'info';

/**
 * The format an Accept header asks for: OpenMetrics when it lists application/openmetrics-text with a q-value at
 * least that of any text/plain (or wildcard) entry, else the 0.0.4 text. No header, or one naming neither: 0.0.4.
 */
export function negotiateFormat(accept: string | undefined): ExpositionFormat {
  if (accept === undefined) return 'prometheus';
  const lower = accept.toLowerCase();
  if (!lower.includes('openmetrics')) return 'prometheus';
  let om = -1;
  let text = -1;
  for (const part of lower.split(',')) {
    const [type, ...params] = part.split(';').map((x) => x.trim());
    let q = 1;
    for (const p of params) if (p.startsWith('q=')) q = Number(p.slice(2)) || 0;
    if (type === 'application/openmetrics-text') om = Math.max(om, q);
    else if (type === 'text/plain' || type === '*/*' || type === 'text/*') text = Math.max(text, q);
  }
  return om > 0 && om >= text ? 'openmetrics' : 'prometheus';
}

export function contentTypeOf(format: ExpositionFormat): string {
  return format === 'openmetrics' ? OPENMETRICS_CONTENT_TYPE : PROMETHEUS_CONTENT_TYPE;
}

interface Family {
  type: MetricType | null;
  help: string;
  /** sample lines, except for histogram buckets: their `le` is formatted per format */
  samples: (string | Bucket)[];
}

interface Bucket {
  name: string;
  /** the other labels followed by a comma, or '' */
  labels: string;
  le: number;
  value: number;
}

export class PromWriter {
  readonly #families = new Map<string, Family>();

  help(name: string, type: MetricType, help: string): void {
    this.#families.set(name, { type, help, samples: [] });
  }

  /** `labels` is the inside of the braces (from labels()), '' for none; its family is declared first with help() */
  sample(name: string, labels: string, value: number): void {
    this.#family(name).samples.push(`${name}${labels ? `{${labels}}` : ''} ${formatValue(value)}`);
  }

  /** one cumulative bucket of a histogram series (`le` in seconds, Infinity for +Inf) */
  bucket(name: string, labels: string, le: number, value: number): void {
    this.#family(name).samples.push({ name, labels: labels ? labels + ',' : '', le, value });
  }

  #family(name: string): Family {
    let family = this.#families.get(name);
    if (family === undefined) family = this.#families.get(name.slice(0, name.lastIndexOf('_'))); // _bucket, _sum, _count
    if (family === undefined) this.#families.set(name, (family = { type: null, help: '', samples: [] })); // undeclared: a group of its own
    return family;
  }

  labels(...kv: string[]): string {
    let s = '';
    for (let i = 0; i < kv.length; i += 2) s += `${i ? ',' : ''}${kv[i]}="${escapeLabel(kv[i + 1])}"`;
    return s;
  }

  text(format: ExpositionFormat = 'prometheus'): string {
    const om = format === 'openmetrics';
    let out = '';
    for (const [name, f] of this.#families) {
      if (f.type !== null) {
        let family = name;
        let type: string = f.type;
        if (om && f.type === 'counter') {
          if (!name.endsWith('_total')) throw new Error(`counter ${name} must end in _total`);
          family = name.slice(0, -'_total'.length);
        } else if (f.type === 'info') {
          if (!name.endsWith('_info')) throw new Error(`info metric ${name} must end in _info`);
          if (om) family = name.slice(0, -'_info'.length);
          else type = 'gauge';
        }
        const help = f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
        out += `# HELP ${family} ${om ? help.replace(/"/g, '\\"') : help}\n# TYPE ${family} ${type}\n`;
      } else if (om) {
        out += `# TYPE ${name} unknown\n`;
      }
      for (const s of f.samples) {
        if (typeof s === 'string') out += s + '\n';
        else out += `${s.name}{${s.labels}le="${formatLe(s.le, om)}"} ${formatValue(s.value)}\n`;
      }
    }
    return om ? out + '# EOF\n' : out;
  }
}

export function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatLe(le: number, om: boolean): string {
  if (le === Infinity) return '+Inf';
  // OpenMetrics writes bounds as floats ("1.0"), as the Go and Python clients do; 0.0.4 scrapes keep "1"
  return om && Number.isInteger(le) ? `${le}.0` : String(le);
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Checks an OpenMetrics 1.0 exposition against the rules of the spec that a Prometheus scrape depends on, and
 * returns every breach (an empty list: it conforms). promtool's own OpenMetrics parser (`tsdb create-blocks-from
 * openmetrics`) is run too by `promtoolParsesOpenMetrics`, but it lets through some of what this catches (a counter
 * family named with its `_total`, for one).
 *
 * Checked: one `# EOF`, last, nothing after it, no empty line; HELP and TYPE at most once per family, before its
 * samples, and each family's lines in one group; sample names that a family of that type may have (counter:
 * `_total`/`_created`, info: `_info`, histogram: `_bucket`/`_count`/`_sum`/`_created`, gauge/unknown: the name);
 * label names and escaped values; values that are numbers; histogram buckets cumulative, `le` canonical, a `+Inf`
 * bucket equal to `_count`.
 */
export function openMetricsProblems(text: string): string[] {
  const problems: string[] = [];
  if (!text.endsWith('# EOF\n')) problems.push('the exposition does not end with "# EOF" and a newline');
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const families = new Map<string, { type: string; seenSamples: boolean }>();
  const closed = new Set<string>();
  let current: string | null = null;
  const SUFFIXES: Record<string, string[]> = {
    counter: ['_total', '_created'],
    gauge: [''],
    unknown: [''],
    info: ['_info'],
    histogram: ['_bucket', '_count', '_sum', '_created'],
    stateset: [''],
    gaugehistogram: ['_bucket', '_gcount', '_gsum'],
    summary: ['', '_count', '_sum', '_created'],
  };
  const enter = (name: string, n: number) => {
    if (current !== name) {
      if (current !== null) closed.add(current);
      if (closed.has(name)) problems.push(`line ${n}: family ${name} comes back after another family`);
      current = name;
    }
  };
  // histogram series by family + labels without le: cumulative check
  const series = new Map<string, { les: number[]; counts: number[]; count?: number }>();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const n = i + 1;
    if (line === '# EOF') {
      if (i !== lines.length - 1) problems.push(`line ${n}: "# EOF" is not the last line`);
      continue;
    }
    if (line === '') {
      problems.push(`line ${n}: empty line`);
      continue;
    }
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE|UNIT) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      if (!m) {
        problems.push(`line ${n}: not a HELP, TYPE or UNIT line: ${line}`);
        continue;
      }
      const [, kind, name, rest] = m;
      enter(name, n);
      const f = families.get(name);
      if (f?.seenSamples) problems.push(`line ${n}: ${kind} of ${name} after its samples`);
      if (kind === 'TYPE') {
        if (f) problems.push(`line ${n}: second TYPE for ${name}`);
        if (!(rest in SUFFIXES)) problems.push(`line ${n}: unknown type "${rest}"`);
        if (rest === 'counter' && name.endsWith('_total')) problems.push(`line ${n}: counter family ${name} is named with its _total`);
        families.set(name, { type: rest, seenSamples: false });
      } else if (kind === 'HELP' && /(^|[^\\])(\\\\)*"/.test(rest)) {
        problems.push(`line ${n}: unescaped double quote in HELP of ${name}`);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)( \S+)?$/.exec(line);
    if (!m) {
      problems.push(`line ${n}: not a sample line: ${line}`);
      continue;
    }
    const [, name, rawLabels = '', value] = m;
    let family: string | null = null;
    for (const [fname, f] of families) {
      if (SUFFIXES[f.type]?.some((s) => fname + s === name)) family = fname;
    }
    if (family === null) {
      problems.push(`line ${n}: sample ${name} belongs to no declared family (or is not a name its family's type allows)`);
      continue;
    }
    enter(family, n);
    families.get(family)!.seenSamples = true;
    const labels: Record<string, string> = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y;
    let pos = 0;
    let lm: RegExpExecArray | null;
    while (pos < rawLabels.length && (lm = re.exec(rawLabels)) !== null) {
      if (lm[1] in labels) problems.push(`line ${n}: label ${lm[1]} twice`);
      labels[lm[1]] = lm[2];
      pos = re.lastIndex;
    }
    if (pos !== rawLabels.length) problems.push(`line ${n}: bad labels: {${rawLabels}}`);
    if (!/^([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]Inf|NaN)$/.test(value)) problems.push(`line ${n}: bad value "${value}"`);
    const type = families.get(family)!.type;
    if (type === 'histogram') {
      const { le, ...rest } = labels;
      const key = `${family}${JSON.stringify(rest)}`;
      let s = series.get(key);
      if (!s) series.set(key, (s = { les: [], counts: [] }));
      if (name.endsWith('_bucket')) {
        if (le === undefined) problems.push(`line ${n}: bucket without le`);
        else if (le !== '+Inf' && !/^-?\d+\.\d+(e[+-]?\d+)?$|^-?\d+e[+-]?\d+$/.test(le)) problems.push(`line ${n}: le="${le}" is not a canonical float (as "1.0")`);
        s.les.push(le === '+Inf' ? Infinity : Number(le));
        s.counts.push(Number(value));
      } else if (name.endsWith('_count')) s.count = Number(value);
    }
  }
  for (const [key, s] of series) {
    for (let i = 1; i < s.les.length; i++) {
      if (!(s.les[i] > s.les[i - 1])) problems.push(`${key}: le bounds not increasing`);
      if (s.counts[i] < s.counts[i - 1]) problems.push(`${key}: buckets not cumulative`);
    }
    if (s.les.length > 0 && s.les.at(-1) !== Infinity) problems.push(`${key}: no +Inf bucket`);
    if (s.les.length > 0 && s.count !== s.counts.at(-1)) problems.push(`${key}: _count ${s.count} is not the +Inf bucket ${s.counts.at(-1)}`);
  }
  return problems;
}

/**
 * Runs promtool's OpenMetrics parser over the exposition (`promtool tsdb create-blocks-from openmetrics`). The
 * importer wants a timestamp on every sample, which a scrape has none of: one is appended to each sample line, the
 * rest is parsed as scraped. Returns promtool's complaint, or '' when it read every sample.
 */
export function promtoolParsesOpenMetrics(text: string, promtool = process.env.PROMTOOL ?? 'promtool'): string {
  const dir = mkdtempSync(join(tmpdir(), 'nanogate-om-'));
  try {
    const stamped = text
      .split('\n')
      .map((l) => (l === '' || l.startsWith('#') ? l : `${l} 1700000000`))
      .join('\n');
    writeFileSync(join(dir, 'scrape.om'), stamped);
    const r = spawnSync(promtool, ['tsdb', 'create-blocks-from', 'openmetrics', '--quiet', join(dir, 'scrape.om'), join(dir, 'blocks')], { encoding: 'utf8', timeout: 60_000 });
    if (r.error) throw new Error(`cannot run ${promtool} (install Debian's "prometheus" package): ${r.error.message}`);
    return r.status === 0 ? '' : `${r.stdout}${r.stderr}`.trim() || `exit ${r.status}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

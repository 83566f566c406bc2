/**
 * Config problems are thrown on the control plane, all at once: `file: path: reason (hint)`.
 * The data plane never sees a config that produced one.
 */
export interface ConfigIssue {
  /** dotted path inside the file, e.g. routes[3].upstream; empty for the whole file */
  path: string;
  message: string;
  hint?: string;
  /** the file the problem is in, when it is not the error's own (a config merged from several files) */
  file?: string;
}

export class ConfigError extends Error {
  readonly file: string;
  readonly issues: readonly ConfigIssue[];

  constructor(file: string, issues: readonly ConfigIssue[]) {
    // One problem found through several paths (a prefix route sits in two tree lists) is reported once.
    const seen = new Set<string>();
    issues = issues.filter((i) => {
      const key = `${i.file ?? ''}\u0000${i.path}\u0000${i.message}`;
      return seen.has(key) ? false : (seen.add(key), true);
    });
    super(issues.map((i) => formatIssue(file, i)).join('\n'));
    this.name = 'ConfigError';
    this.file = file;
    this.issues = issues;
  }
}

export function formatIssue(file: string, issue: ConfigIssue): string {
  const from = issue.file ?? file;
  const where = issue.path ? `${from}: ${issue.path}` : from;
  return `${where}: ${issue.message}${issue.hint ? ` (${issue.hint})` : ''}`;
}

/** Levenshtein distance, for "did you mean" hints on the control plane only. */
export function editDistance(a: string, b: string): number {
  const prev = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length];
}

export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = c;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? `did you mean "${best}"?` : undefined;
}

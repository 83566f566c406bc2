// The property accesses V8's optimizing compiler left generic in the gateway's own functions: from the --trace-turbo
// graphs that generic-access.sh writes. A generic access is a call of an inline-cache builtin (LoadIC, StoreIC,
// KeyedLoadIC…, 70-450 instructions each) where a specialised one is a field load or an inlined call. Causes seen
// so far: an object literal with getters (the worker state until 2026-12-04), `array.length = 0` (a store through
// the length accessor), reads past the end of an array grown at random indexes. A function compiled more than once
// is shown as last compiled. Accesses on a cold branch count for nothing; instructions-report.js --callers says which
// ones run per request.
//
//   node native-bench/generic-access-report.js native-bench/results/turbo-<stamp>
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node native-bench/generic-access-report.js native-bench/results/turbo-<stamp>');
  process.exit(1);
}

/** V8 does not escape quotes inside the constant-pool strings of "bytecodeSources": parse without that part */
function parse(raw) {
  try {
    return JSON.parse(raw);
  } catch {
    const cut = raw.lastIndexOf('"bytecodeSources"');
    return cut < 0 ? null : JSON.parse(raw.slice(0, cut).replace(/,\s*$/, '') + '}');
  }
}

const last = new Map(); // function (name and file) -> [compile id, lines]
for (const f of readdirSync(dir).filter((x) => /^turbo-.*-\d+\.json$/.test(x))) {
  let j;
  try {
    j = parse(readFileSync(join(dir, f), 'utf8'));
  } catch {
    continue;
  }
  if (j === null || !/\/dist\/src\//.test(j.function?.sourceName ?? '')) continue;
  const phase = j.phases.find((p) => p.name === 'V8.TFGenericLowering');
  if (!phase?.data?.nodes) continue;
  const byId = new Map(phase.data.nodes.map((n) => [n.id, n]));
  const ics = new Set(phase.data.nodes.filter((n) => /<Code BUILTIN [A-Za-z]*IC[A-Za-z_]*>/.test(n.label) && !/LoadGlobalIC/.test(n.label)).map((n) => n.id));
  const lines = [];
  for (const e of phase.data.edges) {
    if (!ics.has(e.source)) continue;
    const ic = /BUILTIN ([A-Za-z_]+)/.exec(byId.get(e.source).label)[1];
    const sp = byId.get(e.target)?.sourcePosition ?? byId.get(e.source).sourcePosition ?? {};
    const inl = sp.inliningId === undefined || sp.inliningId === -1 ? null : j.inlinings?.[sp.inliningId];
    const src = inl ? j.sources?.[inl.sourceId] : j.function;
    const at = (sp.scriptOffset ?? 0) - (src?.startPosition ?? 0);
    const text = src?.sourceText ? src.sourceText.slice(Math.max(0, at - 30), at + 40).replace(/\s+/g, ' ') : '';
    const file = (src?.sourceName ?? '').replace(/^.*\/dist\//, '');
    lines.push(`    ${ic.padEnd(26)} ${`${src?.functionName || '(anonymous)'} ${file}`.padEnd(48)} … ${text} …`);
  }
  const key = `${j.function.functionName} ${j.function.sourceName.replace(/^.*\/dist\//, '')}`;
  const id = Number(/-(\d+)\.json$/.exec(f)[1]);
  if (!last.has(key) || last.get(key)[0] < id) last.set(key, [id, [...new Set(lines)]]);
}
let n = 0;
for (const [key, [, lines]] of [...last].sort()) {
  if (lines.length === 0) continue;
  n += lines.length;
  console.log(key);
  for (const l of lines) console.log(l);
}
console.log(`${n} generic accesses in ${[...last.values()].filter(([, l]) => l.length > 0).length} of ${last.size} optimized functions of the gateway`);

/**
 * Load time and memory of a 100,000-consumer registry document, the way the control plane loads one: parse (JSON),
 * schema check, normalisation (SHA-256 of plain keys), table build into a SharedArrayBuffer. Then what a worker pays:
 * opening the view and the first lookups.
 *
 *   npx tsc -p . ; node --expose-gc dist/bench/micro/consumers-load.js [count]
 *
 * Each consumer has one API key, a JWT mapping, a plan, two subscriptions (one per environment), three scopes and a
 * role, like a typical API-product catalogue; a tenth have an IP allowlist. Memory figures are taken after a forced
 * GC. The control plane keeps only the table between versions (not the spec objects), so "kept" is the table; the
 * peak is the document text, its parsed form and the specs together, for the length of a load.
 */
import { parseRegistryDocument } from '../../src/identity/registry.js';
import { buildConsumerTable, ConsumerTable, readSpecs } from '../../src/identity/table.js';
import { keyDigest } from '../../src/identity/normalize.js';

const COUNT = Number(process.argv[2] ?? 100_000);
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const mib = (n: number) => (n / 1048576).toFixed(1);

function doc(plainKeys: boolean): string {
  const consumers = [];
  for (let i = 0; i < COUNT; i++) {
    consumers.push({
      id: `consumer-${i.toString().padStart(6, '0')}`,
      plan: ['free', 'silver', 'gold'][i % 3],
      keys: [plainKeys ? { key: `k-${i}-${'s'.repeat(28)}` } : { keySha256: keyDigest(`k-${i}-${'s'.repeat(28)}`).toString('hex') }],
      jwt: [{ issuer: 'https://login.example.com/', subject: `user-${i}` }],
      subscriptions: [{ api: 'orders', environment: 'prod' }, { api: `catalog-${i % 50}` }],
      scopes: ['orders:read', 'orders:write', `tenant:${i % 1000}`],
      roles: [i % 10 ? 'customer' : 'admin'],
      ...(i % 10 === 0 ? { allowIps: ['10.0.0.0/8', '2001:db8::/32'] } : {}),
    });
  }
  return JSON.stringify({ consumers });
}

function measure(label: string, text: string): void {
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  const rssBefore = process.memoryUsage().rss;
  let peakRss = rssBefore;
  const sample = () => (peakRss = Math.max(peakRss, process.memoryUsage().rss));
  const t0 = performance.now();
  let specs: ReturnType<typeof parseRegistryDocument> | null = parseRegistryDocument(text, label);
  const t1 = performance.now();
  sample();
  const sab = buildConsumerTable(specs, 1);
  const t2 = performance.now();
  sample();
  specs = null;
  gc();
  const heap1 = process.memoryUsage().heapUsed;

  const t5 = performance.now();
  const back = readSpecs(sab);
  const t6 = performance.now();
  if (back.length !== COUNT) throw new Error('read back failed');

  const view = new ConsumerTable(sab);
  const t3 = performance.now();
  let found = 0;
  for (let i = 0; i < COUNT; i += 97) if (view.byKeyDigest(keyDigest(`k-${i}-${'s'.repeat(28)}`)) === i) found++;
  for (let i = 0; i < COUNT; i += 97) if (view.byJwt('https://login.example.com/', `user-${i}`) === i) found++;
  const t4 = performance.now();
  const lookups = 2 * Math.ceil(COUNT / 97);
  if (found !== lookups) throw new Error(`lookups failed: ${found}/${lookups}`);

  console.log(
    [
      `${label}: ${COUNT} consumers, document ${mib(text.length)} MiB`,
      `  parse + schema + normalise   ${(t1 - t0).toFixed(0)} ms`,
      `  table build                  ${(t2 - t1).toFixed(0)} ms`,
      `  total load                   ${(t2 - t0).toFixed(0)} ms`,
      `  table (shared by workers)    ${mib(sab.byteLength)} MiB  (${(sab.byteLength / COUNT) | 0} bytes per consumer)`,
      `  heap kept after the load     ${mib(heap1 - heap0)} MiB  (the table is off-heap)`,
      `  RSS during the load          +${mib(peakRss - rssBefore)} MiB over ${mib(rssBefore)} MiB (document, parsed form, specs)`,
      `  read back as specs (merge)   ${(t6 - t5).toFixed(0)} ms`,
      `  worker: ${lookups} lookups (key digest + JWT) in ${(t4 - t3).toFixed(1)} ms on a fresh view`,
    ].join('\n'),
  );
}

gc();
const rss0 = process.memoryUsage().rss;
console.log(`process RSS before: ${mib(rss0)} MiB`);
measure('plain keys (hashed at load)', doc(true));
measure('keySha256 (pre-hashed)', doc(false));

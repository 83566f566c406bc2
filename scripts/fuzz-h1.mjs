#!/usr/bin/env node
// Longer fuzz run of the upstream response decoder than the one in the test suite (test/unit/h1-fuzz.test.ts):
// mutates the corpus (test/fixtures/h1-corpus/) for N seconds with a fresh seed and checks the same properties
// (never throws, the same outcome for any split as for one read, only clean fields forwarded). With --llhttp it
// also serves each accepted input to Node's http.request (llhttp) over loopback and flags a status, field or body
// that differs where both accept. Every input that breaks a property is saved into the corpus as
// found-<hash>.http (head.found-… or pipe.found-… when it answers those requests), so it stays a seed and a
// regression case; the run exits 1 when it saved anything.
// Build first (npm run build). Usage: node scripts/fuzz-h1.mjs [--seconds N=30] [--seed S] [--llhttp]
import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const seconds = Number(opt('--seconds', '30'));
const seed = Number(opt('--seed', String(Date.now() % 0x7fffffff)));
const withLlhttp = args.includes('--llhttp');
if (!(seconds > 0) || !Number.isInteger(seed)) {
  console.error('usage: node scripts/fuzz-h1.mjs [--seconds N] [--seed S] [--llhttp]');
  process.exit(2);
}

const dist = new URL('../dist/test/helpers/', import.meta.url);
let helpers;
try {
  helpers = await import(new URL('h1-decode.js', dist).href);
} catch {
  console.error('dist/ is missing or stale: run `npm run build` first');
  process.exit(2);
}
const { CORPUS_DIR, checkInput, decode, loadCorpus, mutate, prng } = helpers;
const { LlhttpOracle, forwardedByLlhttp } = await import(new URL('h1-llhttp.js', dist).href);

const corpus = loadCorpus();
const rnd = prng(seed);
const deadline = Date.now() + seconds * 1000;
const oracle = withLlhttp ? new LlhttpOracle() : null;
await oracle?.start();

let cases = 0;
let refused = 0;
let saved = 0;
let llRefusedWeAccepted = 0;
let llRefusedTail = 0;
let knownQuirk = 0;
const TRAILING_TAB = /\r\ntransfer-encoding:[^\r\n]*\t[ \t]*\r\n/i;

function save(input, from, why) {
  const prefix = from.startsWith('head.') ? 'head.' : from.startsWith('pipe.') ? 'pipe.' : '';
  const file = join(CORPUS_DIR, `${prefix}found-${createHash('sha256').update(input).digest('hex').slice(0, 12)}.http`);
  if (existsSync(file)) return;
  writeFileSync(file, input);
  saved++;
  console.log(`saved ${file}\n  from ${from}: ${why.split('\n')[0]}`);
}

while (Date.now() < deadline && cases < 50_000_000) {
  const base = corpus[Math.floor(rnd() * corpus.length)];
  const input = mutate(base.input, rnd);
  cases++;
  const problem = checkInput(input, base.opts, rnd, input.length <= 2048 && cases % 4 === 0);
  if (problem !== null) {
    save(input, base.name, problem);
    continue;
  }
  const isHead = base.opts.heads?.[0] ?? false;
  const ours = decode(input, [], { heads: [isHead] });
  if (ours.error !== null) {
    refused++;
    continue;
  }
  if (oracle === null) continue;
  const ll = await oracle.ask(input, isHead);
  if (ll.error !== null) {
    // Bytes after the response: we complete it and drop the connection, llhttp reads on and fails on them.
    // Otherwise usually one of the listed, deliberate differences (test/unit/h1-llhttp.test.ts). Counted only.
    if (ours.extra > 0) llRefusedTail++;
    else llRefusedWeAccepted++;
    continue;
  }
  const r = ours.responses[0];
  const fields = forwardedByLlhttp(ll);
  // llhttp's own quirk (see test/unit/h1-llhttp.test.ts): a tab after "chunked" turns its chunk decoding off
  if (TRAILING_TAB.test(input.toString('latin1'))) {
    knownQuirk++;
    continue;
  }
  if (r.status !== ll.status || r.body !== ll.body || JSON.stringify(r.headers) !== JSON.stringify(fields)) {
    save(input, base.name, `llhttp read it differently: status ${ll.status} vs ${r.status}, body ${ll.body.length} vs ${r.body.length} bytes`);
  }
}
await oracle?.close();
console.log(`seed ${seed}: ${cases} cases in ${seconds} s, ${refused} refused, ${saved} saved to the corpus` +
  (oracle ? `; accepted by us and refused by llhttp: ${llRefusedTail} for bytes after the response, ${llRefusedWeAccepted} otherwise; ${knownQuirk} skipped for llhttp's tab quirk` : ''));
process.exit(saved > 0 ? 1 : 0);

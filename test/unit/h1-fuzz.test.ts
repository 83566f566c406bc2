import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkInput, decode, loadCorpus, mutate, prng } from '../helpers/h1-decode.js';

/**
 * A seeded mutation run over the corpus (test/fixtures/h1-corpus/): each case edits a corpus input one to four
 * times and checks that the decoder never throws, gives the same outcome for a random split as for one read (and
 * byte by byte for one case in four), and forwards only clean fields. The seed and count are fixed so a failure
 * reproduces; `node scripts/fuzz-h1.mjs --seconds N` runs longer with fresh seeds and saves what it finds.
 */

const SEED = 0x6e67_0019;
const CASES = 5000;

test(`${CASES} seeded mutations of the corpus keep the decoder's properties`, (t) => {
  const corpus = loadCorpus();
  const rnd = prng(SEED);
  let refused = 0;
  for (let i = 0; i < CASES; i++) {
    const seed = corpus[Math.floor(rnd() * corpus.length)];
    const input = mutate(seed.input, rnd);
    const problem = checkInput(input, seed.opts, rnd, i % 4 === 0);
    assert.equal(problem, null, `case ${i} (from ${seed.name}): ${problem}\ninput (latin1): ${JSON.stringify(input.toString('latin1'))}`);
    if (decode(input, [], seed.opts).error !== null) refused++;
  }
  t.diagnostic(`${CASES} cases, ${refused} refused, ${CASES - refused} accepted`);
  // a mutator that only ever produced garbage (or only valid input) would test little
  assert.ok(refused > CASES / 10 && refused < CASES * 0.9, `${refused} of ${CASES} refused`);
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { decode, loadCorpus, type DecodeOptions } from '../helpers/h1-decode.js';
import { CASES } from '../helpers/h1-cases.js';
import { LlhttpOracle, forwardedByLlhttp } from '../helpers/h1-llhttp.js';

/**
 * A differential check against Node's own parser (llhttp, through http.request and a raw net server on
 * loopback): on every hostile case and corpus input, the decoder and llhttp must agree on accept or reject, and
 * where both accept, on the status, the forwarded fields and the body. Where they differ on purpose it is listed
 * below with the reason; a listed case that stops differing fails too, so the list stays true.
 */

/** Inputs where the decoder and llhttp disagree on purpose. */
const DIFFERENCES: Record<string, string> = {
  // we accept what llhttp refuses, where RFC 9110/9112 allows it and the gateway re-frames the body anyway
  'Content-Length: 5, 5 is one length': 'RFC 9110 8.6 allows a list of one repeated length; llhttp refuses any list',
  'two identical Content-Length fields': 'RFC 9110 8.6 allows repeated identical fields; llhttp refuses a second one',
  'length-list.http': 'as "Content-Length: 5, 5"',
  'chunk extensions are ignored': 'RFC 9112 7.1.1 puts BWS before ";" (here "1 ; x"); llhttp refuses the space',
  'trailing whitespace after the chunk size': 'BWS after the size, harmless; llhttp refuses the space',
  'chunked-ext-trailer.http': 'as "chunk extensions are ignored" ("A \\t; c")',
  '204 with a body: the bytes are not its body': 'both refuse the bytes as a body; llhttp reads them as a next response and fails, we complete the 204 and close the connection (the bytes are counted as extra)',
  '304 with a body: the bytes are not its body': 'as the 204 case',
  // we refuse what llhttp accepts: stricter on purpose
  'Transfer-Encoding: gzip, chunked (a coding we cannot forward)': 'a transfer coding we cannot undo cannot be forwarded (TE is hop-by-hop, RFC 9110 7.6.1); llhttp hands the coded bytes up',
  'chunked-gzip.http': 'as "Transfer-Encoding: gzip, chunked"',
  'Transfer-Encoding: chunked, gzip (chunked not final)': 'RFC 9112 6.3 item 4 would read until close; we refuse rather than guess',
  'chunked applied twice': 'RFC 9112 6.1: chunked MUST NOT be applied twice; llhttp decodes it once',
  'Transfer-Encoding: identity': 'identity is not a transfer coding since RFC 7230; llhttp reads until close',
  'a trailer section over 16 KiB': 'our trailer limit (16 KiB); llhttp has none',
  'a head of 64 KiB + 1': 'our head limit is 64 KiB; the oracle is given 80 KiB so that the limit is tested where it is ours',
  'NUL in the reason phrase': 'RFC 9112 4: reason-phrase has no CTL; llhttp lets NUL through',
  'status 600': 'RFC 9110 15: 100-599 only, and a client SHOULD treat others as 5xx: we answer 502',
  'status 099': 'as status 600',
  'a blank line before the status line': 'RFC 9112 2.2 lets a server skip it before a request line; a response gets no such leniency',
  // both accept, and read it differently: llhttp is wrong here
  'Transfer-Encoding: chunked with a trailing tab': 'RFC 9110 5.5 leaves trailing OWS out of the value; llhttp reports the field as "chunked" yet does not decode chunks when a tab follows it (a space is fine), and hands the chunk framing up as a close-delimited body',
  'found-70859feebbd4.http': 'the same trailing tab after "chunked", found by scripts/fuzz-h1.mjs --llhttp',
  'found-ec1b7d431826.http': 'the same trailing tab after "Chunked", found by scripts/fuzz-h1.mjs --llhttp',
  'Content-Length with a trailing tab': 'RFC 9110 5.5 leaves trailing OWS out of the value; llhttp refuses the tab (but not a space)',
};

let oracle: LlhttpOracle;
before(async () => {
  oracle = new LlhttpOracle();
  await oracle.start();
});
after(() => oracle.close());

interface Input {
  name: string;
  input: Buffer;
  opts: DecodeOptions;
}

const inputs = (): Input[] => [
  ...CASES.map((c) => ({ name: c.name, input: c.input, opts: c.opts ?? {} })),
  ...loadCorpus().map((e) => ({ name: e.name, input: e.input, opts: e.opts })),
];

test('the decoder and llhttp agree on every hostile case and corpus input, but for the listed differences', async () => {
  const seen = new Set<string>();
  for (const { name, input, opts } of inputs()) {
    const isHead = opts.heads?.[0] ?? false;
    // llhttp answers one request per connection: compare the first response
    const ours = decode(input, [], { heads: [isHead] });
    const ll = await oracle.ask(input, isHead);
    const weAccept = ours.error === null;
    const llAccepts = ll.error === null;
    if (name in DIFFERENCES) {
      const r = ours.responses[0];
      const same = weAccept === llAccepts && (!weAccept || (r.status === ll.status && r.body === ll.body && JSON.stringify(r.headers) === JSON.stringify(forwardedByLlhttp(ll))));
      if (!same) seen.add(name);
      continue;
    }
    assert.equal(weAccept, llAccepts, `${name}: we ${weAccept ? 'accept' : `refuse (${ours.error})`}, llhttp ${llAccepts ? 'accepts' : `refuses (${ll.error})`}`);
    if (!weAccept) continue;
    const r = ours.responses[0];
    assert.equal(r.status, ll.status, `${name}: status`);
    assert.equal(r.body, ll.body, `${name}: body`);
    assert.deepEqual(r.headers, forwardedByLlhttp(ll), `${name}: forwarded fields`);
  }
  for (const name of Object.keys(DIFFERENCES)) assert.ok(seen.has(name), `${name} is listed as a difference but none was seen`);
});

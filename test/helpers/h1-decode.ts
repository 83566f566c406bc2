import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { H1Decoder, H1_BODY, H1_END, H1_ERROR, H1_HEAD, H1_NEED_MORE } from '../../src/upstream/h1-decoder.js';

/**
 * Drives the pure response decoder the way H1Connection does, over any split of an input, and reduces what it
 * said to one comparable outcome. Each piece is copied into one reused read buffer followed by "\r\n\r\n" over
 * and over, so a decoder that kept a view across reads, or looked past `end`, shows up as a different outcome.
 */

export interface DecodedResponse {
  status: number;
  /** forwarded fields as name, value, … (ResponseHead.list()) */
  headers: string[];
  /** the forwarded field lines as the client gets them (copyLines) */
  lines: string;
  body: string;
  close: boolean;
  interim: number;
  /** the body ran until the stream closed */
  endedAtClose: boolean;
}

export interface Outcome {
  /** responses that completed, in order */
  responses: DecodedResponse[];
  /** why the decoder refused the response after them, or null */
  error: string | null;
  /** bytes left after the last response that was asked for */
  extra: number;
  /** bytes the partial-head buffer copied */
  copied: number;
}

export interface DecodeOptions {
  /** one entry per pipelined request: true for HEAD (default: one GET) */
  heads?: readonly boolean[];
  /** the stream closes after the input (default true): ends a close-delimited body, fails an unfinished one */
  close?: boolean;
}

const READ = Buffer.allocUnsafe(256 * 1024);
const FILL = Buffer.from('\r\n\r\n');

/** Decodes `input` delivered in pieces that end at each of `cuts` (sorted offsets), then at its end. */
export function decode(input: Buffer, cuts: readonly number[] = [], opts: DecodeOptions = {}): Outcome {
  const heads = opts.heads ?? [false];
  const dec = new H1Decoder();
  const out: Outcome = { responses: [], error: null, extra: 0, copied: 0 };
  let asked = 0;
  dec.begin(heads[asked++]);
  let current: DecodedResponse | null = null;
  let body: Buffer[] = [];
  const edges = [...cuts.filter((c) => c > 0 && c < input.length), input.length];
  let start = 0;
  let done = false;
  for (const edge of edges) {
    if (done) break;
    const len = edge - start;
    if (len === 0) continue;
    if (len > READ.length) throw new Error('piece larger than the read buffer');
    input.copy(READ, 0, start, edge);
    READ.fill(FILL, len, Math.min(READ.length, len + 64));
    let pos = 0;
    while (!done) {
      if (dec.idle) {
        if (asked >= heads.length) {
          out.extra += len - pos;
          break;
        }
        if (pos >= len) break; // the next response starts in a later piece
        dec.begin(heads[asked++]);
      }
      const ev = dec.execute(READ, pos, len);
      if (dec.pos < pos || dec.pos > len) throw new Error(`decoder position ${dec.pos} outside [${pos}, ${len}]`);
      pos = dec.pos;
      if (ev === H1_NEED_MORE) {
        if (pos !== len) throw new Error('H1_NEED_MORE before the end of the read');
        break;
      }
      if (ev === H1_HEAD) {
        const h = dec.head;
        const lines = Buffer.alloc(h.text.length + 2 * h.keep.length + 16);
        current = {
          status: h.status,
          headers: [...h.list()],
          lines: lines.toString('latin1', 0, h.copyLines(lines, 0)),
          body: '',
          close: h.close,
          interim: dec.interim,
          endedAtClose: false,
        };
        body = [];
      } else if (ev === H1_BODY) {
        if (current === null) throw new Error('body before a head');
        if (!(dec.bodyStart < dec.bodyEnd && dec.bodyEnd <= len)) throw new Error('empty or out-of-range body slice');
        body.push(Buffer.from(READ.subarray(dec.bodyStart, dec.bodyEnd)));
      } else if (ev === H1_END) {
        if (current === null) throw new Error('end before a head');
        current.body = Buffer.concat(body).toString('latin1');
        out.responses.push(current);
        current = null;
      } else if (ev === H1_ERROR) {
        out.error = dec.error;
        done = true;
      }
    }
    start = edge;
  }
  if (!done && !dec.idle && opts.close !== false) {
    const ev = dec.finish();
    if (ev === H1_END && current !== null) {
      current.body = Buffer.concat(body).toString('latin1');
      current.endedAtClose = true;
      out.responses.push(current);
    } else if (ev === H1_ERROR) out.error = dec.error;
  }
  out.copied = dec.copiedBytes;
  return out;
}

/** The outcome without the copy count, which legitimately depends on the split. */
export function comparable(o: Outcome): Omit<Outcome, 'copied'> {
  return { responses: o.responses, error: o.error, extra: o.extra };
}

/** Deterministic PRNG (mulberry32): the same seed gives the same cases on every machine. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Tokens the mutator splices in: the bytes HTTP/1.1 framing turns on. */
export const DICTIONARY = [
  '\r\n', '\n', '\r', '\0', ' ', '\t', ',', ':', ';', '0', 'f', '\r\n\r\n', '\n\n', 'chunked', 'Chunked', 'gzip, chunked',
  'Transfer-Encoding: chunked\r\n', 'Content-Length: 5\r\n', 'Content-Length: 0\r\n', 'Content-Length: 5, 5',
  'Connection: close\r\n', '0\r\n\r\n', 'ffffffffffffff', ';ext=1', ' \r\n', 'HTTP/1.1 100 Continue\r\n\r\n',
  'HTTP/1.1 200 OK\r\n', 'HTTP/1.0 ', '\x7f', '\xff',
].map((t) => Buffer.from(t, 'latin1'));

/** One to four random edits of `input` (one, half the time): flip, insert a token, delete, duplicate, truncate. */
export function mutate(input: Buffer, rnd: () => number): Buffer {
  let b = input;
  const edits = rnd() < 0.5 ? 1 : 2 + Math.floor(rnd() * 3);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rnd() * (b.length + 1));
    // truncation least often: a cut response is refused whatever was cut
    const kind = Math.floor(rnd() * 5.3);
    if (kind === 0 && b.length > 0) {
      b = Buffer.from(b);
      b[Math.min(at, b.length - 1)] = Math.floor(rnd() * 256);
    } else if (kind <= 2) {
      const token = DICTIONARY[Math.floor(rnd() * DICTIONARY.length)];
      b = Buffer.concat([b.subarray(0, at), token, b.subarray(at)]);
    } else if (kind === 3) {
      b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + Math.floor(rnd() * 8)))]);
    } else if (kind === 4) {
      const to = Math.min(b.length, at + 1 + Math.floor(rnd() * 16));
      b = Buffer.concat([b.subarray(0, to), b.subarray(at, to), b.subarray(to)]);
    } else b = b.subarray(0, at);
  }
  return b;
}

/** The seed corpus (test/fixtures/h1-corpus/, see its README): file names say which requests were asked for. */
export const CORPUS_DIR = fileURLToPath(new URL('../../../test/fixtures/h1-corpus/', import.meta.url));

export interface CorpusEntry {
  name: string;
  input: Buffer;
  opts: DecodeOptions;
}

/** `head.*`: the answer to a HEAD request; `pipe.*`: to three pipelined GETs; anything else: to one GET. */
export function optionsFor(name: string): DecodeOptions {
  if (name.startsWith('head.')) return { heads: [true] };
  if (name.startsWith('pipe.')) return { heads: [false, false, false] };
  return {};
}

export function loadCorpus(dir = CORPUS_DIR): CorpusEntry[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.http'))
    .sort()
    .map((f) => ({ name: f, input: readFileSync(join(dir, f)), opts: optionsFor(f) }));
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * The properties a fuzzed input must keep: decoding never throws, one read and any split give the same outcome,
 * and what is forwarded is clean (a token name, a value without CR, LF or NUL, a final status). Returns what broke,
 * or null.
 */
export function checkInput(input: Buffer, opts: DecodeOptions, rnd: () => number, byteByByte: boolean): string | null {
  let whole: Outcome;
  try {
    whole = decode(input, [], opts);
    const expected = JSON.stringify(comparable(whole));
    const cuts = Array.from({ length: 1 + Math.floor(rnd() * 4) }, () => Math.floor(rnd() * input.length)).sort((x, y) => x - y);
    if (JSON.stringify(comparable(decode(input, cuts, opts))) !== expected) return `split at ${cuts.join(',')} differs from one read`;
    if (byteByByte && JSON.stringify(comparable(decode(input, Array.from({ length: input.length }, (_, i) => i), opts))) !== expected) {
      return 'byte by byte differs from one read';
    }
  } catch (err) {
    return `threw: ${(err as Error).stack ?? String(err)}`;
  }
  for (const r of whole.responses) {
    if (r.status < 200 || r.status > 599) return `forwarded status ${r.status}`;
    for (let i = 0; i < r.headers.length; i += 2) {
      if (!TOKEN.test(r.headers[i])) return `forwarded field name ${JSON.stringify(r.headers[i])}`;
      if (/[\0\r\n]/.test(r.headers[i + 1])) return `forwarded field value ${JSON.stringify(r.headers[i + 1])}`;
    }
    if (r.lines !== '' && (!r.lines.startsWith('\r\n') || r.lines.slice(2).split('\r\n').some((l) => /[\0\r\n]/.test(l) || !TOKEN.test(l.slice(0, l.indexOf(':')))))) {
      return `forwarded field lines ${JSON.stringify(r.lines.slice(0, 200))}`;
    }
  }
  return null;
}

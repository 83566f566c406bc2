/**
 * H1Decoder.execute: what the upstream connection costs per response read, head and body together, with the body
 * handed out as offsets into the read (no copy). Inputs: a 100-byte Content-Length response (the passthrough
 * scenario's), a chunked one of three chunks, eight pipelined responses in one read, and a 4 KiB head that arrives
 * 64 bytes per read (the partial-head path: one copy per byte, linear).
 */
import { defineSuite, consume } from '../../src/bench/micro-api.js';
import { H1Decoder, H1_END, H1_ERROR, H1_NEED_MORE } from '../../src/upstream/h1-decoder.js';

const LENGTH = Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100\r\nconnection: keep-alive\r\n\r\n${'x'.repeat(100)}`, 'latin1');
const CHUNKED = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n' + 'a'.repeat(32) + '\r\n40\r\n' + 'b'.repeat(64) + '\r\n4\r\ncccc\r\n0\r\n\r\n', 'latin1');
const PIPELINED = Buffer.concat(Array.from({ length: 8 }, () => LENGTH));
const BIG_HEAD = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pad: ${'p'.repeat(4096)}\r\n\r\nok`, 'latin1');

/** Decodes `responses` responses from buf, fed `step` bytes per read; returns the number of events. */
function run(dec: H1Decoder, buf: Buffer, responses: number, step: number): number {
  let events = 0;
  let done = 0;
  dec.begin(false);
  for (let start = 0; start < buf.length && done < responses; start += step) {
    const end = Math.min(buf.length, start + step);
    let pos = start;
    for (;;) {
      const ev = dec.execute(buf, pos, end);
      pos = dec.pos;
      events++;
      if (ev === H1_NEED_MORE || ev === H1_ERROR) break;
      if (ev === H1_END && ++done < responses) dec.begin(false);
      else if (ev === H1_END) break;
    }
  }
  if (done !== responses) throw new Error(`h1-decoder bench: ${done} of ${responses} responses decoded`);
  return events;
}

export default defineSuite({
  name: 'h1-decoder',
  description: 'H1Decoder.execute over whole responses: head parse, framing, body offsets',
  cases() {
    const dec = new H1Decoder();
    const cases: Array<[string, Buffer, number, number, number]> = [
      ['content-length 100 B, one read', LENGTH, 1, LENGTH.length, 16],
      ['chunked, 3 chunks, one read', CHUNKED, 1, CHUNKED.length, 16],
      ['8 pipelined responses, one read', PIPELINED, 8, PIPELINED.length, 2],
      ['4 KiB head, 64 bytes per read', BIG_HEAD, 1, 64, 1],
    ];
    return cases.map(([name, buf, responses, step, reps]) => ({
      name,
      ops: reps,
      fn: () => {
        for (let i = 0; i < reps; i++) consume(run(dec, buf, responses, step));
      },
    }));
  },
});

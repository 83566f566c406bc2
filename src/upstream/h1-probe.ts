import { connect, type Socket } from 'node:net';
import type { PlanNode } from '../config/plan.js';
import { H1Decoder, H1_END, H1_ERROR, H1_HEAD, H1_NEED_MORE } from './h1-decoder.js';
import {
  PIPE_OFF,
  PIPE_ON,
  PIPE_PROBING,
  PIPE_WHY_CLOSE,
  PIPE_WHY_CLOSED_AFTER_FIRST,
  PIPE_WHY_CLOSED_BEFORE_FIRST,
  PIPE_WHY_FRAMING,
  PIPE_WHY_HTTP10,
  PIPE_WHY_PASSED,
  PIPE_WHY_SECOND_MISSING,
  PIPE_WHY_UNREACHABLE,
} from './cluster-state.js';

/**
 * Does this node answer pipelined requests as RFC 9112 9.3.2 requires? Two `HEAD <path>` requests in one write on
 * a connection of their own, opened next to the pool's (never one a client request waits for), and the answers
 * judged: both must come, in HTTP/1.1, framed so that the second starts where the first ends, with the connection
 * left open. The usual ways servers get pipelining wrong fail it: answering only the first request (the rest of the
 * read is dropped), closing after the first answer, `Connection: close`, HTTP/1.0, or body bytes after a HEAD answer.
 *
 * Why HEAD: it is safe (RFC 9110 9.3.2: no state change expected), it is one of the two methods that get pipelined,
 * and its answer has no body whatever the path serves, so the probe costs the node next to nothing. The path is the
 * health check's when one is configured (an address the operator already lets us call), else `/`. Any status
 * counts: the probe judges framing, not the application.
 */
export type ProbeVerdict = (state: number, why: number) => void;

export class PipeliningProbe {
  readonly #socket: Socket;
  readonly #decoder = new H1Decoder();
  readonly #timer: NodeJS.Timeout;
  readonly #done: ProbeVerdict;
  #answered = 0;
  #connected = false;
  #over = false;

  constructor(node: PlanNode, path: string, timeoutMs: number, done: ProbeVerdict) {
    this.#done = done;
    const head = `HEAD ${path} HTTP/1.1\r\nhost: ${node.authority}\r\nuser-agent: nanogate-pipelining-probe\r\n\r\n`;
    this.#socket = connect({ host: node.host, port: node.port, noDelay: true });
    this.#socket.on('connect', () => {
      this.#connected = true;
      this.#socket.write(head + head, 'latin1');
    });
    this.#socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    this.#socket.on('error', () => this.#onClose());
    this.#socket.on('close', () => this.#onClose());
    this.#decoder.begin(true);
    this.#timer = setTimeout(() => this.#finish(this.#connected ? PIPE_OFF : PIPE_PROBING, this.#connected ? (this.#answered === 0 ? PIPE_WHY_CLOSED_BEFORE_FIRST : PIPE_WHY_SECOND_MISSING) : PIPE_WHY_UNREACHABLE), timeoutMs);
    this.#timer.unref();
  }

  /** The pool is closing: no verdict. */
  cancel(): void {
    this.#over = true;
    clearTimeout(this.#timer);
    this.#socket.destroy();
  }

  #onData(chunk: Buffer): void {
    const dec = this.#decoder;
    let pos = 0;
    // Until the decoder needs more bytes: an answer's end is an event of its own, also at the end of the chunk.
    while (!this.#over && this.#answered < 2) {
      const ev = dec.execute(chunk, pos, chunk.length);
      pos = dec.pos;
      if (ev === H1_HEAD) {
        const head = dec.head;
        if (head.text.charCodeAt(7) === 48) return this.#finish(PIPE_OFF, PIPE_WHY_HTTP10); // "HTTP/1.0"
        if (head.close) return this.#finish(PIPE_OFF, PIPE_WHY_CLOSE);
      } else if (ev === H1_END) {
        this.#answered++;
        if (this.#answered === 1) dec.begin(true);
      } else if (ev === H1_ERROR) return this.#finish(PIPE_OFF, PIPE_WHY_FRAMING);
      else if (ev === H1_NEED_MORE) break;
    }
    if (this.#over) return;
    // Anything after the second answer was not asked for: a body sent with a HEAD answer, or a stray response.
    if (this.#answered === 2 && pos < chunk.length) return this.#finish(PIPE_OFF, PIPE_WHY_FRAMING);
    if (this.#answered === 2) this.#finish(PIPE_ON, PIPE_WHY_PASSED);
  }

  #onClose(): void {
    if (this.#over) return;
    if (!this.#connected) return this.#finish(PIPE_PROBING, PIPE_WHY_UNREACHABLE);
    this.#finish(PIPE_OFF, this.#answered === 0 ? PIPE_WHY_CLOSED_BEFORE_FIRST : PIPE_WHY_CLOSED_AFTER_FIRST);
  }

  #finish(state: number, why: number): void {
    if (this.#over) return;
    this.#over = true;
    clearTimeout(this.#timer);
    this.#socket.destroy();
    this.#done(state, why);
  }
}

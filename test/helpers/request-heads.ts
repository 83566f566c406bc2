/** A request as a raw test upstream sees it: the start line's method and target, and the whole head. */
export interface RawRequest {
  method: string;
  path: string;
  head: string;
}

/**
 * Splits what one connection receives into request heads, in order, skipping bodies (Content-Length only): raw test
 * upstreams that must see how requests arrive (several in one read, a body in a later read than its head).
 */
export class RequestHeads {
  #buf = '';
  /** bytes of a request body still to come */
  #bodyLeft = 0;

  /** The requests whose heads this read completed. */
  push(data: Buffer): RawRequest[] {
    this.#buf += data.toString('latin1');
    const out: RawRequest[] = [];
    for (;;) {
      const skip = Math.min(this.#bodyLeft, this.#buf.length);
      this.#buf = this.#buf.slice(skip);
      this.#bodyLeft -= skip;
      const end = this.#bodyLeft > 0 ? -1 : this.#buf.indexOf('\r\n\r\n');
      if (end < 0) return out;
      const head = this.#buf.slice(0, end);
      this.#buf = this.#buf.slice(end + 4);
      const [method, path] = head.split(' ');
      const length = /\r\ncontent-length: (\d+)/i.exec(head);
      if (length) this.#bodyLeft = Number(length[1]);
      out.push({ method, path, head });
    }
  }
}

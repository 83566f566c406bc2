/**
 * The result of `fn` for the last input, kept aside: on a hot path whose input mostly repeats from one request to
 * the next (a field of consecutive access-log lines, the limit a route's rate limit reports), comparing with the last
 * input costs less than computing the result again. One thread, one caller per instance.
 */
export class LastResult<A, R> {
  readonly #fn: (a: A) => R;
  #input: A;
  #result: R;

  /** `first` is an input and `fn(first)` its result, so the first call that repeats it needs no computing */
  constructor(fn: (a: A) => R, first: A) {
    this.#fn = fn;
    this.#input = first;
    this.#result = fn(first);
  }

  of(a: A): R {
    if (a !== this.#input) {
      this.#input = a;
      this.#result = this.#fn(a);
    }
    return this.#result;
  }
}

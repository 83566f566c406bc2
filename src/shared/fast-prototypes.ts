/**
 * Puts the builtin prototypes back in V8's fast-property mode after a library has knocked one out of it.
 *
 * `class X extends String` (ioredis's RESP3 VerbatimString does this when the module loads) turns String.prototype
 * into a dictionary-mode object, and a primitive string's method loads never bring it back: every `s.charCodeAt`,
 * `s.indexOf`, `s.slice` in the thread then goes through the generic LoadIC builtin instead of an inlined load. In the
 * worker that was about 4 % of all CPU on the pass-through (the response-head parser alone), about 1-2 µs a request,
 * once the cache's Redis L2 brought ioredis into the worker threads.
 *
 * V8 makes a dictionary-mode prototype fast again when an inline cache resolves a load through it from an ordinary
 * object whose prototype it is; the loads below do that, in a function called often enough to have feedback (V8
 * allocates feedback vectors lazily, so a one-shot top-level load would not count). Cheap (microseconds), run once per
 * thread after its modules are loaded; test/unit/fast-prototypes.test.ts checks the worker's module graph.
 */

const PROTOTYPES: readonly object[] = [
  String.prototype,
  Number.prototype,
  Boolean.prototype,
  Symbol.prototype,
  Object.prototype,
  Array.prototype,
  Function.prototype,
  RegExp.prototype,
  Map.prototype,
  Set.prototype,
  Promise.prototype,
  Uint8Array.prototype,
  Buffer.prototype,
];

function touch(o: object): unknown {
  return (o as { toString: unknown }).toString;
}

export function keepBuiltinPrototypesFast(): void {
  for (const proto of PROTOTYPES) {
    const o = Object.create(proto) as object;
    for (let i = 0; i < 32; i++) touch(o);
  }
}

/**
 * A string made by concatenation is, in V8, a tree of its pieces (a cons string) until something needs its
 * characters in one run: then it is flattened, the tree copied into one new string. Writing a string into a Buffer or
 * a socket flattens it; the copy is kept for the string written, but not for a cons string that is only a piece of
 * it. So a string kept for many requests and concatenated into each (an access-log field that repeats, an upstream's
 * host line) has its tree walked again in every line or head that holds it.
 *
 * flat(s) flattens `s` once, where it is made: V8's number conversion needs the characters in one run and flattens
 * the string in place (the tree becomes a pointer to the flat copy), which is all that is wanted of it here. Counted
 * with callgrind on a 500-byte access-log line holding one cached 200-byte run of fields: 10,000 instructions a line
 * with the run left as a tree, 4,100 with it flattened once.
 */
let sink = 0;

export function flat(s: string): string {
  // stored in a module variable (a context slot, which the compiler keeps), so the conversion is not dropped
  sink = Number(s);
  return s;
}

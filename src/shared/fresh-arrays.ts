/**
 * Makers of fresh small arrays of one length, as array literals: V8 allocates a literal inline, where a template's
 * `slice()` is a builtin call and an elements copy (≈250 instructions a copy, native-bench/instructions.sh). A route
 * with policies takes two a request: its policies' slots and, when timed, its hook marks.
 *
 * A literal's allocation site learns its elements' kind: once a mark array has taken a timestamp (a double), the
 * literal makes double arrays from the start, as the zero-filled double template did.
 */
const UNDEFINED_FILLED: readonly (() => unknown[])[] = [
  () => [],
  () => [undefined],
  () => [undefined, undefined],
  () => [undefined, undefined, undefined],
  () => [undefined, undefined, undefined, undefined],
  () => [undefined, undefined, undefined, undefined, undefined],
  () => [undefined, undefined, undefined, undefined, undefined, undefined],
  () => [undefined, undefined, undefined, undefined, undefined, undefined, undefined],
  () => [undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined],
];

const ZERO_FILLED: readonly (() => number[])[] = [
  () => [],
  () => [0],
  () => [0, 0],
  () => [0, 0, 0],
  () => [0, 0, 0, 0],
  () => [0, 0, 0, 0, 0],
  () => [0, 0, 0, 0, 0, 0],
  () => [0, 0, 0, 0, 0, 0, 0],
  () => [0, 0, 0, 0, 0, 0, 0, 0],
];

/** A maker of `length` undefined entries. */
export function undefinedFilled(length: number): () => unknown[] {
  if (length < UNDEFINED_FILLED.length) return UNDEFINED_FILLED[length];
  const template: unknown[] = Array.from({ length }, () => undefined);
  return () => template.slice();
}

/** A maker of `length` zeros that take doubles without a change of elements kind (see above). */
export function zeroFilled(length: number): () => number[] {
  if (length < ZERO_FILLED.length) return ZERO_FILLED[length];
  // made of doubles, then zeroed: the array keeps V8's double elements kind, so each copy takes timestamps as is
  const template = Array.from({ length }, () => 0.5).fill(0);
  return () => template.slice();
}

import { fmix32 } from './hash.js';

/**
 * xorshift32 (Marsaglia 2003): three shifts and xors per number, no allocation, period 2^32 - 1. Balancers draw
 * from it instead of Math.random so that a seed makes every pick sequence reproducible in tests, and so that each
 * worker's instance (seeded apart) draws its own sequence.
 */
export class XorShift32 {
  #state: number;

  /**
   * seed: any integer. It is scrambled first: xorshift's first outputs from small, close seeds (worker 1, 2, 3…)
   * are small and close too, which started every worker on the same node. 0, a fixed point, is replaced.
   */
  constructor(seed: number) {
    this.#state = fmix32(seed | 0) | 0 || 0x6d2b79f5;
  }

  /** Next unsigned 32-bit value. */
  next(): number {
    let x = this.#state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#state = x;
    return x >>> 0;
  }

  /** Uniform integer in [0, n) for n in [1, 2^21]: a multiply, not %, so no modulo bias beyond 2^-11. */
  below(n: number): number {
    return Math.floor(this.next() * 2.3283064365386963e-10 * n);
  }

  /** Uniform float in [0, 1). */
  float(): number {
    return this.next() * 2.3283064365386963e-10;
  }
}

/** A seed for an instance when the caller gives none (construction time only, never on the pick path). */
export function randomSeed(): number {
  return (Math.random() * 0x100000000) >>> 0 || 1;
}

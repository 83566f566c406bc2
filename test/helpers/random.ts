/**
 * A seeded pseudo-random source for tests (mulberry32: 32 bits of state, uniform enough for jitter and shuffles).
 * Math.random cannot be seeded, so a test that drew from it and then checked a statistical bound could fail on one
 * run in many with nothing to replay. Every test that needs randomness takes it from here, with a fixed seed it names
 * in its failure messages; NANOGATE_TEST_SEED overrides the seed to explore others.
 */
export interface Random {
  readonly seed: number;
  /** uniform in [0, 1) */
  next(): number;
  /** integer uniform in [0, n) */
  int(n: number): number;
}

export function seededRandom(seed: number): Random {
  const fromEnv = process.env.NANOGATE_TEST_SEED;
  const s0 = fromEnv !== undefined && /^\d+$/.test(fromEnv) ? Number(fromEnv) >>> 0 : seed >>> 0;
  let a = s0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { seed: s0, next, int: (n) => Math.floor(next() * n) };
}

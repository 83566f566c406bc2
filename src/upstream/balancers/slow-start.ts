/**
 * Slow start (Envoy's slow_start_config): a node that has just become available takes a growing share of its
 * weight over a window, so a cold cache or JIT is not handed full traffic at once.
 *
 *   factor = max(minWeightPercent / 100, timeFactor^(1 / aggression)),  timeFactor = max(elapsed, 1 s) / window
 *
 * and 1 from the end of the window on. aggression 1 ramps linearly; above 1 the ramp rises fast and flattens,
 * below 1 it starts slow and steepens. The cluster multiplies the configured weight by this factor in
 * NodeView.weight(i); round robin, least request, peak EWMA and the bounded-load cap all see the ramp.
 */
export interface SlowStartConfig {
  /** length of the ramp in ms; 0 turns slow start off */
  readonly windowMs: number;
  /** default 1 (linear) */
  readonly aggression?: number;
  /** the factor never goes below this percentage (Envoy's default 10), so a new node gets some traffic */
  readonly minWeightPercent?: number;
}

export const DEFAULT_AGGRESSION = 1;
export const DEFAULT_MIN_WEIGHT_PERCENT = 10;

/**
 * Weight factor in (0, 1] at `nowMs` for a node that became available at `sinceMs` (same clock, ms). A `sinceMs`
 * in the future (clock skew between threads) counts as just started.
 */
export function slowStartFactor(nowMs: number, sinceMs: number, config: SlowStartConfig): number {
  const window = config.windowMs;
  if (!(window > 0)) return 1;
  const elapsed = nowMs - sinceMs;
  if (elapsed >= window) return 1;
  const aggression = config.aggression ?? DEFAULT_AGGRESSION;
  const floor = (config.minWeightPercent ?? DEFAULT_MIN_WEIGHT_PERCENT) / 100;
  const timeFactor = Math.min(1, Math.max(elapsed, 1000) / window);
  const ramp = aggression === 1 ? timeFactor : Math.pow(timeFactor, 1 / aggression);
  return ramp > floor ? ramp : floor;
}

import hdr from 'hdr-histogram-js';
import type { Histogram } from 'hdr-histogram-js';

/**
 * Latency histograms of the bench: HdrHistogram, in microseconds, 3 significant digits (values are exact to 1 µs
 * below 2 ms and within 0.1% above), up to 60 s. The pure-JS implementation is used: it needs no WebAssembly
 * initialisation and the generator records at most a few hundred thousand values per second.
 */
export function newHistogram(): Histogram {
  return hdr.build({
    bitBucketSize: 64,
    autoResize: true,
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });
}

/** Compact transport form (between processes and into the JSON report): compressed base64, the HdrHistogram standard. */
export function encodeHistogram(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

export function decodeHistogram(s: string): Histogram {
  const h = hdr.decodeFromCompressedBase64(s, 64, false);
  h.autoResize = true;
  return h;
}

export function mergeHistograms(encoded: readonly string[]): Histogram {
  const out = newHistogram();
  for (const e of encoded) {
    if (!e) continue;
    const h = decodeHistogram(e);
    out.add(h);
  }
  return out;
}

/** The percentiles every report shows, in this order. */
export const PERCENTILES = [
  ['p50', 50],
  ['p90', 90],
  ['p95', 95],
  ['p99', 99],
  ['p999', 99.9],
] as const;

export type PercentileKey = (typeof PERCENTILES)[number][0] | 'max';
export const LATENCY_KEYS: readonly PercentileKey[] = ['p50', 'p90', 'p95', 'p99', 'p999', 'max'];

export interface LatencySummary {
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
  count: number;
}

export function summarize(h: Histogram): LatencySummary {
  if (h.totalCount === 0) return { p50: NaN, p90: NaN, p95: NaN, p99: NaN, p999: NaN, max: NaN, mean: NaN, count: 0 };
  return {
    p50: h.getValueAtPercentile(50),
    p90: h.getValueAtPercentile(90),
    p95: h.getValueAtPercentile(95),
    p99: h.getValueAtPercentile(99),
    p999: h.getValueAtPercentile(99.9),
    max: h.maxValue,
    mean: Math.round(h.mean * 10) / 10,
    count: h.totalCount,
  };
}

/**
 * Points of the percentile spectrum for plotting: [percentile, µs], evenly spaced on the "number of nines" axis
 * (x = 1 / (1 - p)), as the HdrHistogram plotter draws it, so the tail gets as many points as the body.
 */
export function spectrum(h: Histogram, maxNines = 4, steps = 48): Array<[number, number]> {
  const pts: Array<[number, number]> = [];
  if (h.totalCount === 0) return pts;
  for (let k = 0; k <= steps; k++) {
    const x = 10 ** ((k * maxNines) / steps);
    const p = 100 * (1 - 1 / x);
    pts.push([p, h.getValueAtPercentile(p)]);
  }
  pts.push([100, h.maxValue]);
  return pts;
}

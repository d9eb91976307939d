/**
 * Repeated measurements summarised as the benchmarks report them: the median with the min and max
 * over the runs, and the range of the load average while they ran.
 *
 * @module
 */

import type { Figures } from "./bench.ts";
import { loadAverage1m } from "./load_average.ts";

/** Rounds to `digits` decimals (figures are read by people; more digits are noise here). */
export function round(value: number, digits = 1): number {
  const scale = 10 ** digits;
  // Adding 0 turns a -0 (a tiny negative rounded) into 0.
  return Math.round(value * scale) / scale + 0;
}

/** The median of `values` (the upper one of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("Cannot take the median of no values");
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** The nearest-rank `p`th percentile of `values` (0 < p <= 100): p 99 of 88 values is the 88th. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new RangeError("Cannot take a percentile of no values");
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** `{prefix}`, `{prefix}_min` and `{prefix}_max` of the values. */
export function spread(prefix: string, values: readonly number[], digits = 1): Figures {
  return {
    [prefix]: round(median(values), digits),
    [`${prefix}_min`]: round(Math.min(...values), digits),
    [`${prefix}_max`]: round(Math.max(...values), digits),
  };
}

/** Collects the load average before each run of a group of measurements. */
export class LoadSampler {
  readonly #samples: number[] = [];

  /** Records the current load average (nothing where the system has none). */
  async sample(): Promise<void> {
    const value = await loadAverage1m();
    if (value !== undefined) this.#samples.push(value);
  }

  /** `{prefix}_load_1m`: "min-max" of the samples, or "n/a" without any. */
  figures(prefix: string): Figures {
    const s = this.#samples;
    return {
      [`${prefix}_load_1m`]: s.length === 0
        ? "n/a"
        : `${Math.min(...s).toFixed(2)}-${Math.max(...s).toFixed(2)}`,
    };
  }
}

/**
 * Linear splitting (docs/reference/static-llm.md section 4): a `[out, in]` projection becomes `k`
 * equal projections of `out / k` rows whose outputs are concatenated, keeping every weight under
 * the Neural Engine's per-axis limits and giving it smaller units of work.
 *
 * @module
 */

/** An uneven split: upstream raises here too, rather than silently using unequal parts. */
export class UnevenSplitError extends RangeError {
  constructor(
    name: string,
    outFeatures: number,
    parts: number,
    targetSplitSize: number,
    maxSplits: number,
  ) {
    super(
      `Cannot split "${name}": ${outFeatures} output features do not divide into ${parts} equal parts ` +
        `(target_split_size ${targetSplitSize}, max_splits ${maxSplits}); choose a --target_split_size ` +
        `or --max_splits that divides it`,
    );
    this.name = "UnevenSplitError";
  }
}

/**
 * The number of parts: `max(out // targetSplitSize, 1)`, capped at `maxSplits`.
 *
 * @throws {UnevenSplitError} when the parts would be unequal
 */
export function splitCount(
  name: string,
  outFeatures: number,
  targetSplitSize: number,
  maxSplits: number,
): number {
  const parts = Math.min(Math.max(Math.floor(outFeatures / targetSplitSize), 1), maxSplits);
  if (outFeatures % parts !== 0) {
    throw new UnevenSplitError(name, outFeatures, parts, targetSplitSize, maxSplits);
  }
  return parts;
}

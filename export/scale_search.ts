/**
 * The scale of one quantization group, chosen to minimise the squared reconstruction error
 * `sum (w - scale * q)^2` rather than to cover the largest |w|.
 *
 * Mapping the largest |w| to the end of the integer range (absmax) wastes most of the 16 levels
 * of int4 on a few outliers: clipping them costs less than the coarser steps cost every other
 * value. The search tries clipping ratios of the largest |w|, mapped to the longer, negative end
 * of `[qmin, qmax]` (a negative scale when that value is positive, so that int4 uses its 8th
 * level), fits each candidate's integers by least squares (`scale = sum(w q) / sum(q^2)`), then
 * alternates rounding and fitting from the best. Every error compared is computed with the scale
 * rounded to its storage dtype, and absmax is kept unless the search does strictly better, so the
 * result is never worse than absmax. Plain floating-point loops in a fixed order: deterministic.
 *
 * Whole rows of int4 weight each value's error by its square instead ({@link searchWeightedScale}):
 * a row's few large weights, which the plain search would clip, matter most to the model.
 *
 * @module
 */

/**
 * Clipping ratios tried, largest first: the scale maps `ratio * extreme` to `qmin`. Absmax with
 * the longer end (`-qmin / qmax`) comes first; smaller ratios are for rows with far outliers.
 */
const CLIP_RATIOS = [1.06, 1, 0.94, 0.88, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3];

/** The grid stops after this many ratios in a row that fit worse than the best so far. */
const PATIENCE = 2;

/**
 * Values the search looks at per group: a longer group (a whole row) is sampled with a stride,
 * which estimates its best clipping well; the final choice is checked on every value.
 */
const SAMPLES = 512;

/** Rounding-and-fitting steps after the grid; each one can only lower the error it fits. */
const REFINEMENTS = 2;

/**
 * Adding then subtracting 1.5 * 2^52 rounds a double of magnitude below 2^51 to an integer, ties
 * to even (the default IEEE rounding): in [2^52, 2^53) the spacing of doubles is exactly 1. It
 * gives +0 where a plain round-half-even gives -0, which an Int8Array stores alike. Larger
 * magnitudes (and infinities) come back far outside any qmin/qmax, so clamping ends the same.
 */
export const ROUNDING_BIAS = 6755399441055744;

/**
 * `sum(i w q)` and `sum(i q^2)` of the last {@link fitSums} call, kept here to allocate nothing
 * (`i`, each value's importance: its square when weighted, else 1).
 */
let sumWq = 0;
let sumQq = 0;

/**
 * Sums of `i * w * k` and `i * k * k` for `k = clamp(round(w * inverse + offset)) - offset` over
 * every `stride`-th value of `[start, end)`, with `i = w * w` if `weighted`, else 1: the
 * least-squares fit, each value weighted by its square or not at all.
 */
function fitSums(
  weights: Float32Array,
  start: number,
  end: number,
  stride: number,
  inverse: number,
  offset: number,
  qmin: number,
  qmax: number,
  weighted: boolean,
): void {
  let wq = 0;
  let qq = 0;
  for (let i = start; i < end; i += stride) {
    const w = weights[i]!;
    // Clamping to integer bounds before rounding gives the same integers, with fewer branches
    // that depend on the rounded value.
    let y = w * inverse + offset;
    y = y < qmin ? qmin : y;
    y = y > qmax ? qmax : y;
    const k = y + ROUNDING_BIAS - ROUNDING_BIAS - offset;
    const importance = weighted ? w * w : 1;
    wq += importance * w * k;
    qq += importance * k * k;
  }
  sumWq = wq;
  sumQq = qq;
}

/**
 * `sum i (w - scale * (clamp(round(w / scale + offset)) - offset))^2` over `[start, end)`, with
 * `i = w * w` if `weighted`, else 1: the error of the values {@link quantizeMatrix} stores with a
 * nonzero scale and an offset, each value's error weighted by its square or not at all.
 */
export function groupError(
  weights: Float32Array,
  start: number,
  end: number,
  scale: number,
  offset: number,
  qmin: number,
  qmax: number,
  weighted: boolean,
): number {
  let error = 0;
  for (let i = start; i < end; i++) {
    const w = weights[i]!;
    let y = w / scale + offset;
    y = y < qmin ? qmin : y;
    y = y > qmax ? qmax : y;
    const d = w - scale * (y + ROUNDING_BIAS - ROUNDING_BIAS - offset);
    error += (weighted ? w * w : 1) * d * d;
  }
  return error;
}

/** The value of largest magnitude in `[start, end)` (the first of equals); NaN if any is not finite. */
function extremeValue(weights: Float32Array, start: number, end: number): number {
  let extreme = 0;
  let extremeAbs = 0;
  for (let i = start; i < end; i++) {
    const a = Math.abs(weights[i]!);
    if (!(a < Infinity)) return NaN;
    if (a > extremeAbs) {
      extremeAbs = a;
      extreme = weights[i]!;
    }
  }
  return extreme;
}

/**
 * The stored scale of the group `[start, end)` whose error is smallest among absmax and the
 * searched candidates: 0 for a group of zeros (or one whose scale underflows), NaN for a group
 * holding a value that is not finite, Infinity when absmax overflows the storage dtype.
 *
 * @param roundScale rounds a scale to its storage dtype
 */
export function searchGroupScale(
  weights: Float32Array,
  start: number,
  end: number,
  qmin: number,
  qmax: number,
  roundScale: (x: number) => number,
): number {
  const extreme = extremeValue(weights, start, end);
  const extremeAbs = Math.abs(extreme);
  const absmax = roundScale(extremeAbs / qmax);
  if (!(absmax > 0 && absmax < Infinity)) return absmax;

  // Each candidate's integers, refitted by least squares: the best explains the most of
  // sum(w^2), which is sum(w q)^2 / sum(q^2).
  let bestScale = 0;
  let bestGain = 0;
  const tryInverse = (inverse: number, stride: number): boolean => {
    fitSums(weights, start, end, stride, inverse, 0, qmin, qmax, false);
    const gain = sumQq === 0 ? 0 : (sumWq * sumWq) / sumQq;
    if (!(gain > bestGain)) return false;
    bestGain = gain;
    bestScale = sumWq / sumQq;
    return true;
  };
  const stride = Math.max(1, Math.floor((end - start) / SAMPLES));
  tryInverse(-qmax / extreme, stride);
  for (let k = 0, misses = 0; k < CLIP_RATIOS.length && misses < PATIENCE; k++) {
    misses = tryInverse(qmin / (CLIP_RATIOS[k]! * extreme), stride) ? 0 : misses + 1;
  }
  for (let step = 0; step < REFINEMENTS; step++) {
    if (!tryInverse(1 / bestScale, stride)) break;
  }
  // The sample's scale, refitted on every value (sampled gains do not compare with it).
  if (stride > 1) {
    bestGain = 0;
    tryInverse(1 / bestScale, 1);
  }

  const searched = roundScale(bestScale);
  if (searched === 0 || !Number.isFinite(searched)) return absmax;
  return groupError(weights, start, end, searched, 0, qmin, qmax, false) <
      groupError(weights, start, end, absmax, 0, qmin, qmax, false)
    ? searched
    : absmax;
}

/** A group's scale and integer offset: `w = scale * (q - offset)`. */
export interface ShiftedScale {
  readonly scale: number;
  readonly offset: number;
}

/**
 * The stored scale and offset of the group `[start, end)` with the least error: a range
 * `[lo, hi]` around the group's values and zero, clipped by the same ratios as
 * {@link searchGroupScale} and mapped onto `[qmin, qmax]` with the offset that zero needs,
 * refitted by least squares for that offset; kept only when it stores the group with strictly
 * less {@link groupError} (`weighted` or not) than `symmetric`
 * (the group's searched scale, offset 0) does. The group's values must be finite and `symmetric`
 * not 0.
 */
export function searchGroupShift(
  weights: Float32Array,
  start: number,
  end: number,
  qmin: number,
  qmax: number,
  roundScale: (x: number) => number,
  symmetric: number,
  weighted: boolean,
): ShiftedScale {
  let lo = 0;
  let hi = 0;
  for (let i = start; i < end; i++) {
    const w = weights[i]!;
    if (w < lo) lo = w;
    if (w > hi) hi = w;
  }
  let bestScale = 0;
  let bestOffset = 0;
  let bestGain = 0;
  const tryShift = (inverse: number, offset: number, stride: number): boolean => {
    fitSums(weights, start, end, stride, inverse, offset, qmin, qmax, false);
    const gain = sumQq === 0 ? 0 : (sumWq * sumWq) / sumQq;
    if (!(gain > bestGain)) return false;
    [bestGain, bestScale, bestOffset] = [gain, sumWq / sumQq, offset];
    return true;
  };
  const stride = Math.max(1, Math.floor((end - start) / SAMPLES));
  for (let k = 0, misses = 0; k < CLIP_RATIOS.length && misses < PATIENCE; k++) {
    const inverse = (qmax - qmin) / (CLIP_RATIOS[k]! * (hi - lo));
    const offset = Math.min(
      qmax,
      Math.max(qmin, Math.round(qmin - CLIP_RATIOS[k]! * lo * inverse)),
    );
    misses = tryShift(inverse, offset, stride) ? 0 : misses + 1;
  }
  for (let step = 0; step < REFINEMENTS; step++) {
    if (!tryShift(1 / bestScale, bestOffset, stride)) break;
  }
  if (stride > 1) {
    bestGain = 0;
    tryShift(1 / bestScale, bestOffset, 1);
  }
  const scale = roundScale(bestScale);
  const keep = { scale: symmetric, offset: 0 };
  if (scale === 0 || !Number.isFinite(scale) || bestOffset === 0) return keep;
  return groupError(weights, start, end, scale, bestOffset, qmin, qmax, weighted) <
      groupError(weights, start, end, symmetric, 0, qmin, qmax, weighted)
    ? { scale, offset: bestOffset }
    : keep;
}

/**
 * Candidates of {@link searchWeightedScale}, in the order tried: each maps the extreme value to
 * `qmin - k / 10` for even k from -8 to 8 (k = 0 stores it exactly on the longer, negative end);
 * absmax is tried last.
 */
const LEVEL_STEPS = [0, -8, -6, -4, -2, 2, 4, 6, 8];

/**
 * The stored scale of the group `[start, end)` that minimises its error weighted by each value's
 * square, `sum w^2 (w - scale * q)^2`: large weights, those whose inputs matter most, are kept
 * close, and the many small ones share what is left. Candidates map the extreme value to the
 * negative end of `[qmin, qmax]` and up to 0.8 of a level either side in fifths (llama.cpp's
 * `make_qx_quants`, with weights `x * x`, tries every tenth up to 0.9), and absmax; each
 * candidate's integers are refitted by weighted least squares,
 * `scale = sum(w^2 w q) / sum(w^2 q^2)` (on every k-th value of a group longer than 1023, the
 * winner then refitted on all of them), and the best is kept only if its weighted error with the
 * scale rounded to its dtype is strictly below absmax's. Same 0, NaN and Infinity as
 * {@link searchGroupScale}. A NumPy simulation of this rule,
 * scripts/oracle/weighted_scales.py, gives the same scales bit for bit.
 */
export function searchWeightedScale(
  weights: Float32Array,
  start: number,
  end: number,
  qmin: number,
  qmax: number,
  roundScale: (x: number) => number,
): number {
  const extreme = extremeValue(weights, start, end);
  const absmax = roundScale(Math.abs(extreme) / qmax);
  if (!(absmax > 0 && absmax < Infinity)) return absmax;

  let bestScale = 0;
  let bestGain = 0;
  const tryInverse = (inverse: number, stride: number): void => {
    fitSums(weights, start, end, stride, inverse, 0, qmin, qmax, true);
    const gain = sumQq === 0 ? 0 : (sumWq * sumWq) / sumQq;
    if (!(gain > bestGain)) return;
    bestGain = gain;
    bestScale = sumWq / sumQq;
  };
  const stride = Math.max(1, Math.floor((end - start) / SAMPLES));
  for (const k of LEVEL_STEPS) tryInverse((qmin - k / 10) / extreme, stride);
  tryInverse(qmax / Math.abs(extreme), stride);
  // The sample's winner, refitted on every value (sampled gains do not compare with it).
  if (stride > 1 && bestScale !== 0) {
    bestGain = 0;
    tryInverse(1 / bestScale, 1);
  }

  const searched = roundScale(bestScale);
  if (searched === 0 || !Number.isFinite(searched)) return absmax;
  return groupError(weights, start, end, searched, 0, qmin, qmax, true) <
      groupError(weights, start, end, absmax, 0, qmin, qmax, true)
    ? searched
    : absmax;
}

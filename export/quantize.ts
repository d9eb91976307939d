/**
 * Weight-only integer quantization, as docs/design.md describes it: for each group of values, a
 * scale chosen to minimise the group's squared error (export/scale_search.ts; for whole rows of
 * int4, each value's error weighted by the value's square), then
 * `q = clamp(roundHalfEven(w / scale), qmin, qmax)` with `qmax = 2^(b-1) - 1`, `qmin = -2^(b-1)`.
 * Asymmetric quantization adds an integer offset per group, `w = scale * (q - offset)` with
 * `q = clamp(roundHalfEven(w / scale + offset))`, where it lowers the group's error so measured. A
 * group is a run of `groupSize` consecutive values of a row (a whole row for per-channel
 * quantization). The scale is rounded to its storage dtype first and q computed from the rounded
 * scale, so that the stored value is the closest the stored form allows.
 *
 * @module
 */

import {
  ROUNDING_BIAS,
  searchGroupScale,
  searchGroupShift,
  searchWeightedScale,
} from "./scale_search.ts";

/** Bit widths Core ML's `constexpr_blockwise_shift_scale` takes as signed data. */
export type QuantBits = 4 | 8;

/** A row-major matrix quantized by groups along its rows. */
export interface QuantizedMatrix {
  readonly bits: QuantBits;
  readonly rows: number;
  readonly columns: number;
  /** Consecutive values of a row that share a scale. */
  readonly groupSize: number;
  /** `[rows, columns]` values in `[qmin, qmax]`. */
  readonly values: Int8Array;
  /** `[rows, columns / groupSize]` scales, already rounded to the storage dtype. */
  readonly scales: Float32Array;
  /** `[rows, columns / groupSize]` offsets in `[qmin, qmax]`, when quantized asymmetrically. */
  readonly offsets?: Int8Array;
}

/** Rounds to the nearest integer, ties to even (as NumPy and PyTorch do). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Quantizes a `[rows, columns]` matrix.
 *
 * @param groupSize values per scale along a row; must divide `columns`
 * @param roundScale rounds a scale to its storage dtype (`Math.f16round` for fp16 models)
 * @param asymmetric give each group an offset where it lowers the error
 */
export function quantizeMatrix(
  weights: Float32Array,
  rows: number,
  columns: number,
  bits: QuantBits,
  groupSize: number,
  roundScale: (x: number) => number,
  asymmetric = false,
): QuantizedMatrix {
  if (weights.length !== rows * columns) {
    throw new RangeError(
      `Cannot quantize: ${weights.length} values do not form a [${rows}, ${columns}] matrix`,
    );
  }
  if (groupSize <= 0 || columns % groupSize !== 0) {
    throw new RangeError(
      `Cannot quantize: group size ${groupSize} does not divide the row length ${columns}`,
    );
  }
  const qmax = 2 ** (bits - 1) - 1;
  const qmin = -(2 ** (bits - 1));
  const values = new Int8Array(weights.length);
  const scales = new Float32Array(weights.length / groupSize);
  const offsets = asymmetric ? new Int8Array(scales.length) : undefined;
  // Whole rows of int4 weight each value's error by its square: the plain search clips a row's
  // largest weights, those of the inputs that matter most, and halved SmolLM2's top-1 agreement
  // (docs/design.md).
  const wholeInt4Rows = bits === 4 && groupSize === columns;
  const search = wholeInt4Rows ? searchWeightedScale : searchGroupScale;
  for (let group = 0, start = 0; group < scales.length; group++, start += groupSize) {
    const end = start + groupSize;
    let scale = search(weights, start, end, qmin, qmax, roundScale);
    if (!Number.isFinite(scale)) {
      const row = Math.floor(start / columns);
      throw new RangeError(
        Number.isNaN(scale)
          ? `Cannot quantize: row ${row} holds a value that is NaN or infinite`
          : `Cannot quantize: row ${row} holds values too large for a scale of its dtype`,
      );
    }
    // An all-zero group (or one whose scale underflows) is stored as zeros.
    if (scale === 0) continue;
    let offset = 0;
    if (offsets !== undefined) {
      ({ scale, offset } = searchGroupShift(
        weights,
        start,
        end,
        qmin,
        qmax,
        roundScale,
        scale,
        wholeInt4Rows,
      ));
      offsets[group] = offset;
    }
    scales[group] = scale;
    quantizeGroup(weights, values, start, end, scale, offset, qmin, qmax);
  }
  return { bits, rows, columns, groupSize, values, scales, ...(offsets && { offsets }) };
}

/** `values[i] = clamp(roundHalfEven(w / scale + offset), qmin, qmax)` over `[start, end)`. */
function quantizeGroup(
  weights: Float32Array,
  values: Int8Array,
  start: number,
  end: number,
  scale: number,
  offset: number,
  qmin: number,
  qmax: number,
): void {
  for (let i = start; i < end; i++) {
    const q = weights[i]! / scale + offset + ROUNDING_BIAS - ROUNDING_BIAS;
    values[i] = q > qmax ? qmax : q < qmin ? qmin : q;
  }
}

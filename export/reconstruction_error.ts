/**
 * How much storing the weights lost: for a tensor, its relative reconstruction error
 * `sum (w - stored)^2 / sum w^2`, w the checkpoint's values as read (fp32) and `stored` what the
 * bundle dequantizes to, summed in float64 as the quantizers go, a few rows at a time, from the
 * values they already hold.
 *
 * @module
 */

import { EMBEDDING } from "../llama/weights.ts";
import type { QuantizedMatrix } from "./quantize.ts";
import type { PalettizedMatrix } from "./palettize.ts";

/** The sums of one tensor's squared error and squared values, added to a few rows at a time. */
export class ErrorSums {
  #squaredError = 0;
  #squaredValues = 0;

  /** Adds rows `weights` stored as `q`: `(q - offset) * scale` per group of each row. */
  addQuantized(weights: Float32Array, q: QuantizedMatrix): void {
    let error = 0;
    let values = 0;
    for (let group = 0, start = 0; group < q.scales.length; group++, start += q.groupSize) {
      const scale = q.scales[group]!;
      const offset = q.offsets?.[group] ?? 0;
      for (let i = start; i < start + q.groupSize; i++) {
        const w = weights[i]!;
        error += (w - (q.values[i]! - offset) * scale) ** 2;
        values += w * w;
      }
    }
    this.#squaredError += error;
    this.#squaredValues += values;
  }

  /** Adds rows `weights` stored as `p`: each value its palette's entry. */
  addPalettized(weights: Float32Array, p: PalettizedMatrix): void {
    const entries = 2 ** p.bits;
    const perPalette = p.groupRows * p.columns;
    let error = 0;
    let values = 0;
    for (let start = 0, palette = 0; start < weights.length; start += perPalette) {
      for (let i = start; i < start + perPalette; i++) {
        const w = weights[i]!;
        error += (w - p.palettes[palette + p.indices[i]!]!) ** 2;
        values += w * w;
      }
      palette += entries;
    }
    this.#squaredError += error;
    this.#squaredValues += values;
  }

  /** Adds rows `weights` stored as floats, each rounded by `round` (fp16 or none). */
  addFloat(weights: Float32Array, round: (x: number) => number): void {
    let error = 0;
    let values = 0;
    for (const w of weights) {
      error += (w - round(w)) ** 2;
      values += w * w;
    }
    this.#squaredError += error;
    this.#squaredValues += values;
  }

  /**
   * Adds rows read as the blocks `q` holds: the checkpoint's values are the blocks' own, so they
   * are stored without error.
   */
  addExact(q: QuantizedMatrix): void {
    let values = 0;
    for (let i = 0; i < q.values.length; i++) {
      values += (q.values[i]! * q.scales[Math.floor(i / q.groupSize)]!) ** 2;
    }
    this.#squaredValues += values;
  }

  /** `sum (w - stored)^2 / sum w^2`; 0 for a tensor of zeros stored as zeros. */
  get relative(): number {
    return this.#squaredError === 0 ? 0 : this.#squaredError / this.#squaredValues;
  }
}

/** One stored weight's relative reconstruction error. */
export interface TensorError {
  /** The checkpoint tensor (a tied head's is the embedding's). */
  readonly tensor: string;
  /** `sum (w - stored)^2 / sum w^2` over the whole tensor. */
  readonly relativeError: number;
}

/** How much storing an export's weights lost, per tensor and in short. */
export interface ReconstructionError {
  /** Each linear weight (the layers' and the head's), in the order written. */
  readonly linear: readonly TensorError[];
  /** Mean of the linear weights' relative errors. */
  readonly linearMean: number;
  /** The linear weight with the largest relative error. */
  readonly linearWorst: TensorError;
  /** The embedding table's relative error. */
  readonly embedding: number;
}

/** The summary of the linear weights' errors and the embedding table's. */
export function reconstructionError(
  linear: readonly TensorError[],
  embedding: number,
): ReconstructionError {
  if (linear.length === 0) throw new RangeError("Cannot summarize: no linear weights");
  const linearWorst = linear.reduce((a, b) => b.relativeError > a.relativeError ? b : a);
  const linearMean = linear.reduce((sum, t) => sum + t.relativeError, 0) / linear.length;
  return { linear, linearMean, linearWorst, embedding };
}

/** Two significant digits: enough to compare schemes, short enough for one line. */
function formatRatio(x: number): string {
  return x === 0 ? "0" : x.toPrecision(2);
}

/**
 * One line for people, e.g. `relative squared error: linear 0.0061 mean, 0.021 worst
 * (layers.0.feed_forward.w2.weight); embedding 0.0040`.
 */
export function formatReconstructionError(r: ReconstructionError): string {
  const { tensor, relativeError } = r.linearWorst;
  const linear = relativeError === 0
    ? "linear 0"
    : `linear ${formatRatio(r.linearMean)} mean, ${formatRatio(relativeError)} worst (${tensor}${
      tensor === EMBEDDING ? ", tied head" : ""
    })`;
  return `relative squared error: ${linear}; embedding ${formatRatio(r.embedding)}`;
}

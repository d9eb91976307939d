/**
 * One chunk of a weight's rows to quantize or palettize, as plain data that can go to a worker
 * thread (export/quantize_pool.ts), and the function that does it on whichever thread holds it.
 *
 * @module
 */

import type { FloatDType } from "../coreml/dtype.ts";
import { type PaletteBits, type PalettizedMatrix, palettizeMatrix } from "./palettize.ts";
import { type QuantBits, type QuantizedMatrix, quantizeMatrix } from "./quantize.ts";

/** Rows to quantize, as {@link quantizeMatrix} takes them. */
export interface QuantizeJob {
  readonly kind: "quantize";
  readonly weights: Float32Array;
  readonly rows: number;
  readonly columns: number;
  readonly bits: QuantBits;
  readonly groupSize: number;
  /** The scales' storage type. */
  readonly dtype: FloatDType;
  readonly asymmetric: boolean;
}

/** Rows to palettize, as {@link palettizeMatrix} takes them. */
export interface PalettizeJob {
  readonly kind: "palettize";
  readonly weights: Float32Array;
  readonly rows: number;
  readonly columns: number;
  readonly bits: PaletteBits;
  readonly groupRows: number;
  /** The palettes' storage type. */
  readonly dtype: FloatDType;
}

/** Either kind of chunk. */
export type ChunkJob = QuantizeJob | PalettizeJob;

/** What a job makes of its rows. */
export type ChunkMatrix<J extends ChunkJob> = J extends QuantizeJob ? QuantizedMatrix
  : PalettizedMatrix;

/** A job's result, with its rows handed back (a worker receives them and returns them). */
export interface ChunkResult<J extends ChunkJob> {
  readonly weights: Float32Array;
  readonly matrix: ChunkMatrix<J>;
}

/** Rounds a scale, a palette entry or a float weight to the float type it is stored in. */
export function storageRounding(dtype: FloatDType): (x: number) => number {
  return dtype === "fp16" ? Math.f16round : Math.fround;
}

/** Does `job` on this thread. */
export function runChunkJob<J extends ChunkJob>(job: J): ChunkResult<J> {
  const round = storageRounding(job.dtype);
  const matrix = job.kind === "quantize"
    ? quantizeMatrix(
      job.weights,
      job.rows,
      job.columns,
      job.bits,
      job.groupSize,
      round,
      job.asymmetric,
    )
    : palettizeMatrix(job.weights, job.rows, job.columns, job.bits, job.groupRows, round);
  return { weights: job.weights, matrix: matrix as ChunkMatrix<J> };
}

/** The buffers of a result, moved between threads rather than copied. */
export function resultBuffers(result: ChunkResult<ChunkJob>): ArrayBuffer[] {
  const { weights, matrix } = result;
  const arrays = "scales" in matrix
    ? [weights, matrix.values, matrix.scales, ...(matrix.offsets ? [matrix.offsets] : [])]
    : [weights, matrix.indices, matrix.palettes];
  return arrays.map((array) => array.buffer as ArrayBuffer);
}

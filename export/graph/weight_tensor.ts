/**
 * What every stored weight shares: float constants in the model's dtype, and how many rows a
 * quantizer reads at a time.
 *
 * @module
 */

import { float16Bits, type Tensor } from "../../coreml/tensor.ts";
import type { GraphEmitter } from "./emitter.ts";

/** A float matrix constant in the model's dtype. */
export function floatTensor(
  e: GraphEmitter,
  shape: readonly number[],
  values: Float32Array,
): Tensor {
  return e.dtype === "fp16"
    ? { dtype: "fp16", shape: [...shape], values: float16Bits(values) }
    : { dtype: "fp32", shape: [...shape], values };
}

/**
 * fp32 values read per step when quantizing. Small steps keep the working buffers small enough
 * for the allocator to reuse them: a fresh large buffer costs a page fault per 4 KiB, which took
 * about as long as reading, converting and quantizing the values it held.
 */
const VALUES_PER_READ = 2 ** 18;

/** Rows of a `[*, columns]` weight read per step when quantizing. */
export function rowsPerRead(columns: number, ropeHeadDim?: number): number {
  const rows = Math.max(1, Math.floor(VALUES_PER_READ / columns));
  // Reordered rows are read by whole heads: keep each step whole heads too.
  return ropeHeadDim === undefined ? rows : Math.max(ropeHeadDim, rows - (rows % ropeHeadDim));
}

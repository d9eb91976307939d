/**
 * Linear layers as the Neural Engine likes them: split along the output into equal parts
 * (export/split_linear.ts), each part's weight stored as the options ask (float, int4/int8
 * dequantized by `constexpr_blockwise_shift_scale`, or palettized), and the parts' outputs
 * concatenated.
 *
 * @module
 */

import { MIN_BLOB_ELEMENTS, type Var } from "../../coreml/builder.ts";
import {
  SYMMETRIC_BLOCK,
  type SymmetricBlockDType,
  unpackBlocks,
} from "../../checkpoint/blocks.ts";
import type { QuantBits, QuantizedMatrix } from "../quantize.ts";
import type { QuantizeJob } from "../chunk_job.ts";
import { processRowChunks } from "./row_chunks.ts";
import { splitCount } from "../split_linear.ts";
import { linearWeightChoice, type WeightStorage } from "../weight_storage.ts";
import { ErrorSums } from "../reconstruction_error.ts";
import { type ExportContext, scaleRounding } from "./context.ts";
import type { GraphEmitter } from "./emitter.ts";
import type { WeightRef } from "./weight_reader.ts";
import { emitPalettizedWeight, readPalettized } from "./palettized_weight.ts";
import { floatTensor, rowsPerRead } from "./weight_tensor.ts";

/** A float weight as a named constant in the model's dtype. */
export function emitFloatWeight(
  e: GraphEmitter,
  name: string,
  shape: readonly number[],
  values: Float32Array,
): Var {
  return e.fn.const(name, floatTensor(e, shape, values));
}

/** Quantized data, scales and offsets, dequantized by Core ML when the model loads. */
export function emitQuantizedWeight(e: GraphEmitter, name: string, q: QuantizedMatrix): Var {
  const dtype = q.bits === 4 ? "int4" : "int8";
  const groups = [q.rows, q.columns / q.groupSize];
  return e.op("constexpr_blockwise_shift_scale", {
    // The typed array is handed over as is: a table of a quarter billion values cannot go
    // through plain numbers.
    data: { dtype, shape: [q.rows, q.columns], values: q.values },
    scale: floatTensor(e, groups, q.scales),
    // Integer offsets take the data's dtype, as Core ML requires of them.
    ...(q.offsets && { offset: { dtype, shape: groups, values: q.offsets } }),
  }, name);
}

/**
 * Rows `[start, end)` of a `[*, columns]` weight, quantized, read and quantized a few rows at a
 * time. Groups never cross a row, so the result is the same as quantizing the rows at once. The
 * rows' error is added to `sums`.
 */
export async function readQuantized(
  ctx: ExportContext,
  weight: WeightRef,
  start: number,
  end: number,
  columns: number,
  bits: QuantBits,
  groupSize: number,
  sums: ErrorSums,
): Promise<QuantizedMatrix> {
  const rows = end - start;
  const step = rowsPerRead(columns, weight.ropeHeadDim);
  const values = new Int8Array(rows * columns);
  // A group size that does not divide the row is left for quantizeMatrix to report.
  const divides = groupSize > 0 && columns % groupSize === 0;
  const scales = new Float32Array(divides ? (rows * columns) / groupSize : 0);
  const { asymmetric } = ctx.options;
  const offsets = asymmetric ? new Int8Array(scales.length) : undefined;
  await processRowChunks<QuantizeJob>(
    ctx,
    weight,
    [start, end],
    step,
    {
      kind: "quantize",
      columns,
      bits,
      groupSize,
      dtype: ctx.options.dtype,
      asymmetric,
    },
    ({ weights, matrix: q }, row) => {
      sums.addQuantized(weights, q);
      values.set(q.values, (row - start) * columns);
      scales.set(q.scales, ((row - start) * columns) / groupSize);
      if (q.offsets) offsets!.set(q.offsets, ((row - start) * columns) / groupSize);
    },
  );
  return { bits, rows, columns, groupSize, values, scales, ...(offsets && { offsets }) };
}

/**
 * Rows `[start, end)` of a `[*, columns]` weight stored as Q8_0 or Q4_0, taken apart into the
 * integers and fp16 scales of its blocks of 32, a few rows at a time: nothing is requantized, and
 * the rows add no error to `sums`, only their values.
 */
export async function readKept(
  ctx: ExportContext,
  weight: WeightRef,
  start: number,
  end: number,
  columns: number,
  dtype: SymmetricBlockDType,
  sums: ErrorSums,
): Promise<QuantizedMatrix> {
  const rows = end - start;
  const step = rowsPerRead(columns, weight.ropeHeadDim);
  const values = new Int8Array(rows * columns);
  const scales = new Float32Array((rows * columns) / SYMMETRIC_BLOCK);
  for (let row = start; row < end; row += step) {
    const stop = Math.min(end, row + step);
    const blocks = unpackBlocks(dtype, (await ctx.weights.storedRows(weight, row, stop)).bytes);
    values.set(blocks.values, (row - start) * columns);
    scales.set(blocks.scales, ((row - start) * columns) / SYMMETRIC_BLOCK);
  }
  const bits = dtype === "Q8_0" ? 8 : 4;
  const kept: QuantizedMatrix = { bits, rows, columns, groupSize: SYMMETRIC_BLOCK, values, scales };
  sums.addExact(kept);
  return kept;
}

/**
 * Rows `[start, end)` of a `[*, columns]` weight, stored as `storage` says, their error added to
 * `sums`.
 */
export async function emitStoredWeight(
  e: GraphEmitter,
  ctx: ExportContext,
  weight: WeightRef,
  [start, end]: readonly [number, number],
  columns: number,
  storage: WeightStorage,
  name: string,
  sums: ErrorSums,
): Promise<Var> {
  switch (storage.kind) {
    case "float": {
      const values = await ctx.weights.rows(weight, start, end);
      sums.addFloat(values, scaleRounding(ctx.options));
      return emitFloatWeight(e, name, [end - start, columns], values);
    }
    case "kept":
      return emitQuantizedWeight(
        e,
        name,
        await readKept(ctx, weight, start, end, columns, storage.dtype, sums),
      );
    case "quantized": {
      const group = storage.groupSize === 0 ? columns : storage.groupSize;
      return emitQuantizedWeight(
        e,
        name,
        await readQuantized(ctx, weight, start, end, columns, storage.bits, group, sums),
      );
    }
    case "palettized":
      return emitPalettizedWeight(
        e,
        name,
        await readPalettized(
          ctx,
          weight,
          start,
          end,
          columns,
          storage.bits,
          storage.groupRows,
          sums,
        ),
      );
  }
}

/** Rows `[start, end)` of a `[*, columns]` linear weight, stored as the export options say. */
function emitLinearWeight(
  e: GraphEmitter,
  ctx: ExportContext,
  weight: WeightRef,
  start: number,
  end: number,
  columns: number,
  name: string,
  sums: ErrorSums,
): Promise<Var> {
  const choice = linearWeightChoice(ctx.options, weight.name, ctx.weights.storedType(weight.name));
  ctx.storageChosen(weight.name, choice);
  // A weight too small for weight.bin is written inline, where int4 saves nothing and which the
  // CPU backend reads as floats only.
  const storage: WeightStorage = (end - start) * columns < MIN_BLOB_ELEMENTS
    ? { kind: "float" }
    : choice.storage;
  return emitStoredWeight(e, ctx, weight, [start, end], columns, storage, name, sums);
}

/**
 * Emits `x @ W^T` for a checkpoint weight `[out, in]`, reading and writing one part at a time.
 *
 * @param name base name of the ops, e.g. `layers_0_wq`
 * @param outputName name of the result, when the function exposes it (e.g. `logits`)
 */
export async function emitLinear(
  e: GraphEmitter,
  ctx: ExportContext,
  x: Var,
  weight: WeightRef,
  name: string,
  outputName?: string,
): Promise<Var> {
  const outputs = await emitLinearParts(
    e,
    ctx,
    x,
    weight,
    name,
    (part, parts) => parts === 1 ? (outputName ?? name) : `${name}_part${part}`,
  );
  if (outputs.length === 1) return outputs[0]!;
  return e.op("concat", { values: outputs, axis: e.int(-1) }, outputName ?? `${name}_concat`);
}

/**
 * The parts of a split linear layer, each `[..., out / parts]`, not joined; `partName` names
 * part `part` of `parts`.
 */
export async function emitLinearParts(
  e: GraphEmitter,
  ctx: ExportContext,
  x: Var,
  weight: WeightRef,
  name: string,
  partName: (part: number, parts: number) => string,
): Promise<Var[]> {
  const [out, columns] = ctx.weights.matrixShape(weight.name);
  const parts = splitCount(weight.name, out, ctx.options.targetSplitSize, ctx.options.maxSplits);
  const rows = out / parts;
  // Core ML's linear takes a bias; coremltools always writes one, so do the same (all zeros).
  const bias = floatTensor(e, [rows], new Float32Array(rows));
  const outputs: Var[] = [];
  const sums = new ErrorSums();
  for (let part = 0; part < parts; part++) {
    const w = await emitLinearWeight(
      e,
      ctx,
      weight,
      part * rows,
      (part + 1) * rows,
      columns,
      `${name}_part${part}_weight`,
      sums,
    );
    outputs.push(e.op("linear", { x, weight: w, bias }, partName(part, parts)));
  }
  ctx.errorMeasured(weight.name, "linear", sums.relative);
  ctx.weightWritten(weight.name);
  return outputs;
}

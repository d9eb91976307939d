/**
 * Palettized weights in the graph: rows read a few groups at a time and palettized
 * (export/palettize.ts), stored as `constexpr_lut_to_dense` of uint4/uint6 indices and one
 * palette per group of rows.
 *
 * @module
 */

import type { Var } from "../../coreml/builder.ts";
import type { PaletteBits, PalettizedMatrix } from "../palettize.ts";
import type { PalettizeJob } from "../chunk_job.ts";
import type { ErrorSums } from "../reconstruction_error.ts";
import type { ExportContext } from "./context.ts";
import { processRowChunks } from "./row_chunks.ts";
import type { GraphEmitter } from "./emitter.ts";
import { floatTensor, rowsPerRead } from "./weight_tensor.ts";
import type { WeightRef } from "./weight_reader.ts";

/**
 * Rows `[start, end)` of a `[*, columns]` weight, palettized with one palette per `groupRows`
 * rows, read a few groups at a time. Palettes never span a read, so the result is the same as
 * palettizing the rows at once. The rows' error is added to `sums`.
 */
export async function readPalettized(
  ctx: ExportContext,
  weight: WeightRef,
  start: number,
  end: number,
  columns: number,
  bits: PaletteBits,
  groupRows: number,
  sums: ErrorSums,
): Promise<PalettizedMatrix> {
  const rows = end - start;
  const step = groupRows * Math.max(1, Math.floor(rowsPerRead(columns) / groupRows));
  const indices = new Uint8Array(rows * columns);
  const entries = 2 ** bits;
  const palettes = new Float32Array((rows / groupRows) * entries);
  await processRowChunks<PalettizeJob>(
    ctx,
    weight,
    [start, end],
    step,
    {
      kind: "palettize",
      columns,
      bits,
      groupRows,
      dtype: ctx.options.dtype,
    },
    ({ weights, matrix: p }, row) => {
      sums.addPalettized(weights, p);
      indices.set(p.indices, (row - start) * columns);
      palettes.set(p.palettes, ((row - start) / groupRows) * entries);
    },
  );
  return { bits, rows, columns, groupRows, indices, palettes };
}

/** Palette indices and palettes, expanded by Core ML when the model loads. */
export function emitPalettizedWeight(e: GraphEmitter, name: string, p: PalettizedMatrix): Var {
  const entries = 2 ** p.bits;
  return e.op("constexpr_lut_to_dense", {
    indices: {
      dtype: p.bits === 4 ? "uint4" : "uint6",
      shape: [p.rows, p.columns],
      values: p.indices,
    },
    // [groups of rows, 1 group of columns, entries, vector size 1]
    lut: floatTensor(e, [p.rows / p.groupRows, 1, entries, 1], p.palettes),
  }, name);
}

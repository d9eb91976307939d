/**
 * The token embedding: a gather from the `[V, D]` table, stored as the `-E` option says (float,
 * or int4/int8 with one scale per row or per group of a row).
 *
 * @module
 */

import type { Var } from "../coreml/builder.ts";
import { EMBEDDING } from "../../llama/weights.ts";
import { quantizeMatrix } from "../quantize.ts";
import { type ExportContext, scaleRounding } from "./context.ts";
import type { GraphEmitter } from "./emitter.ts";
import { emitFloatWeight, emitQuantizedWeight } from "./linear.ts";

/** Rows read per step, bounding the fp32 working set whatever the vocabulary size. */
const ROWS_PER_READ = 8192;

async function embeddingTable(e: GraphEmitter, ctx: ExportContext): Promise<Var> {
  const [vocab, dim] = ctx.weights.matrixShape(EMBEDDING);
  const scheme = ctx.options.embeddingQuantize;
  const read = (row: number) =>
    ctx.weights.rows({ name: EMBEDDING }, row, Math.min(vocab, row + ROWS_PER_READ));
  if (scheme === "none") {
    const values = new Float32Array(vocab * dim);
    for (let row = 0; row < vocab; row += ROWS_PER_READ) values.set(await read(row), row * dim);
    return emitFloatWeight(e, "embedding_table", [vocab, dim], values);
  }
  // Quantized chunk by chunk: groups never cross a row, so chunking by rows changes nothing.
  const groupSize = scheme.groupSize === 0 ? dim : scheme.groupSize;
  const values = new Int8Array(vocab * dim);
  const scales = new Float32Array((vocab * dim) / groupSize);
  for (let row = 0; row < vocab; row += ROWS_PER_READ) {
    const chunk = await read(row);
    const q = quantizeMatrix(
      chunk,
      chunk.length / dim,
      dim,
      scheme.bits,
      groupSize,
      scaleRounding(ctx.options),
    );
    values.set(q.values, row * dim);
    scales.set(q.scales, (row * dim) / groupSize);
  }
  return emitQuantizedWeight(e, "embedding_table", {
    bits: scheme.bits,
    rows: vocab,
    columns: dim,
    groupSize,
    values,
    scales,
  });
}

/** Emits `table[tokens]`: `[1, L]` int32 ids to the hidden state `[1, L, D]`. */
export async function emitEmbedding(
  e: GraphEmitter,
  ctx: ExportContext,
  tokens: Var,
  outputName: string,
): Promise<Var> {
  const table = await embeddingTable(e, ctx);
  ctx.weightWritten(EMBEDDING);
  return e.op("gather", {
    x: table,
    indices: tokens,
    axis: e.int(0),
    batch_dims: e.int(0),
    validate_indices: e.bool(false),
  }, outputName);
}

/**
 * The token embedding: a gather from the `[V, D]` table, stored as the `-E` option says (float,
 * int4/int8 with one scale per row or per group of a row, or a GGUF's own blocks).
 *
 * @module
 */

import type { Var } from "../../coreml/builder.ts";
import { EMBEDDING } from "../../llama/weights.ts";
import { type ExportContext, scaleRounding } from "./context.ts";
import type { GraphEmitter } from "./emitter.ts";
import { float16Bits } from "../../coreml/tensor.ts";
import { embeddingChoice } from "../weight_storage.ts";
import { emitStoredWeight } from "./linear.ts";
import { ErrorSums } from "../reconstruction_error.ts";

/** The constant's name in the program. */
const TABLE = "embedding_table";

/** Rows read per step of a float table, bounding the fp32 working set whatever the vocabulary. */
const ROWS_PER_READ = 8192;

/** The table, stored as the options say, its error added to `sums`. */
async function embeddingTable(e: GraphEmitter, ctx: ExportContext, sums: ErrorSums): Promise<Var> {
  const [vocab, dim] = ctx.weights.matrixShape(EMBEDDING);
  const choice = embeddingChoice(
    ctx.options.embeddingQuantize,
    ctx.weights.storedType(EMBEDDING),
    ctx.options.lutGroupSize,
  );
  ctx.storageChosen(EMBEDDING, choice);
  if (choice.storage.kind !== "float") {
    const { storage } = choice;
    return emitStoredWeight(e, ctx, { name: EMBEDDING }, [0, vocab], dim, storage, TABLE, sums);
  }
  // Each step is converted to the model's dtype as it is read: a whole fp32 copy beside the
  // fp16 table would take three times the table's size (3.2 GB for Llama 3.1 8B's).
  const fp16 = e.dtype === "fp16";
  const values = fp16 ? new Uint16Array(vocab * dim) : new Float32Array(vocab * dim);
  for (let row = 0; row < vocab; row += ROWS_PER_READ) {
    const end = Math.min(vocab, row + ROWS_PER_READ);
    const rows = await ctx.weights.rows({ name: EMBEDDING }, row, end);
    sums.addFloat(rows, scaleRounding(ctx.options));
    values.set(fp16 ? float16Bits(rows) : rows, row * dim);
  }
  const shape = [vocab, dim];
  return e.fn.const(
    TABLE,
    values instanceof Uint16Array
      ? { dtype: "fp16", shape, values }
      : { dtype: "fp32", shape, values },
  );
}

/** Emits `table[tokens]`: `[1, L]` int32 ids to the hidden state `[1, L, D]`. */
export async function emitEmbedding(
  e: GraphEmitter,
  ctx: ExportContext,
  tokens: Var,
  outputName: string,
): Promise<Var> {
  const sums = new ErrorSums();
  const table = await embeddingTable(e, ctx, sums);
  ctx.errorMeasured(EMBEDDING, "embedding", sums.relative);
  ctx.weightWritten(EMBEDDING);
  return e.op("gather", {
    x: table,
    indices: tokens,
    axis: e.int(0),
    batch_dims: e.int(0),
    validate_indices: e.bool(false),
  }, outputName);
}

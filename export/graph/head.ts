/**
 * The output head: final RMSNorm, then the (split, quantized) projection to the vocabulary. A tied
 * model projects with its embedding table.
 *
 * @module
 */

import type { Var } from "../../coreml/builder.ts";
import { LOGITS } from "../../bundle/io_names.ts";
import { EMBEDDING, FINAL_NORM, OUTPUT } from "../../llama/weights.ts";
import type { ExportContext } from "./context.ts";
import type { GraphEmitter } from "./emitter.ts";
import { emitLinear } from "./linear.ts";
import { emitRmsNorm } from "./norm.ts";

/** Emits logits `[1, L, V]` from the last hidden state, as the function output `logits`. */
export async function emitHead(e: GraphEmitter, ctx: ExportContext, hidden: Var): Promise<Var> {
  const normalized = await emitRmsNorm(e, ctx, hidden, FINAL_NORM, "final_norm");
  const weight = ctx.config.tiedOutput ? EMBEDDING : OUTPUT;
  const logits = await emitLinear(e, ctx, normalized, { name: weight }, "output", LOGITS);
  e.fn.output(logits);
  return logits;
}

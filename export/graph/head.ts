/**
 * The output head: final RMSNorm, then the (split, quantized) projection to the vocabulary. A tied
 * model projects with its embedding table.
 *
 * @module
 */

import type { Var } from "../../coreml/builder.ts";
import { LOGITS, logitsPart } from "../../bundle/io_names.ts";
import { EMBEDDING, FINAL_NORM, OUTPUT } from "../../llama/weights.ts";
import type { ExportContext } from "./context.ts";
import type { GraphEmitter } from "./emitter.ts";
import { emitLinear, emitLinearParts } from "./linear.ts";
import { emitRmsNorm } from "./norm.ts";

/**
 * Emits logits `[1, L, V]` from the last hidden state, as the function output `logits`, or, when
 * V is wider than one output may be, as the head's split parts `logits_0`, `logits_1`, ... along
 * the vocabulary (each part is the same linear it would be before the join).
 */
export async function emitHead(e: GraphEmitter, ctx: ExportContext, hidden: Var): Promise<void> {
  const normalized = await emitRmsNorm(e, ctx, hidden, FINAL_NORM, "final_norm");
  const weight = { name: ctx.config.tiedOutput ? EMBEDDING : OUTPUT };
  if (ctx.config.vocabSize <= ctx.options.maxLogitsAxis) {
    e.fn.output(await emitLinear(e, ctx, normalized, weight, "output", LOGITS));
    return;
  }
  for (const part of await emitLinearParts(e, ctx, normalized, weight, "output", logitsPart)) {
    e.fn.output(part);
  }
}

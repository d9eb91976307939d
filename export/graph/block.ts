/**
 * One transformer block: `h = x + attention(norm(x))`, `out = h + ffn(norm(h))`.
 *
 * @module
 */

import type { Var } from "../../coreml/builder.ts";
import { layerTensorNames } from "../../llama/weights.ts";
import { type AttentionInputs, emitAttention } from "./attention.ts";
import type { ExportContext } from "./context.ts";
import type { GraphEmitter } from "./emitter.ts";
import { emitFeedForward } from "./feed_forward.ts";
import { emitRmsNorm } from "./norm.ts";

/** Emits layer `layer` on the hidden state `x` `[1, L, D]`. */
export async function emitBlock(
  e: GraphEmitter,
  ctx: ExportContext,
  x: Var,
  layer: number,
  inputs: AttentionInputs,
  outputName?: string,
): Promise<Var> {
  const w = layerTensorNames(layer);
  const name = (step: string) => `layers_${layer}_${step}`;
  const attentionIn = await emitRmsNorm(e, ctx, x, w.attentionNorm, name("attention_norm"));
  const h = e.op(
    "add",
    { x, y: await emitAttention(e, ctx, attentionIn, layer, inputs) },
    name("attention_residual"),
  );
  const ffnIn = await emitRmsNorm(e, ctx, h, w.ffnNorm, name("ffn_norm"));
  return e.op(
    "add",
    { x: h, y: await emitFeedForward(e, ctx, ffnIn, layer) },
    outputName ?? name("out"),
  );
}

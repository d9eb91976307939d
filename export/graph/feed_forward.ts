/**
 * The SwiGLU feed-forward network: `w2(silu(w1 x) * w3 x)`.
 *
 * @module
 */

import type { Var } from "../../coreml/builder.ts";
import { layerTensorNames } from "../../llama/weights.ts";
import type { ExportContext } from "./context.ts";
import type { GraphEmitter } from "./emitter.ts";
import { emitLinear } from "./linear.ts";

/** Emits one layer's FFN on normalized `x` `[1, L, D]`. */
export async function emitFeedForward(
  e: GraphEmitter,
  ctx: ExportContext,
  x: Var,
  layer: number,
): Promise<Var> {
  const w = layerTensorNames(layer);
  const name = (step: string) => `layers_${layer}_${step}`;
  const gate = e.op(
    "silu",
    { x: await emitLinear(e, ctx, x, { name: w.w1 }, name("w1")) },
    name("gate"),
  );
  const up = await emitLinear(e, ctx, x, { name: w.w3 }, name("w3"));
  const hidden = e.op("mul", { x: gate, y: up }, name("swiglu"));
  return await emitLinear(e, ctx, hidden, { name: w.w2 }, name("w2"));
}

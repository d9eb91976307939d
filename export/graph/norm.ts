/**
 * RMSNorm in a form the Neural Engine computes without overflow. `mean(x^2)` in fp16 overflows
 * once |x| passes about 256, which real activations do. `layer_norm` over `[x, -x]` gives the same
 * result (the mean is exactly 0, so the variance is `mean(x^2)`), and Core ML's layer_norm kernel
 * does not overflow (docs/reference/static-llm.md section 8, after Anemll). The CPU backend
 * recognises the pattern and runs a plain RMSNorm.
 *
 * @module
 */

import type { Var } from "../../coreml/builder.ts";
import type { ExportContext } from "./context.ts";
import type { GraphEmitter } from "./emitter.ts";
import { floatTensor } from "./weight_tensor.ts";

/** `x * rsqrt(mean(x^2) + eps) * weight` over the last axis; `weight` is a checkpoint `[D]` tensor. */
export async function emitRmsNorm(
  e: GraphEmitter,
  ctx: ExportContext,
  x: Var,
  weight: string,
  name: string,
): Promise<Var> {
  const gain = await ctx.weights.all(weight);
  const negated = e.op("mul", { x, y: e.float(-1) }, `${name}_neg`);
  const mirrored = e.op("concat", { values: [x, negated], axis: e.int(-1) }, `${name}_mirror`);
  const normalized = e.op("layer_norm", {
    x: mirrored,
    axes: e.ints([-1]),
    epsilon: e.float(ctx.config.normEps),
  }, `${name}_layer_norm`);
  const [half] = e.multiOp("split", { x: normalized, axis: e.int(-1), num_splits: e.int(2) });
  const out = e.op("mul", { x: half!, y: floatTensor(e, [gain.length], gain) }, name);
  ctx.weightWritten(weight);
  return out;
}

/**
 * Static-cache attention, decomposed so that no tensor exceeds rank 4 and no K/V head is
 * repeated for grouped-query attention (docs/reference/static-llm.md section 2): query heads are
 * grouped `[Hkv, H/Hkv, L, hd]` against keys and values `[Hkv, 1, C+L, hd]`, and matmul
 * broadcasting does the sharing. The matmul-softmax-matmul form also avoids the fused SDPA op's
 * fp16 accuracy bug on iOS 26.
 *
 * @module
 */

import type { Var } from "../../coreml/builder.ts";
import { kNew, vNew } from "../../bundle/io_names.ts";
import { layerTensorNames } from "../../llama/weights.ts";
import type { ExportContext } from "./context.ts";
import type { GraphEmitter } from "./emitter.ts";
import { emitLinear } from "./linear.ts";
import { emitRope, type RopeTables } from "./rope.ts";

/** The function inputs attention reads. */
export interface AttentionInputs {
  /** `[1, L, C+L]` additive mask shared by every layer. */
  readonly mask: Var;
  readonly rope: RopeTables;
  /** This layer's caches, `[1, Hkv, C, hd]`. */
  readonly kCache: Var;
  readonly vCache: Var;
}

/**
 * Emits one layer's attention on normalized `x` `[1, L, D]` and returns `wo(attention)` `[1, L, D]`.
 * The layer's new keys and values `[1, Hkv, L, hd]` become function outputs `k_new_<i>`, `v_new_<i>`.
 */
export async function emitAttention(
  e: GraphEmitter,
  ctx: ExportContext,
  x: Var,
  layer: number,
  inputs: AttentionInputs,
): Promise<Var> {
  const { nHeads, nKvHeads, headDim } = ctx.config;
  const groups = nHeads / nKvHeads;
  const w = layerTensorNames(layer);
  const name = (step: string) => `layers_${layer}_${step}`;

  // q, k, v projections; wq and wk rows reordered for half-split RoPE.
  const q = await emitLinear(e, ctx, x, { name: w.wq, ropeHeadDim: headDim }, name("wq"));
  const k = await emitLinear(e, ctx, x, { name: w.wk, ropeHeadDim: headDim }, name("wk"));
  const v = await emitLinear(e, ctx, x, { name: w.wv }, name("wv"));

  // Heads apart and rotated: [1, L, heads, hd].
  const heads = (t: Var, count: number, step: string) =>
    e.op("reshape", { x: t, shape: e.ints([1, -1, count, headDim]) }, name(step));
  const qRotated = emitRope(e, heads(q, nHeads, "q_heads"), inputs.rope, name("q_rope"));
  const kRotated = emitRope(e, heads(k, nKvHeads, "k_heads"), inputs.rope, name("k_rope"));

  // The call's new cache entries, [1, Hkv, L, hd], are outputs: the runtime owns the caches.
  const headsFirst = e.ints([0, 2, 1, 3]);
  const kNewValue = e.op("transpose", { x: kRotated, perm: headsFirst }, kNew(layer));
  const vNewValue = e.op(
    "transpose",
    { x: heads(v, nKvHeads, "v_heads"), perm: headsFirst },
    vNew(layer),
  );
  e.fn.output(kNewValue, vNewValue);

  // Keys and values over cache then call, [Hkv, 1, C+L, hd].
  const all = (cache: Var, fresh: Var, step: string) => {
    const joined = e.op("concat", { values: [cache, fresh], axis: e.int(2) }, name(`${step}_all`));
    return e.op(
      "reshape",
      { x: joined, shape: e.ints([nKvHeads, 1, -1, headDim]) },
      name(`${step}_grouped`),
    );
  };
  const keys = all(inputs.kCache, kNewValue, "k");
  const values = all(inputs.vCache, vNewValue, "v");

  // Queries grouped by their KV head and pre-scaled: [Hkv, H/Hkv, L, hd].
  const qByPosition = e.op("reshape", {
    x: qRotated,
    shape: e.ints([-1, nKvHeads, groups, headDim]),
  }, name("q_grouped"));
  const qGrouped = e.op(
    "transpose",
    { x: qByPosition, perm: e.ints([1, 2, 0, 3]) },
    name("q_heads_first"),
  );
  const qScaled = e.op(
    "mul",
    { x: qGrouped, y: e.float(1 / Math.sqrt(headDim)) },
    name("q_scaled"),
  );

  // softmax(q K^T / sqrt(hd) + mask) V: [Hkv, H/Hkv, L, hd]
  const scores = e.op("matmul", {
    x: qScaled,
    y: keys,
    transpose_x: e.bool(false),
    transpose_y: e.bool(true),
  }, name("scores"));
  const masked = e.op("add", { x: scores, y: inputs.mask }, name("masked_scores"));
  const weights = e.op("softmax", { x: masked, axis: e.int(-1) }, name("attention_weights"));
  const attended = e.op("matmul", {
    x: weights,
    y: values,
    transpose_x: e.bool(false),
    transpose_y: e.bool(false),
  }, name("attended"));

  // Back to [1, L, H * hd] and through wo.
  const byPosition = e.op(
    "transpose",
    { x: attended, perm: e.ints([2, 0, 1, 3]) },
    name("attended_by_position"),
  );
  const merged = e.op(
    "reshape",
    { x: byPosition, shape: e.ints([1, -1, nHeads * headDim]) },
    name("attended_merged"),
  );
  return await emitLinear(e, ctx, merged, { name: w.wo }, name("wo"));
}

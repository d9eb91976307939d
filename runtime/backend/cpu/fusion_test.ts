/**
 * Each matcher of fusion.ts on small programs written by the exporter's own graph code: it finds
 * the pattern the exporter writes, and leaves it alone when an intermediate value has another
 * reader, an axis or a constant differs, or shapes do not fit.
 */

import assert from "node:assert/strict";
import type { Var } from "../../../coreml/builder.ts";
import { emitAttention } from "../../../export/graph/attention.ts";
import { emitFeedForward } from "../../../export/graph/feed_forward.ts";
import { emitFloatWeight, emitLinear } from "../../../export/graph/linear.ts";
import { emitRmsNorm } from "../../../export/graph/norm.ts";
import { emitRope, emitRopeTables } from "../../../export/graph/rope.ts";
import type { GraphEmitter } from "../../../export/graph/emitter.ts";
import { layerTensorNames } from "../../../llama/weights.ts";
import {
  emitProgram,
  type ProgramSpec,
  SMALL_CONFIG,
  smallCheckpoint,
  type SmallProgram,
  waves,
} from "../../../testing/small_program.ts";
import { findFusions, type Fusion } from "./fusion.ts";
import { typeProgram } from "./plan.ts";

const { dim, nHeads, nKvHeads, headDim, hiddenDim } = SMALL_CONFIG;
const L = 3;
const CACHE = 5;
const f32 = (...shape: number[]) => ({ dtype: "fp32" as const, shape });
const tensors = smallCheckpoint();
const w = layerTensorNames(0);

/** The fusions found in `program`, with `extraOutputs` made function outputs too. */
function fusionsOf(program: SmallProgram, extraOutputs: readonly string[] = []): Fusion[] {
  const { graph } = typeProgram(program.fn, L, L, [...program.outputs, ...extraOutputs]);
  return findFusions(graph).map((placed) => placed.fusion);
}

const only = async (spec: ProgramSpec) => await emitProgram({ tensors, ...spec });

/** Ops of `program` by name. */
const opNamed = (program: SmallProgram, name: string) =>
  program.fn.block.operations.find((op) => op.name === name)!;

Deno.test("the RMSNorm matcher finds the exporter's overflow-safe norm", async () => {
  const program = await only({
    inputs: { x: f32(1, L, dim) },
    body: async (e, ctx, { x }) => [await emitRmsNorm(e, ctx, x!, w.attentionNorm, "norm")],
  });
  const gain = opNamed(program, "norm").inputs.get("y")![0];
  assert.deepEqual(fusionsOf(program), [
    { op: "rms_norm", x: "x", gain, eps: Math.fround(SMALL_CONFIG.normEps), out: "norm" },
  ]);
  // A reader of any intermediate value, or of the discarded half, keeps it apart.
  const split = program.fn.block.operations.find((op) => op.type === "split")!;
  for (
    const value of [
      "norm_neg",
      "norm_mirror",
      "norm_layer_norm",
      ...split.outputs.map((o) => o.name),
    ]
  ) {
    assert.deepEqual(fusionsOf(program, [value]), [], value);
  }
});

Deno.test("the RMSNorm matcher wants x mirrored by -1 along the last axis", async () => {
  const mirrored = (scale: number, axis: number) =>
    only({
      inputs: { x: f32(1, L, dim) },
      body: (e, _, { x }) => {
        const neg = e.op("mul", { x: x!, y: e.float(scale) });
        const both = e.op("concat", { values: [x!, neg], axis: e.int(axis) });
        const norm = e.op("layer_norm", { x: both, axes: e.ints([-1]), epsilon: e.float(1e-5) });
        const [half] = e.multiOp("split", { x: norm, axis: e.int(axis), num_splits: e.int(2) });
        const gain = emitFloatWeight(e, "gain", [dim], waves(dim));
        return [e.op("mul", { x: half!, y: gain }, "out")];
      },
    });
  assert.equal(fusionsOf(await mirrored(-1, -1))[0]?.op, "rms_norm");
  assert.deepEqual(fusionsOf(await mirrored(-2, -1)), []);
  assert.deepEqual(fusionsOf(await mirrored(-1, 1)), []);
});

Deno.test("the RoPE matcher finds the half-split rotation", async () => {
  const program = await only({
    inputs: { x: f32(1, L, nHeads, headDim), cos: f32(L, headDim / 2), sin: f32(L, headDim / 2) },
    body: (e, _, { x, cos, sin }) => [
      e.op("add", { x: emitRope(e, x!, emitRopeTables(e, cos!, sin!), "rope"), y: x! }, "out"),
    ],
  });
  assert.deepEqual(fusionsOf(program), [
    { op: "rope", x: "x", cos: "rope_cos", sin: "rope_sin", out: "rope" },
  ]);
  for (const suffix of ["", "_x1cos", "_x2sin", "_x2cos", "_x1sin", "_first", "_second"]) {
    assert.deepEqual(fusionsOf(program, [`rope${suffix}`]), [], suffix);
  }
  // Tables that are not [1, L, 1, D / 2] (here: one per head) are not the exporter's RoPE.
  const perHead = await only({
    inputs: { x: f32(1, L, nHeads, headDim), cos: f32(1, L, nHeads, headDim / 2) },
    body: (e, _, { x, cos }) => [
      e.op("add", { x: emitRope(e, x!, { cos: cos!, sin: cos! }, "rope"), y: x! }, "out"),
    ],
  });
  assert.deepEqual(fusionsOf(perHead), []);
});

Deno.test("the SwiGLU matcher finds silu(gate) * up and linears sharing an input", async () => {
  const program = await only({
    inputs: { x: f32(1, L, dim) },
    body: async (e, ctx, { x }) => [await emitFeedForward(e, ctx, x!, 0)],
  });
  const weight = (name: string) => opNamed(program, name).inputs.get("weight")![0];
  const bias = (name: string) => opNamed(program, name).inputs.get("bias")![0];
  const part = (name: string) => ({ weight: weight(name), bias: bias(name) });
  assert.deepEqual(fusionsOf(program), [
    {
      op: "fused_linear",
      x: "x",
      parts: [part("layers_0_w1"), part("layers_0_w3")],
      outs: ["layers_0_w1", "layers_0_w3"],
    },
    { op: "silu_mul", gate: "layers_0_w1", up: "layers_0_w3", out: "layers_0_swiglu" },
  ]);
  // The activation read elsewhere stays a silu step; the linears still share their input.
  assert.deepEqual(fusionsOf(program, ["layers_0_gate"]).map((f) => f.op), ["fused_linear"]);
  // A broadcast product is not SwiGLU.
  const broadcast = await only({
    inputs: { a: f32(1, L, hiddenDim), b: f32(hiddenDim) },
    body: (e, _, { a, b }) => [e.op("mul", { x: e.op("silu", { x: a! }), y: b! }, "out")],
  });
  assert.deepEqual(fusionsOf(broadcast), []);
});

Deno.test("the linear matcher joins a split layer's pieces and groups by weight format", async () => {
  const split = await only({
    inputs: { x: f32(1, L, dim) },
    options: { targetSplitSize: hiddenDim / 2 },
    body: async (e, ctx, { x }) => [await emitLinear(e, ctx, x!, { name: w.w1 }, "w1")],
  });
  const [fusion] = fusionsOf(split);
  assert.ok(fusion?.op === "fused_linear");
  assert.equal(fusion.parts.length, 2);
  assert.deepEqual(fusion.outs, ["w1_concat"]);
  // Concatenated along another axis, the pieces are two outputs and the concat stays.
  const across = await only({
    inputs: { x: f32(1, L, dim) },
    body: (e, _, { x }) => {
      const piece = (k: number) =>
        e.op("linear", { x: x!, weight: emitFloatWeight(e, `w${k}`, [4, dim], waves(4 * dim, k)) });
      return [e.op("concat", { values: [piece(0), piece(1)], axis: e.int(1) }, "out")];
    },
  });
  const [grouped] = fusionsOf(across);
  assert.ok(grouped?.op === "fused_linear");
  assert.equal(grouped.outs.length, 2);
  // One linear alone, or linears of different weight formats, are not fused.
  const mixed = await only({
    inputs: { x: f32(1, L, dim) },
    options: { linearQuantize: "c8w" },
    body: async (e, ctx, { x }) => [
      await emitLinear(e, ctx, x!, { name: w.w1 }, "quantized"),
      e.op("linear", { x: x!, weight: emitFloatWeight(e, "dense", [4, dim], waves(4 * dim)) }),
    ],
  });
  assert.deepEqual(fusionsOf(mixed), []);
});

/** One layer's attention as the exporter writes it, with its projections. */
function attentionProgram(): Promise<SmallProgram> {
  return only({
    inputs: {
      x: f32(1, L, dim),
      mask: f32(1, L, CACHE + L),
      cos: f32(L, headDim / 2),
      sin: f32(L, headDim / 2),
      k_cache: f32(1, nKvHeads, CACHE, headDim),
      v_cache: f32(1, nKvHeads, CACHE, headDim),
    },
    body: async (e: GraphEmitter, ctx, { x, mask, cos, sin, k_cache, v_cache }): Promise<Var[]> => [
      await emitAttention(e, ctx, x!, 0, {
        mask: mask!,
        rope: emitRopeTables(e, cos!, sin!),
        kCache: k_cache!,
        vCache: v_cache!,
      }),
    ],
  });
}

Deno.test("the attention matcher reads the cache and the new entries where they lie", async () => {
  const program = await attentionProgram();
  const attention = fusionsOf(program).find((f) => f.op === "attention");
  assert.deepEqual(attention, {
    op: "attention",
    q: "layers_0_q_rope",
    keys: ["k_cache", "k_new_0"],
    values: ["v_cache", "v_new_0"],
    mask: "mask",
    scale: Math.fround(1 / Math.sqrt(headDim)),
    out: "layers_0_attended_by_position",
  });
  const ops = fusionsOf(program).map((f) => f.op).sort();
  assert.deepEqual(ops, ["attention", "fused_linear", "rope", "rope"]);
  for (
    const step of [
      "q_grouped",
      "q_heads_first",
      "q_scaled",
      "scores",
      "masked_scores",
      "attention_weights",
      "attended",
      "k_all",
      "v_grouped",
    ]
  ) {
    const kept = fusionsOf(program, [`layers_0_${step}`]).map((f) => f.op);
    assert.ok(!kept.includes("attention"), step);
  }
});

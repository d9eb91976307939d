/**
 * The steps each op type and each fused pattern lowers to, on one-op programs (and the exporter's
 * own patterns): operands bound to the right tensors, parameters as ffi/cpu/PLAN.md spells them
 * (axes made non-negative, defaults filled in), results in the caller's buffers or the arena.
 */

import assert from "node:assert/strict";
import type { Var } from "../../../coreml/builder.ts";
import type { ExportContext } from "../../../export/graph/context.ts";
import type { GraphEmitter } from "../../../export/graph/emitter.ts";
import { emitFeedForward } from "../../../export/graph/feed_forward.ts";
import { emitFloatWeight, emitQuantizedWeight } from "../../../export/graph/linear.ts";
import { emitRmsNorm } from "../../../export/graph/norm.ts";
import { emitRope, emitRopeTables } from "../../../export/graph/rope.ts";
import { quantizeMatrix } from "../../../export/quantize.ts";
import type { TensorType } from "../../../coreml/tensor.ts";
import { layerTensorNames } from "../../../llama/weights.ts";
import {
  emitProgram,
  SMALL_CONFIG,
  smallCheckpoint,
  waves,
} from "../../../testing/small_program.ts";
import { PlanError } from "./builder.ts";
import type { Plan, PlanStep } from "./format.ts";
import { planFunction } from "./plan.ts";

const L = 3;
const f32 = (...shape: number[]): TensorType => ({ dtype: "fp32", shape });

/** Plans a function of `inputs` whose outputs are what `body` returns. */
async function plan(
  inputs: Record<string, TensorType>,
  body: (
    e: GraphEmitter,
    vars: Readonly<Record<string, Var>>,
    ctx: ExportContext,
  ) => Var[] | Promise<Var[]>,
): Promise<Plan> {
  const program = await emitProgram({
    inputs,
    tensors: smallCheckpoint(),
    body: (e, ctx, vars) => body(e, vars, ctx),
  });
  return planFunction(program.fn, L, L, program.outputs);
}

/** The one step of `plan` (apart from steps of other ops). */
function stepOf<Op extends PlanStep["op"]>(p: Plan, op: Op): Extract<PlanStep, { op: Op }> {
  const steps = p.steps.filter((s) => s.op === op);
  assert.equal(steps.length, 1, `${op} steps in ${JSON.stringify(p.steps)}`);
  return steps[0] as Extract<PlanStep, { op: Op }>;
}

/** The tensor of output `k` of a plan. */
const output = (p: Plan, k = 0) => p.outputs[k]!;

Deno.test("element-wise ops lower to binary and unary steps", async () => {
  for (
    const [type, kind] of [["add", "add"], ["sub", "sub"], ["mul", "mul"], ["real_div", "div"]]
  ) {
    const p = await plan(
      { x: f32(L, 4), y: f32(4) },
      (e, { x, y }) => [e.op(type!, { x: x!, y: y! })],
    );
    assert.deepEqual(stepOf(p, "binary"), { op: "binary", kind, a: 0, b: 1, out: output(p) });
  }
  for (const type of ["silu", "sigmoid", "rsqrt"] as const) {
    const p = await plan({ x: f32(L, 4) }, (e, { x }) => [e.op(type, { x: x! })]);
    const eps = type === "rsqrt" ? 1e-12 : 0;
    assert.deepEqual(stepOf(p, "unary"), { op: "unary", kind: type, eps, x: 0, out: output(p) });
  }
  const p = await plan(
    { x: f32(L, 4) },
    (e, { x }) => [e.op("rsqrt", { x: x!, epsilon: e.float(0.5) })],
  );
  assert.equal(stepOf(p, "unary").eps, 0.5);
});

Deno.test("normalizations and softmax lower over the last axis only", async () => {
  const softmax = await plan(
    { x: f32(1, L, 4) },
    (e, { x }) => [e.op("softmax", { x: x!, axis: e.int(2) })],
  );
  assert.deepEqual(stepOf(softmax, "softmax"), { op: "softmax", x: 0, out: output(softmax) });
  await assert.rejects(
    plan({ x: f32(1, L, 4) }, (e, { x }) => [e.op("softmax", { x: x!, axis: e.int(1) })]),
    (error) => error instanceof PlanError && /softmax over axis 1/.test(error.message),
  );
  const norm = await plan({ x: f32(1, L, 16) }, (e, { x }) => [
    e.op("layer_norm", {
      x: x!,
      axes: e.ints([-1]),
      gamma: emitFloatWeight(e, "gamma", [16], waves(16)),
      beta: emitFloatWeight(e, "beta", [16], waves(16, 1)),
      epsilon: e.float(0.25),
    }),
  ]);
  const step = stepOf(norm, "layer_norm");
  assert.deepEqual([step.x, step.eps, step.out], [0, 0.25, output(norm)]);
  assert.deepEqual(
    [step.gamma!, step.beta!].map((id) => norm.tensors[id]!.storage.kind),
    ["weight", "weight"],
  );
  await assert.rejects(
    plan({ x: f32(1, L, 4) }, (e, { x }) => [e.op("layer_norm", { x: x!, axes: e.ints([1]) })]),
    /normalizes axes \[1\], not the last/,
  );
});

Deno.test("data movement lowers with non-negative axes", async () => {
  const matmul = await plan({ a: f32(2, L, 4), b: f32(2, 5, 4) }, (e, { a, b }) => [
    e.op("matmul", { x: a!, y: b!, transpose_x: e.bool(false), transpose_y: e.bool(true) }),
  ]);
  assert.deepEqual(stepOf(matmul, "matmul"), {
    op: "matmul",
    a: 0,
    b: 1,
    transposeA: false,
    transposeB: true,
    out: output(matmul),
  });
  const transpose = await plan(
    { x: f32(2, L, 4) },
    (e, { x }) => [e.op("transpose", { x: x!, perm: e.ints([2, 0, 1]) })],
  );
  assert.deepEqual(stepOf(transpose, "transpose").perm, [2, 0, 1]);
  const concat = await plan(
    { a: f32(1, L, 4), b: f32(1, L, 2) },
    (e, { a, b }) => [e.op("concat", { values: [a!, b!], axis: e.int(-1) })],
  );
  assert.deepEqual(stepOf(concat, "concat"), {
    op: "concat",
    inputs: [0, 1],
    axis: 2,
    out: output(concat),
  });
  const split = await plan(
    { x: f32(1, L, 4) },
    (e, { x }) => e.multiOp("split", { x: x!, axis: e.int(-1), num_splits: e.int(2) }),
  );
  assert.deepEqual(stepOf(split, "split"), {
    op: "split",
    x: 0,
    axis: 2,
    outs: [output(split, 0), output(split, 1)],
  });
  const mean = await plan(
    { x: f32(1, L, 4) },
    (e, { x }) => [e.op("reduce_mean", { x: x!, axes: e.ints([-1]), keep_dims: e.bool(true) })],
  );
  assert.deepEqual(stepOf(mean, "reduce_mean").axes, [2]);
  const cast = await plan(
    { x: f32(L, 4) },
    (
      e,
      { x },
    ) => [e.op("cast", { x: x!, dtype: { dtype: "string", shape: [], values: ["fp16"] } })],
  );
  assert.deepEqual(stepOf(cast, "cast"), { op: "cast", x: 0, out: output(cast) });
  assert.equal(cast.tensors[output(cast)]!.dtype, "f16");
});

Deno.test("reshapes are views of their input, or copies when they are outputs", async () => {
  for (const type of ["reshape", "expand_dims", "squeeze"] as const) {
    const reshaped = (e: GraphEmitter, x: Var) =>
      type === "reshape"
        ? e.op(type, { x, shape: e.ints([L, 4]) })
        : type === "expand_dims"
        ? e.op(type, { x, axes: e.ints([0]) })
        : e.op(type, { x, axes: e.ints([0]) });
    const copied = await plan({ x: f32(1, L, 4) }, (e, { x }) => [reshaped(e, x!)]);
    assert.deepEqual(copied.steps, [{ op: "copy", x: 0, out: output(copied) }], type);
    const viewed = await plan(
      { x: f32(1, L, 4) },
      (e, { x }) => [e.op("sigmoid", { x: reshaped(e, x!) })],
    );
    const { x } = stepOf(viewed, "unary");
    assert.notEqual(x, 0, type);
    assert.deepEqual(viewed.tensors[x]!.storage, { kind: "input", index: 0 }, type);
    assert.equal(viewed.steps.length, 1, type);
  }
});

Deno.test("linears and gathers read quantized weights packed", async () => {
  const q = quantizeMatrix(waves(6 * 16), 6, 16, 4, 16, Math.fround);
  const linear = await plan({ x: f32(1, L, 16) }, (e, { x }) => [
    e.op("linear", {
      x: x!,
      weight: emitQuantizedWeight(e, "w", q),
      bias: emitFloatWeight(e, "bias", [6], waves(6)),
    }),
  ]);
  const step = stepOf(linear, "linear");
  assert.deepEqual([step.x, step.weight.group, step.out], [0, 16, output(linear)]);
  assert.equal(linear.tensors[step.weight.data]!.dtype, "i4");
  assert.deepEqual(linear.tensors[step.weight.scale!]!.shape, [6, 1]);
  assert.deepEqual(linear.tensors[step.bias!]!.shape, [6]);
  const gather = await plan({ ids: { dtype: "int32", shape: [1, L] } }, (e, { ids }) => [
    e.op("gather", { x: emitQuantizedWeight(e, "table", q), indices: ids!, axis: e.int(0) }),
  ]);
  const table = stepOf(gather, "gather");
  assert.deepEqual([table.indices, table.out, table.table.group], [0, output(gather), 16]);
  assert.equal(gather.tensors[table.table.data]!.dtype, "i4");
  await assert.rejects(
    plan({ ids: { dtype: "int32", shape: [1, L] } }, (e, { ids }) => [
      e.op("gather", { x: emitQuantizedWeight(e, "table", q), indices: ids!, axis: e.int(1) }),
    ]),
    /gathers along an axis other than 0/,
  );
});

Deno.test("quantized weights with offsets carry them into the plan", async () => {
  const q = quantizeMatrix(waves(6 * 32).map((x) => x + 0.3), 6, 32, 4, 16, Math.fround, true);
  assert.ok(q.offsets!.some((o) => o !== 0));
  const linear = await plan({ x: f32(1, L, 32) }, (e, { x }) => [
    e.op("linear", {
      x: x!,
      weight: emitQuantizedWeight(e, "w", q),
      bias: emitFloatWeight(e, "bias", [6], waves(6)),
    }),
  ]);
  const { weight } = stepOf(linear, "linear");
  assert.equal(weight.group, 16);
  assert.equal(linear.tensors[weight.offset!]!.dtype, "i4");
  assert.deepEqual(linear.tensors[weight.offset!]!.shape, [6, 2]);
  const gather = await plan({ ids: { dtype: "int32", shape: [1, L] } }, (e, { ids }) => [
    e.op("gather", { x: emitQuantizedWeight(e, "table", q), indices: ids!, axis: e.int(0) }),
  ]);
  assert.notEqual(stepOf(gather, "gather").table.offset, undefined);
});

Deno.test("a quantized weight read whole is dequantized once, and lives until it is read", async () => {
  const q = quantizeMatrix(waves(6 * 16), 6, 16, 8, 16, Math.fround);
  const p = await plan({ x: f32(6, 16) }, (e, { x }) => {
    const sum = e.op("add", { x: x!, y: emitQuantizedWeight(e, "w", q) });
    return [e.op("mul", { x: sum, y: sum })];
  });
  assert.deepEqual(p.steps.map((s) => s.op), ["dequantize", "binary", "binary"]);
  const [dequantize, add] = p.steps as [
    Extract<PlanStep, { op: "dequantize" }>,
    Extract<PlanStep, { op: "binary" }>,
  ];
  assert.equal(add.b, dequantize.out);
  // The add reads the dense weight while it writes its sum: they cannot share bytes.
  const offset = (id: number) => (p.tensors[id]!.storage as { offset: number }).offset;
  assert.notEqual(offset(dequantize.out), offset(add.out));
});

const { nHeads, headDim, dim } = SMALL_CONFIG;

Deno.test("fused patterns lower to one step each, in the step's shapes", async () => {
  const w = layerTensorNames(0);
  const inputs = { x: f32(1, L, dim), cos: f32(L, headDim / 2), sin: f32(L, headDim / 2) };
  const p = await plan(inputs, async (e, { x, cos, sin }, ctx) => {
    const normed = await emitRmsNorm(e, ctx, x!, w.attentionNorm, "norm");
    const heads = e.op("reshape", { x: normed, shape: e.ints([1, -1, nHeads, headDim]) });
    const rotated = emitRope(e, heads, emitRopeTables(e, cos!, sin!), "rope");
    const flat = e.op("reshape", { x: rotated, shape: e.ints([1, -1, dim]) });
    return [await emitFeedForward(e, ctx, flat, 0)];
  });
  assert.deepEqual(p.steps.map((s) => s.op), [
    "rms_norm",
    "rope",
    "fused_linear",
    "silu_mul",
    "linear",
  ]);
  const shape = (id: number) => p.tensors[id]!.shape;
  const storage = (id: number) => p.tensors[id]!.storage;
  const norm = stepOf(p, "rms_norm");
  assert.deepEqual([norm.x, norm.eps, shape(norm.gain)], [0, Math.fround(1e-5), [dim]]);
  assert.deepEqual(shape(norm.out), [1, L, dim]);
  // RoPE rotates [L, H, D] views of the normalized rows, by [L, D / 2] views of the inputs.
  const rope = stepOf(p, "rope");
  assert.deepEqual([shape(rope.x), shape(rope.out)], [[L, nHeads, headDim], [L, nHeads, headDim]]);
  assert.deepEqual(storage(rope.x), storage(norm.out));
  assert.deepEqual([shape(rope.cos), shape(rope.sin)], [[L, headDim / 2], [L, headDim / 2]]);
  assert.deepEqual([storage(rope.cos), storage(rope.sin)], [
    { kind: "input", index: 1 },
    { kind: "input", index: 2 },
  ]);
  // w1 and w3 in one step reading the rotated rows as [1, L, D]; SwiGLU then w2 into the output.
  const linears = stepOf(p, "fused_linear");
  assert.deepEqual(shape(linears.x), [1, L, dim]);
  assert.deepEqual(storage(linears.x), storage(rope.out));
  assert.equal(linears.parts.length, 2);
  assert.ok(linears.parts.every((part) => part.bias !== undefined));
  const swiglu = stepOf(p, "silu_mul");
  assert.deepEqual([swiglu.gate, swiglu.up], linears.outs);
  assert.deepEqual(stepOf(p, "linear").x, swiglu.out);
  assert.equal(stepOf(p, "linear").out, output(p));
});

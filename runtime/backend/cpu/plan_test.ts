import assert from "node:assert/strict";
import { planFunction } from "./plan.ts";
import { PlanError } from "./builder.ts";
import type { Plan } from "./format.ts";
import { exportTinyBundle } from "../../../testing/tiny_bundle.ts";
import { readPackage } from "../../../coreml/package.ts";
import type { MilFunction, Value } from "../../../coreml/mil.ts";
import { elementCount } from "../../../shape.ts";
import { TINY_PARAMS } from "../../../testing/tiny_llama.ts";

const bundle = await exportTinyBundle({ inputLen: 8, maxContextLen: 40 });

function load(piece: string): { fn: MilFunction; outputs: string[] } {
  const { model } = readPackage(`${bundle}/${piece}.mlpackage`);
  return {
    fn: model.program.functions.get("main")!,
    outputs: model.description.outputs.map((o) => o.name),
  };
}

function counts(plan: Plan): Record<string, number> {
  const result: Record<string, number> = {};
  for (const step of plan.steps) result[step.op] = (result[step.op] ?? 0) + 1;
  return result;
}

Deno.test("planFunction() fuses the exporter's RMSNorm and quantized linears", () => {
  const { fn, outputs } = load("blocks");
  const plan = planFunction(fn, 8, 8, outputs);
  const ops = counts(plan);
  assert.equal(ops.rms_norm, 2 * TINY_PARAMS.n_layers);
  assert.equal(ops.layer_norm, undefined);
  assert.equal(ops.dequantize, undefined);
  const linear = plan.steps.find((s) => s.op === "linear")!;
  assert.ok(
    linear.op === "linear" && linear.weight.scale !== undefined &&
      linear.weight.group === TINY_PARAMS.dim,
  );
  assert.equal(plan.tensors[linear.weight.data]!.dtype, "i4");
});

Deno.test("planFunction() fuses linears sharing an input, attention, RoPE and SwiGLU", () => {
  const { fn, outputs } = load("blocks");
  const layers = TINY_PARAMS.n_layers;
  for (const length of [8, 1]) {
    const plan = planFunction(fn, 8, length, outputs);
    const ops = counts(plan);
    // Per layer: q/k/v in one step, w1/w3 in another; wo and w2 stay single linears.
    assert.equal(ops.fused_linear, 2 * layers);
    assert.equal(ops.linear, 2 * layers);
    assert.equal(ops.attention, layers);
    assert.equal(ops.rope, 2 * layers);
    assert.equal(ops.silu_mul, layers);
    // What they replace is gone: no cache copy, no scores, no element-wise RoPE.
    for (const op of ["concat", "matmul", "softmax", "split", "unary"]) {
      assert.equal(ops[op], undefined, `${op} at L = ${length}`);
    }
    // The new keys and values are outputs, transposed from the rotated heads, then read in place.
    assert.equal(ops.transpose, 2 * layers);
    const attention = plan.steps.find((s) => s.op === "attention")!;
    assert.ok(attention.op === "attention");
    const names = (ids: readonly number[]) => ids.map((id) => plan.tensors[id]!.storage.kind);
    assert.deepEqual(names(attention.keys), ["input", "output"]);
    assert.deepEqual(names(attention.values), ["input", "output"]);
    assert.deepEqual(plan.tensors[attention.mask]!.shape, [length, 32 + length]);
    assert.deepEqual(plan.tensors[attention.q]!.shape, [length, TINY_PARAMS.n_heads, 16]);
    assert.equal(attention.scale, 0.25);
    const qkv = plan.steps.find((s) => s.op === "fused_linear")!;
    assert.ok(qkv.op === "fused_linear");
    assert.deepEqual(
      qkv.outs.map((id) => plan.tensors[id]!.shape.at(-1)),
      [TINY_PARAMS.dim, TINY_PARAMS.n_kv_heads * 16, TINY_PARAMS.n_kv_heads * 16],
    );
  }
});

Deno.test("planFunction() leaves a pattern that differs from the exporter's to generic steps", () => {
  const { fn, outputs } = load("blocks");
  // Softmax over another axis is not attention: scores, mask and softmax stay separate steps
  // (and the planner then refuses the axis, as it always did).
  const axisConst: Value = {
    kind: "immediate",
    dtype: "int32",
    shape: [],
    values: Int32Array.of(2),
  };
  const ops = fn.block.operations.map((op) =>
    op.type === "softmax" ? { ...op, inputs: new Map([...op.inputs, ["axis", [axisConst]]]) } : op
  );
  const changed = { ...fn, block: { ...fn.block, operations: ops } };
  assert.throws(() => planFunction(changed, 8, 8, outputs), /softmax over axis 2/);
  // A second reader of RoPE's intermediate keeps that RoPE unfused, and the plan still runs
  // the same ops around it.
  const x1cos = fn.block.operations.find((op) => op.name.endsWith("q_rope_x1cos"))!;
  const reader = {
    ...x1cos,
    name: "extra_reader",
    outputs: [{ ...x1cos.outputs[0]!, name: "extra_reader_out" }],
    inputs: new Map([["x", [x1cos.outputs[0]!.name]], ["y", [x1cos.outputs[0]!.name]]]),
  };
  const at = fn.block.operations.indexOf(x1cos) + 1;
  const withReader = [
    ...fn.block.operations.slice(0, at),
    reader,
    ...fn.block.operations.slice(at),
  ];
  const plan = planFunction(
    { ...fn, block: { ...fn.block, operations: withReader } },
    8,
    8,
    outputs,
  );
  const steps = counts(plan);
  assert.equal(steps.rope, 2 * TINY_PARAMS.n_layers - 1);
  assert.equal(steps.split, 1);
  assert.equal(steps.concat, 1);
});

Deno.test("planFunction() re-infers every shape for a shorter call", () => {
  const { fn, outputs } = load("blocks");
  const plan = planFunction(fn, 8, 1, outputs);
  const input = (name: string) => plan.tensors[plan.inputs[plan.inputNames.indexOf(name)]!]!;
  assert.deepEqual(input("mask").shape, [1, 1, 33]);
  assert.deepEqual(input("freqs_cos").shape, [1, 8]);
  assert.deepEqual(input("k_cache_0").shape, [1, 2, 32, 16]);
  const output = (name: string) => plan.tensors[plan.outputs[plan.outputNames.indexOf(name)]!]!;
  assert.deepEqual(output("k_new_1").shape, [1, 2, 1, 16]);
  assert.deepEqual(output("hidden_2").shape, [1, 1, TINY_PARAMS.dim]);
  const attention = plan.steps.find((s) => s.op === "attention")!;
  assert.ok(attention.op === "attention");
  assert.deepEqual(plan.tensors[attention.mask]!.shape, [1, 33]);
  assert.deepEqual(attention.keys.map((id) => plan.tensors[id]!.shape), [[2, 32, 16], [2, 1, 16]]);
});

Deno.test("planFunction() never lets two live arena tensors overlap", () => {
  const { fn, outputs } = load("blocks");
  const plan = planFunction(fn, 8, 8, outputs);
  const bytes = { f16: 2, f32: 4, i32: 4, i8: 1, i4: 0.5, u4: 0.5, u6: 0.75 };
  const produced = new Map<number, number>();
  const lastUse = new Map<number, number>();
  plan.steps.forEach((step, index) => {
    for (const [key, value] of Object.entries(step)) {
      const ids = key === "outs" || key === "inputs"
        ? value as number[]
        : typeof value === "number" && !["eps", "axis", "scale"].includes(key)
        ? [value]
        : [];
      for (const id of ids) {
        if (key === "out" || key === "outs") produced.set(id, produced.get(id) ?? index);
        else lastUse.set(id, index);
      }
    }
  });
  // Reshape views share their source's bytes by design: only tensors a step produces count.
  const arena = plan.tensors.flatMap((
    t,
    id,
  ) => (t.storage.kind === "arena" && produced.has(id) ? [{ id, t }] : []));
  assert.ok(arena.length > 10);
  for (const a of arena) {
    const aEnd = (a.t.storage as { offset: number }).offset +
      elementCount(a.t.shape) * bytes[a.t.dtype];
    assert.ok(aEnd <= plan.arenaBytes);
    for (const b of arena) {
      if (a.id >= b.id) continue;
      const aLive = [produced.get(a.id)!, lastUse.get(a.id) ?? produced.get(a.id)!];
      const bLive = [produced.get(b.id)!, lastUse.get(b.id) ?? produced.get(b.id)!];
      if (aLive[1]! < bLive[0]! || bLive[1]! < aLive[0]!) continue;
      const aStart = (a.t.storage as { offset: number }).offset;
      const bStart = (b.t.storage as { offset: number }).offset;
      const bEnd = bStart + elementCount(b.t.shape) * bytes[b.t.dtype];
      assert.ok(
        aEnd <= bStart || bEnd <= aStart,
        `tensors ${a.id} and ${b.id} overlap while both live`,
      );
    }
  }
});

Deno.test("planFunction() rejects ops the CPU backend does not run", () => {
  const { fn, outputs } = load("head");
  const ops = fn.block.operations.map((
    op,
  ) => (op.type === "linear" ? { ...op, type: "conv" } : op));
  assert.throws(
    () => planFunction({ ...fn, block: { ...fn.block, operations: ops } }, 8, 8, outputs),
    PlanError,
  );
});

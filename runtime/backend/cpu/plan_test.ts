import assert from "node:assert/strict";
import { type Plan, PlanError, planFunction } from "./plan.ts";
import { exportModel } from "../../../export/export_model.ts";
import { readPackage } from "../../../export/coreml/package.ts";
import type { MilFunction } from "../../../export/coreml/mil.ts";
import { elementCount } from "../../../export/coreml/tensor.ts";
import { TINY_PARAMS, writeTinyLlama } from "../../../testing/tiny_llama.ts";

const tiny = await writeTinyLlama();
const bundle = `${await Deno.makeTempDir()}/tiny.llamane`;
await exportModel({
  checkpoint: tiny.checkpoint,
  params: tiny.params,
  output: bundle,
  inputLen: 8,
  maxContextLen: 40,
});

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
  const scores = plan.steps.find((s) => s.op === "matmul")!;
  assert.ok(scores.op === "matmul");
  assert.deepEqual(plan.tensors[scores.out]!.shape, [2, 2, 1, 33]);
});

Deno.test("planFunction() never lets two live arena tensors overlap", () => {
  const { fn, outputs } = load("blocks");
  const plan = planFunction(fn, 8, 8, outputs);
  const bytes = { f16: 2, f32: 4, i32: 4, i8: 1, i4: 0.5 };
  const produced = new Map<number, number>();
  const lastUse = new Map<number, number>();
  plan.steps.forEach((step, index) => {
    for (const [key, value] of Object.entries(step)) {
      const ids = key === "outs" || key === "inputs"
        ? value as number[]
        : typeof value === "number" && key !== "eps" && key !== "axis"
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

import { deepStrictEqual, strictEqual, throws } from "node:assert";
import { type BlobSink, MIN_BLOB_ELEMENTS, ProgramBuilder } from "./builder.ts";
import { MilProgramError, TensorShapeError } from "./errors.ts";
import type { Value } from "./mil.ts";
import { scalar, tensor } from "./tensor.ts";

/** Records what was appended and returns consecutive fake offsets. */
function recordingSink(): BlobSink & { appended: number } {
  const sink = {
    appended: 0,
    append: () => 64 * (1 + 2 * sink.appended++),
  };
  return sink;
}

function fn(weights?: BlobSink) {
  return new ProgramBuilder(weights === undefined ? {} : { weights }).function("main");
}

Deno.test("FunctionBuilder.const() keeps tensors below 10 elements inline and moves larger ones to weight.bin", () => {
  const sink = recordingSink();
  const f = fn(sink);
  f.const("small", tensor("fp16", [MIN_BLOB_ELEMENTS - 1], new Array(9).fill(1)));
  f.const("large", tensor("fp16", [2, 5], new Array(10).fill(1)));
  f.const("flags", tensor("bool", [12], new Array(12).fill(true)));
  f.const("large_int32", tensor("int32", [10], new Array(10).fill(3)));
  const kinds = f.toFunction().block.operations.map((op) => op.attributes.get("val")?.kind);
  deepStrictEqual(kinds, ["immediate", "blob", "immediate", "blob"]);
  strictEqual(sink.appended, 2);
});

Deno.test("FunctionBuilder.op() materializes tensor parameters as consts named like coremltools'", () => {
  const f = fn();
  const x = f.input("x", { dtype: "fp16", shape: [2, 3] });
  f.op("softmax", { x, axis: scalar("int32", -1) }, x.type, { name: "probs" });
  const t = f.op("transpose", { x, perm: tensor("int32", [2], [1, 0]) }, {
    dtype: "fp16",
    shape: [3, 2],
  });
  const ops = f.toFunction().block.operations;
  deepStrictEqual(ops.map((op) => [op.type, op.name]), [
    ["const", "probs_axis_0"],
    ["softmax", "probs"],
    ["const", "transpose_0_perm_0"],
    ["transpose", "transpose_0"],
  ]);
  deepStrictEqual(ops[1]!.inputs, new Map([["x", ["x"]], ["axis", ["probs_axis_0"]]]));
  strictEqual(t.name, "transpose_0");
});

Deno.test("FunctionBuilder.op() binds constexpr parameters inline, in weight.bin when large", () => {
  const sink = recordingSink();
  const f = fn(sink);
  f.op(
    "constexpr_blockwise_shift_scale",
    {
      data: tensor("int4", [4, 32], new Array(128).fill(-3)),
      scale: tensor("fp16", [4, 1], [1, 2, 3, 4]),
    },
    { dtype: "fp16", shape: [4, 32] },
    { name: "w" },
  );
  const [op] = f.toFunction().block.operations;
  strictEqual(op?.type, "constexpr_blockwise_shift_scale");
  const kind = (param: string) => (op.inputs.get(param)?.[0] as Value).kind;
  deepStrictEqual([kind("data"), kind("scale")], ["blob", "immediate"]);
  strictEqual(sink.appended, 1);
});

Deno.test("FunctionBuilder.multiOp() names outputs <op>_<i> and variadic inputs keep their order", () => {
  const f = fn();
  const a = f.input("a", { dtype: "fp32", shape: [1, 4] });
  const b = f.input("b", { dtype: "fp32", shape: [1, 4] });
  const c = f.op("concat", { values: [b, a], axis: scalar("int32", 1) }, {
    dtype: "fp32",
    shape: [1, 8],
  });
  const parts = f.multiOp("split", {
    x: c,
    num_splits: scalar("int32", 2),
    axis: scalar("int32", 1),
  }, [
    a.type,
    a.type,
  ], { name: "halves" });
  deepStrictEqual(parts.map((p) => p.name), ["halves_0", "halves_1"]);
  deepStrictEqual(f.toFunction().block.operations[1]?.inputs.get("values"), ["b", "a"]);
});

Deno.test("FunctionBuilder rejects invalid, reserved and duplicate names", () => {
  const f = fn();
  const x = f.input("x", { dtype: "fp32", shape: [1] });
  throws(() => f.input("1x", x.type), /identifiers must match/);
  throws(() => f.input("fp16", x.type), /reserved word/);
  throws(() => f.input("x", x.type), /already uses that name/);
  throws(() => f.op("relu", { x }, x.type, { name: "x" }), MilProgramError);
  throws(() => f.op("re-lu", { x }, x.type), /identifiers must match/);
  throws(() => f.op("relu", { "bad param": x }, x.type), /identifiers must match/);
});

Deno.test("FunctionBuilder rejects a value of another function and a large const without a weights writer", () => {
  const program = new ProgramBuilder();
  const a = program.function("a");
  const b = program.function("b");
  const x = a.input("x", { dtype: "fp32", shape: [1] });
  throws(() => b.op("relu", { x }, x.type), /belongs to function "a"/);
  throws(() => b.output(x), /belongs to function "a"/);
  throws(
    () => b.const("w", tensor("fp32", [10], new Array(10).fill(0))),
    /its 10 elements go to weight.bin, but the ProgramBuilder was made without a weights writer/,
  );
  throws(() => b.const("v", tensor("fp32", [2], [1])), TensorShapeError);
});

Deno.test("ProgramBuilder.build() describes one main function in the single-function form", () => {
  const program = new ProgramBuilder();
  const f = program.function("main");
  const x = f.input("x", { dtype: "int32", shape: [1, 2] });
  f.output(f.op("cast", { x, dtype: scalar("string", "fp16") }, { dtype: "fp16", shape: [1, 2] }, {
    name: "y",
  }));
  const model = program.build({ metadata: { author: "a", userDefined: new Map([["k", "v"]]) } });
  strictEqual(model.specificationVersion, 9);
  deepStrictEqual(model.description.inputs, [{
    name: "x",
    shortDescription: "",
    dtype: "int32",
    shape: [1, 2],
  }]);
  deepStrictEqual(model.description.outputs.map((o) => [o.name, o.dtype]), [["y", "fp16"]]);
  deepStrictEqual(model.description.functions, []);
  strictEqual(model.description.metadata.author, "a");
  strictEqual(model.description.metadata.license, "");
});

Deno.test("ProgramBuilder.build() describes several functions in the multifunction form", () => {
  const program = new ProgramBuilder();
  for (const name of ["prefill", "decode"]) {
    const f = program.function(name);
    const x = f.input("x", { dtype: "fp16", shape: [name === "prefill" ? 4 : 1, 8] });
    f.output(f.op("silu", { x }, x.type, { name: "y" }));
  }
  throws(() => program.build(), /need a defaultFunctionName/);
  const model = program.build({ defaultFunctionName: "decode" });
  deepStrictEqual(model.description.functions.map((d) => [d.name, d.inputs[0]?.shape]), [
    ["prefill", [4, 8]],
    ["decode", [1, 8]],
  ]);
  deepStrictEqual([model.description.inputs, model.description.outputs], [[], []]);
  throws(() => program.build({ defaultFunctionName: "nope" }), /default function "nope"/);
});

Deno.test("ProgramBuilder.build() rejects outputs Core ML cannot return", () => {
  const boolOut = new ProgramBuilder();
  const f = boolOut.function("main");
  const x = f.input("x", { dtype: "fp32", shape: [2] });
  f.output(
    f.op("greater", { x, y: scalar("fp32", 0) }, { dtype: "bool", shape: [2] }, { name: "m" }),
  );
  throws(() => boolOut.build(), /"m" has dtype "bool", but model inputs and outputs must be/);

  const scalarOut = new ProgramBuilder();
  const g = scalarOut.function("main");
  const y = g.input("y", { dtype: "fp32", shape: [2] });
  g.output(g.op("reduce_sum", { x: y }, { dtype: "fp32", shape: [] }, { name: "s" }));
  throws(() => scalarOut.build(), /"s" is a scalar/);

  const none = new ProgramBuilder();
  none.function("main").input("z", { dtype: "fp32", shape: [1] });
  throws(() => none.build(), /has no outputs/);
});

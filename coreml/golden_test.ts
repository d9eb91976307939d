/**
 * Compares llamane's writer with coremltools on the golden programs of
 * scripts/coreml/make_goldens.py (committed under testdata/coreml/goldens/): each program is
 * rebuilt here with the builder, written as a package, and must decode to the same model as
 * coremltools' file, with a byte-identical weight.bin.
 *
 * Differences we tolerate, and why:
 * - `Program.attributes` (`buildInfo`): coremltools' build provenance; llamane writes none and
 *   its reader skips it.
 * - Metadata keys `com.github.apple.coremltools.*`: coremltools' provenance, not ours.
 * - The order of protobuf map entries (functions, op inputs, attributes): maps are unordered, and
 *   coremltools' deterministic serialization sorts them by key.
 * Op order, names, bindings, types and values must match exactly.
 *
 * @module
 */

import { deepStrictEqual } from "node:assert";
import { ProgramBuilder } from "./builder.ts";
import type { FunctionBuilder } from "./builder.ts";
import type { Model } from "./model.ts";
import { PackageWriter, readPackage, WEIGHTS_ITEM } from "./package.ts";
import { decodeModel } from "./proto_reader.ts";
import { scalar, type Tensor, tensor } from "./tensor.ts";

const GOLDENS = new URL("../testdata/coreml/goldens/", import.meta.url);
const DIR = Deno.makeTempDirSync({ prefix: "llamane_golden_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(DIR, { recursive: true }));

// --- the weights of make_goldens.py --------------------------------------------------------------

function grid(rows: number, cols: number, f: (i: number, j: number) => number): number[] {
  return Array.from({ length: rows * cols }, (_, k) => f(Math.floor(k / cols), k % cols));
}

/** arange(n) / denominator as fp16. */
function ramp(shape: [number, number], denominator: number): Tensor<"fp16"> {
  return tensor(
    "fp16",
    shape,
    grid(shape[0], shape[1], (i, j) => (i * shape[1] + j) / denominator),
  );
}

function int4Levels(rows: number, cols: number): number[] {
  return grid(rows, cols, (i, j) => ((5 * i + j) % 15) - 7);
}

function int8Levels(rows: number, cols: number): number[] {
  return grid(rows, cols, (i, j) => j === 0 ? 127 : ((37 * i + 11 * j) % 255) - 127);
}

function blockScales(rows: number, blocks: number): Tensor<"fp16"> {
  return tensor("fp16", [rows, blocks], grid(rows, blocks, (i, b) => 2 ** -(((i + b) % 4) + 2)));
}

const zeros = (n: number) => tensor("fp16", [n], new Array(n).fill(0));

// --- the programs of make_goldens.py -------------------------------------------------------------

function opsFp16(program: ProgramBuilder): void {
  const f = program.function("main");
  const tokens = f.input("tokens", { dtype: "int32", shape: [1, 3] });
  const h = f.input("h", { dtype: "fp16", shape: [1, 3, 4] });
  const fp16 = (...shape: number[]) => ({ dtype: "fp16" as const, shape });
  const e = f.op(
    "gather",
    {
      x: ramp([10, 4], 16),
      indices: tokens,
      axis: scalar("int32", 0),
      batch_dims: scalar("int32", 0),
      validate_indices: scalar("bool", false),
    },
    fp16(1, 3, 4),
    { name: "embed" },
  );
  const s = f.op("add", { x: e, y: h }, fp16(1, 3, 4), { name: "sum" });
  const n = f.op(
    "layer_norm",
    {
      x: s,
      axes: tensor("int32", [1], [-1]),
      epsilon: scalar("fp32", 1e-5),
    },
    fp16(1, 3, 4),
    { name: "norm" },
  );
  const q = f.op("linear", { x: n, weight: ramp([8, 4], 32), bias: zeros(8) }, fp16(1, 3, 8), {
    name: "proj",
  });
  const [a, b] = f.multiOp(
    "split",
    {
      x: q,
      num_splits: scalar("int32", 2),
      axis: scalar("int32", -1),
    },
    [fp16(1, 3, 4), fp16(1, 3, 4)],
    { name: "halves" },
  );
  const scores = f.op(
    "matmul",
    {
      x: a!,
      y: b!,
      transpose_y: scalar("bool", true),
      transpose_x: scalar("bool", false),
    },
    fp16(1, 3, 3),
    { name: "scores" },
  );
  const p = f.op("softmax", { x: scores, axis: scalar("int32", -1) }, fp16(1, 3, 3), {
    name: "probs",
  });
  const o = f.op(
    "matmul",
    {
      x: p,
      y: b!,
      transpose_x: scalar("bool", false),
      transpose_y: scalar("bool", false),
    },
    fp16(1, 3, 4),
    { name: "mix" },
  );
  const c = f.op(
    "concat",
    {
      values: [o, e],
      axis: scalar("int32", -1),
      interleave: scalar("bool", false),
    },
    fp16(1, 3, 8),
    { name: "cat" },
  );
  const r = f.op("reshape", { x: c, shape: tensor("int32", [4], [1, 3, 2, 4]) }, fp16(1, 3, 2, 4), {
    name: "heads",
  });
  const t = f.op(
    "transpose",
    { x: r, perm: tensor("int32", [4], [0, 2, 1, 3]) },
    fp16(1, 2, 3, 4),
    {
      name: "swap",
    },
  );
  const tail = f.op(
    "slice_by_index",
    {
      x: t,
      begin: tensor("int32", [4], [0, 0, 1, 0]),
      end: tensor("int32", [4], [1, 2, 3, 4]),
    },
    fp16(1, 2, 2, 4),
    { name: "tail" },
  );
  const tokf = f.op("cast", { x: tokens, dtype: scalar("string", "fp16") }, fp16(1, 3), {
    name: "tokf",
  });
  f.output(tail, tokf);
}

function opsFp32(program: ProgramBuilder): void {
  const f = program.function("main");
  const fp32 = (...shape: number[]) => ({ dtype: "fp32" as const, shape });
  const vector = (g: (i: number) => number) =>
    tensor("fp32", [12], Array.from({ length: 12 }, (_, i) => g(i)));
  const x = f.input("x", fp32(2, 12));
  const sq = f.op("mul", { x, y: x }, fp32(2, 12), { name: "sq" });
  const ms = f.op(
    "reduce_mean",
    {
      x: sq,
      axes: tensor("int32", [1], [-1]),
      keep_dims: scalar("bool", true),
    },
    fp32(2, 1),
    { name: "ms" },
  );
  const inv = f.op("rsqrt", { x: ms, epsilon: scalar("fp32", 1e-5) }, fp32(2, 1), { name: "inv" });
  const n = f.op("mul", { x, y: inv }, fp32(2, 12), { name: "normed" });
  const g = f.op("mul", { x: n, y: vector((i) => 0.5 + i / 8) }, fp32(2, 12), { name: "scaled" });
  const act = f.op("silu", { x: g }, fp32(2, 12), { name: "act" });
  const gate = f.op("sigmoid", { x: g }, fp32(2, 12), { name: "gate" });
  const d = f.op("sub", { x: act, y: gate }, fp32(2, 12), { name: "diff" });
  const r = f.op("real_div", { x: d, y: vector((i) => 1 + i / 4) }, fp32(2, 12), { name: "ratio" });
  const ex = f.op("expand_dims", { x: r, axes: tensor("int32", [1], [0]) }, fp32(1, 2, 12), {
    name: "ex",
  });
  const row = f.op(
    "slice_by_size",
    {
      x: ex,
      begin: tensor("int32", [3], [0, 1, 0]),
      size: tensor("int32", [3], [1, 1, 12]),
    },
    fp32(1, 1, 12),
    { name: "row" },
  );
  f.output(
    f.op("squeeze", { x: row, axes: tensor("int32", [1], [0]) }, fp32(1, 12), { name: "flat" }),
  );
}

/** `softmax(linear(x, weight))` over `rows` rows, as make_goldens.py's linear_program. */
function linearSoftmax(f: FunctionBuilder, weight: Tensor, rows: number): void {
  const x = f.input("x", { dtype: "fp16", shape: [rows, 64] });
  const out = { dtype: "fp16" as const, shape: [rows, 16] };
  const y = f.op("linear", { x, weight, bias: zeros(16) }, out, { name: "y" });
  f.output(f.op("softmax", { x: y, axis: scalar("int32", -1) }, out, { name: "p" }));
}

function quantized(data: Tensor<"int4" | "int8">, scale: Tensor<"fp16">) {
  return (program: ProgramBuilder) => {
    const f = program.function("main");
    const x = f.input("x", { dtype: "fp16", shape: [1, 64] });
    const w = f.op("constexpr_blockwise_shift_scale", { data, scale }, {
      dtype: "fp16",
      shape: [16, 64],
    }, { name: "y_weight_0_quantized" });
    const out = { dtype: "fp16" as const, shape: [1, 16] };
    const y = f.op("linear", { x, weight: w, bias: zeros(16) }, out, { name: "y" });
    f.output(f.op("softmax", { x: y, axis: scalar("int32", -1) }, out, { name: "p" }));
  };
}

function multifunction(program: ProgramBuilder): void {
  for (const [name, rows] of [["prefill", 4], ["decode", 1]] as const) {
    linearSoftmax(program.function(name), ramp([16, 64], 256), rows);
  }
}

// --- comparison ----------------------------------------------------------------------------------

function withoutCoremltoolsMetadata(model: Model): Model {
  const userDefined = new Map(
    [...model.description.metadata.userDefined].filter(([k]) =>
      !k.startsWith("com.github.apple.coremltools.")
    ),
  );
  return {
    ...model,
    description: { ...model.description, metadata: { ...model.description.metadata, userDefined } },
  };
}

function compareWithGolden(
  name: string,
  build: (p: ProgramBuilder) => void,
  defaultFunctionName?: string,
) {
  const path = `${DIR}/${name}.mlpackage`;
  {
    using pkg = PackageWriter.create(path);
    const program = new ProgramBuilder({ weights: pkg.weights });
    build(program);
    pkg.finish(program.build(defaultFunctionName === undefined ? {} : { defaultFunctionName }));
  }
  const goldenModelPath = new URL(`${name}/model.mlmodel`, GOLDENS).pathname;
  const golden = decodeModel(Deno.readFileSync(goldenModelPath), goldenModelPath);
  deepStrictEqual(readPackage(path).model, withoutCoremltoolsMetadata(golden));
  deepStrictEqual(
    Deno.readFileSync(`${path}/Data/${WEIGHTS_ITEM.path}/weight.bin`),
    Deno.readFileSync(new URL(`${name}/weight.bin`, GOLDENS)),
  );
}

Deno.test("golden ops_fp16: gather, layer_norm, linear, split, matmul, softmax, concat, reshape, transpose, slice_by_index, cast", () => {
  compareWithGolden("ops_fp16", opsFp16);
});

Deno.test("golden ops_fp32: mul, reduce_mean, rsqrt, silu, sigmoid, sub, real_div, expand_dims, slice_by_size, squeeze", () => {
  compareWithGolden("ops_fp32", opsFp32);
});

Deno.test("golden int4_block32: constexpr_blockwise_shift_scale with int4 data and a scale per block of 32", () => {
  compareWithGolden(
    "int4_block32",
    quantized(tensor("int4", [16, 64], int4Levels(16, 64)), blockScales(16, 2)),
  );
});

Deno.test("golden int4_channel: constexpr_blockwise_shift_scale with int4 data and a scale per channel", () => {
  compareWithGolden(
    "int4_channel",
    quantized(tensor("int4", [16, 64], int4Levels(16, 64)), blockScales(16, 1)),
  );
});

Deno.test("golden int8_channel: constexpr_blockwise_shift_scale with int8 data and a scale per channel", () => {
  compareWithGolden(
    "int8_channel",
    quantized(tensor("int8", [16, 64], int8Levels(16, 64)), blockScales(16, 1)),
  );
});

Deno.test("golden multifunction: two functions share one weight.bin blob per constant", () => {
  compareWithGolden("multifunction", multifunction, "decode");
});
